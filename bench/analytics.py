"""Analytics benchmark: projector throughput and query times on synthetic history.

Writes N conversations of synthetic history (about ten events each, from the
generator the tests use: offers, declines, time-outs, answers, parks,
transfers, wrap-ups, abandons) into a fresh database, then measures

* `projector_events_per_s`: `postroom analytics rebuild`'s projector (with its sinks:
  agents' status, tags) over all of it;
* `aggregate_query_ms`: a 30-day hourly by-queue aggregate (nOffered, tAnswered,
  tHandle, oServiceLevel) through services/analytics/queries.py (median of 3);
* `details_page_ms`: one page of 25 details filtered by queue (median of 3);
* `naive_aggregate_ms`: the same aggregate computed from `events` directly
  (every event of the conversations active in the window, replayed).

    .venv/bin/python bench/analytics.py --conversations 20000 [--postgres URL] [--no-sqlite]
        [--json]

The default is 1,000,000 conversations. With --postgres, a throw-away database
is created on that server and dropped at the end; --no-sqlite runs PostgreSQL only.
The last line with --json is {"sqlite": {...}, "postgresql": {...}}. Events are
written through the driver (executemany, COPY), so writing them does not dominate.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from tests.unit.analytics.generator import history  # noqa: E402

from postroom.analytics import metrics as am  # noqa: E402
from postroom.analytics import rollup  # noqa: E402
from postroom.analytics.details import replay  # noqa: E402
from postroom.services import analytics as svc  # noqa: E402
from postroom.services.analytics import bulk  # noqa: E402
from postroom.store import db as store_db  # noqa: E402
from postroom.store.schema import events  # noqa: E402

CHUNK = 5000  # conversations generated and inserted at a time
COLUMNS = ("id", "at", "kind", "conversation_id", "message_id", "data")
DAYS = 90  # the history spans this many days
METRICS = ["nOffered", "tAnswered", "tHandle", "oServiceLevel"]
TARGETS = {q: am.ServiceTarget("default", 80.0, 3600.0) for q in ("support", "billing")}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(engine: sa.Engine, n: int) -> int:
    per_chunk_h = DAYS * 24 * min(1.0, CHUNK / max(n, 1))
    next_id, total = 1, 0
    for i, first in enumerate(range(1, n + 1, CHUNK)):
        count = min(CHUNK, n + 1 - first)
        t0 = T0 + timedelta(hours=per_chunk_h * i)
        evs = history(i, count, per_chunk_h, first_cid=first, first_id=next_id, t0=t0)
        with engine.begin() as conn:
            sqlite = conn.dialect.name == "sqlite"
            rows = [
                (e.id, bulk.sqlite_time(e.at) if sqlite else e.at, e.kind, e.conversation_id,
                 e.message_id, json.dumps(dict(e.data)))
                for e in evs
            ]  # fmt: skip
            bulk.insert(conn, events, COLUMNS, rows)
        next_id += len(evs)
        total += len(evs)
    return total


def _median_ms(fn: Callable[[], Any], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(times), 1)


def _naive(engine: sa.Engine, start: datetime, end: datetime) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        active = (
            sa.select(events.c.conversation_id)
            .where(events.c.at >= start, events.c.at < end, events.c.conversation_id.is_not(None))
            .distinct()
        )
        rows = conn.execute(
            sa.select(events).where(events.c.conversation_id.in_(active)).order_by(events.c.id)
        ).all()
    obs = [o for d in replay(svc.record(r) for r in rows) for o in am.observations(d)]
    return am.aggregate(
        obs, start, end, metrics=METRICS, granularity="PT1H", tz=ZoneInfo("UTC"),
        group_by=["queueId"], targets=TARGETS,
    )  # fmt: skip


def _agree(fast: list[dict[str, Any]], slow: list[dict[str, Any]]) -> bool:
    """The same figures; percentiles from the interval sketches within their accuracy."""

    def flat(results: list[dict[str, Any]]) -> dict[tuple[Any, ...], float]:
        return {
            (str(r["group"]), d["interval"], m["metric"], k): v
            for r in results for d in r["data"] for m in d["metrics"]
            for k, v in m["stats"].items()
        }  # fmt: skip

    f, s = flat(fast), flat(slow)
    return f.keys() == s.keys() and all(
        abs(f[k] - s[k]) <= (rollup.ALPHA if k[3] in ("p50", "p90") else 1e-9) * abs(s[k]) + 1e-3
        for k in s
    )


def run(url: str, n: int) -> dict[str, float]:
    engine = store_db.create_engine(url)
    store_db.migrate(engine)
    try:
        t = time.perf_counter()
        total = _fill(engine, n)
        if engine.dialect.name == "postgresql":  # the ids were given: move the sequence on
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT setval('events_id_seq', :n)"), {"n": total})
        fill_s = time.perf_counter() - t
        gc.collect()
        projector = svc.AnalyticsProjector(engine, lambda: datetime.now(UTC),
                                           svc.ProjectorConfig(batch=5000),
                                           sinks=svc.standard_sinks())  # fmt: skip
        t = time.perf_counter()
        projector.rebuild()
        rate = total / (time.perf_counter() - t)
        if engine.dialect.name == "postgresql":  # what autovacuum would do after a bulk load
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
        start = T0 + timedelta(days=DAYS // 3)
        end = start + timedelta(days=30)

        def agg() -> list[dict[str, Any]]:
            return svc.aggregates(
                engine, start, end, metrics=METRICS, granularity="PT1H", tz=ZoneInfo("UTC"),
                group_by=["queueId"], filter=None, targets=TARGETS,
            )  # fmt: skip

        flt = svc.Filter("and", (svc.Predicate("queueId", "support"),))
        t = time.perf_counter()
        slow = _naive(engine, start, end)
        naive_ms = round((time.perf_counter() - t) * 1000.0, 1)
        if not _agree(agg(), slow):
            print("warning: the naive aggregate differs from the projected one", file=sys.stderr)
        del slow
        gc.collect()
        return {
            "events": total,
            "fill_s": round(fill_s, 1),
            "rebuild_s": round(total / rate, 1),
            "projector_events_per_s": round(rate),
            "aggregate_query_ms": _median_ms(agg),
            "details_page_ms": _median_ms(
                lambda: svc.details(engine, start, end, filter=flt, page_size=25, page_number=1)
            ),
            "naive_aggregate_ms": naive_ms,
        }
    finally:
        engine.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--conversations", type=int, default=1_000_000)
    p.add_argument("--postgres", help="a PostgreSQL server URL (a throw-away database is made)")
    p.add_argument("--no-sqlite", action="store_true", help="run PostgreSQL only")
    p.add_argument("--keep", metavar="DIR", help="keep the databases (SQLite file in DIR)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out: dict[str, Any] = {}
    if not args.no_sqlite and args.keep:
        path = Path(args.keep) / f"bench-{uuid.uuid4().hex[:8]}.db"
        print(f"keeping sqlite:///{path}", file=sys.stderr)
        out["sqlite"] = run(f"sqlite:///{path}", args.conversations)
    elif not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            out["sqlite"] = run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.conversations)
    if args.postgres:
        name = f"postroom_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            url = sa.make_url(args.postgres).set(database=name)
            out["postgresql"] = run(url.render_as_string(hide_password=False), args.conversations)
        finally:
            if args.keep:
                print(f"keeping database {name}", file=sys.stderr)
            else:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if not args.json:
        for backend, figures in out.items():
            print(backend, ", ".join(f"{k} {v}" for k, v in figures.items()))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

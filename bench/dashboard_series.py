"""Dashboard series benchmark: the wait distribution and the backlog on synthetic history.

Writes N conversations of synthetic history (bench/analytics.py's generator: about
nine events each over 90 days) into a fresh database, projects it, then measures
over a 30-day window (median of 3):

* `wait_distribution_ms`: answered waits per queue in the dashboard's buckets
  (services/analytics/series.py `wait_distribution`);
* `backlog_ms`: conversations waiting per queue at every hour of the window
  (721 moments, `backlog`);
* `baseline_ms`: both figures computed naively from `events` (every event up to
  the window's end replayed into conversation details, then the answered waits
  bucketed and the wait segments swept), once; its results are checked against
  the two queries'.

    .venv/bin/python bench/dashboard_series.py [--conversations 100000] [--postgres URL] [--json]

The default is 100,000 conversations. The last line with --json is
{"wait_distribution_ms", "backlog_ms", "baseline_ms", "conversations", "events"}
(SQLite), with a "postgresql" object of the same figures when --postgres is given
(a throw-away database on that server, dropped at the end).
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
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

from postroom.analytics import metrics as am  # noqa: E402
from postroom.analytics.details import replay  # noqa: E402
from postroom.services import analytics as svc  # noqa: E402
from postroom.services.analytics.series import BUCKETS, bucket_of  # noqa: E402
from postroom.store import db as store_db  # noqa: E402
from postroom.store.schema import events  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_analytics", REPO / "bench" / "analytics.py")
assert _spec is not None and _spec.loader is not None
bench_analytics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_analytics)

UTC_ZONE = ZoneInfo("UTC")


def _median_ms(fn: Callable[[], Any], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(times), 1)


def _naive(
    engine: sa.Engine, start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both figures from `events` alone, in the shapes the queries answer."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(events).where(events.c.at <= end).order_by(events.c.id)).all()
    details = replay(svc.record(r) for r in rows)
    counts: dict[str | None, list[int]] = {}
    waits: dict[str | None, list[tuple[datetime, datetime | None]]] = {}
    for d in details:
        for o in am.observations(d):
            if o.metric == "tAnswered" and start <= o.at < end:
                counts.setdefault(o.queue, [0] * len(BUCKETS))[bucket_of(o.value)] += 1
        for s in d.segments:
            if s.kind == "wait":
                waits.setdefault(s.queue, []).append((s.start, s.end))
    dist = [
        {"group": {"queueId": q}, "counts": c, "total": sum(c)}
        for q, c in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]
    edges = am.boundaries(start, end, "PT1H", UTC_ZONE)
    back = []
    for q, ws in sorted(waits.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
        starts = sorted(s for s, _ in ws)
        ends = sorted(e for _, e in ws if e is not None)
        data = [
            {"at": e.isoformat(timespec="seconds"),
             "waiting": bisect.bisect_right(starts, e) - bisect.bisect_right(ends, e)}
            for e in edges
        ]  # fmt: skip
        back.append({"group": {"queueId": q}, "data": data})
    return dist, back


def run(url: str, n: int) -> dict[str, float]:
    engine = store_db.create_engine(url)
    store_db.migrate(engine)
    try:
        total = bench_analytics._fill(engine, n)
        projector = svc.AnalyticsProjector(engine, lambda: datetime.now(UTC),
                                           svc.ProjectorConfig(batch=5000))  # fmt: skip
        projector.rebuild()
        if engine.dialect.name == "postgresql":  # what autovacuum would do after a bulk load
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
        start = bench_analytics.T0 + timedelta(days=bench_analytics.DAYS // 3)
        end = start + timedelta(days=30)

        def dist() -> list[dict[str, Any]]:
            return svc.wait_distribution(engine, start, end)

        def back() -> list[dict[str, Any]]:
            return svc.backlog(engine, start, end, granularity="PT1H", tz=UTC_ZONE, now=end)

        t = time.perf_counter()
        naive_dist, naive_back = _naive(engine, start, end)
        baseline = round((time.perf_counter() - t) * 1000.0, 1)
        got_dist = [r for r in dist() if r["total"]]
        if got_dist != [r for r in naive_dist if r["total"]]:
            print("warning: the naive wait distribution differs from the query's", file=sys.stderr)
        def busy(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in series if any(d["waiting"] for d in r["data"])]

        if busy(back()) != busy(naive_back):
            print("warning: the naive backlog differs from the query's", file=sys.stderr)
        return {
            "conversations": n,
            "events": total,
            "wait_distribution_ms": _median_ms(dist),
            "backlog_ms": _median_ms(back),
            "baseline_ms": baseline,
        }
    finally:
        engine.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--postgres", help="a PostgreSQL server URL (a throw-away database is made)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out: dict[str, Any] = run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.conversations)
    if args.postgres:
        name = f"postroom_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            url = sa.make_url(args.postgres).set(database=name)
            pg = run(url.render_as_string(hide_password=False), args.conversations)
            out["postgresql"] = pg
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if not args.json:
        sqlite = {k: v for k, v in out.items() if k != "postgresql"}
        print("sqlite", ", ".join(f"{k} {v}" for k, v in sqlite.items()))
        if "postgresql" in out:
            print("postgresql", ", ".join(f"{k} {v}" for k, v in out["postgresql"].items()))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

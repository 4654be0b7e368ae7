"""Prometheus scrape benchmark: `GET /metrics`'s collector over a database with N events.

Writes N events of synthetic history (the generator the tests use, with agents'
presence changes), plus a message row per conversation, a few conversations
waiting and agents in two queues, into a fresh database, then measures

* `scrape_ms`: one scrape through the collector (web/metrics.py: indexed counts
  read at scrape time, rendered in the text format), median of 5;
* `baseline_ms`: the same events-by-kind figure computed naively, reading every
  event row and counting in Python (median of 3).

    .venv/bin/python bench/metrics_scrape.py [--events 100000] [--postgres URL] [--json]

With --postgres, a throw-away database is created on that server and dropped at the
end. The last line with --json is {"scrape_ms": ..., "baseline_ms": ..., "events": N}
(for SQLite; with --postgres also "postgresql": {...}).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from tests.unit.analytics.generator import history  # noqa: E402

from postroom.store import db as store_db  # noqa: E402
from postroom.store.schema import agents, conversations, events, messages, threads  # noqa: E402
from postroom.web.metrics import PostroomCollector  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUEUES = ["support", "billing"]


def _fill(engine: sa.Engine, n_events: int) -> int:
    next_id, cid, total = 1, 1, 0
    now = datetime.now(UTC)
    while total < n_events:
        evs = history(cid, 2000, 24.0 * 7, first_cid=cid, first_id=next_id,
                      t0=T0 + timedelta(days=total / 20000))  # fmt: skip
        evs = evs[: n_events - total]
        with engine.begin() as conn:
            conn.execute(events.insert(), [
                {"id": e.id, "at": e.at, "kind": e.kind, "conversation_id": e.conversation_id,
                 "message_id": e.message_id, "data": dict(e.data)} for e in evs
            ])  # fmt: skip
        next_id += len(evs)
        total += len(evs)
        cid += 2000
    with engine.begin() as conn:
        tid = conn.execute(threads.insert().values(subject="bench", created_at=now,
                                                   last_activity_at=now)
                           .returning(threads.c.id)).scalar_one()  # fmt: skip
        conn.execute(messages.insert(), [
            {"direction": "in", "source": "smtp", "raw_sha256": "0" * 64, "raw_size": 1,
             "envelope_to": [], "received_at": now - timedelta(seconds=i % 600),
             "status": "processed" if i % 50 else "quarantined"} for i in range(cid // 4)
        ])  # fmt: skip
        conn.execute(conversations.insert(), [
            {"thread_id": tid, "state": ("queued", "alerting", "connected", "closed")[i % 4],
             "queue": QUEUES[i % 2], "priority": 0, "skills": [], "tags": [],
             "created_at": now, "enqueued_at": now - timedelta(minutes=i)} for i in range(400)
        ])  # fmt: skip
        conn.execute(agents.insert(), [
            {"id": f"agent{i}", "name": f"Agent {i}", "queues": QUEUES[: 1 + i % 2], "skills": [],
             "languages": [], "capacity": 1, "presence": ("on_queue", "away", "offline")[i % 3],
             "routing_status": ("idle", "off_queue", "off_queue")[i % 3], "updated_at": now}
            for i in range(60)
        ])  # fmt: skip
    return total


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return round(statistics.median(times), 1)


def run(url: str, n: int) -> dict[str, float]:
    engine = store_db.create_engine(url)
    store_db.migrate(engine)
    try:
        total = _fill(engine, n)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PostroomCollector(engine, lambda: datetime.now(UTC), lambda: QUEUES))

        def naive() -> Counter[str]:
            with engine.connect() as conn:
                return Counter(r.kind for r in conn.execute(sa.select(events)))

        text = generate_latest(registry).decode()
        assert "postroom_events_total" in text
        return {
            "events": total,
            "scrape_ms": _median_ms(lambda: generate_latest(registry), 5),
            "baseline_ms": _median_ms(naive, 3),
        }
    finally:
        engine.dispose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--postgres", help="a PostgreSQL URL; a throw-away database is made on it")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out: dict[str, Any] = run(f"sqlite:///{d}/bench.db", args.events)
    if args.postgres:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            url = sa.make_url(args.postgres).set(database=name)
            out["postgresql"] = run(url.render_as_string(hide_password=False), args.events)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if not args.json:
        for k, v in out.items():
            print(f"{k}: {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

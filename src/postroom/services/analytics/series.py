"""Analytics series for the supervisor dashboard's charts: the wait-time distribution
and the backlog over time, from the tables the projector (projector.py) keeps.

The job: `wait_distribution` counts the answered waits per queue in fixed buckets
(`BUCKETS`: under a minute ... over a day), grouped in SQL so the answer has at most
queues x buckets rows; `backlog` gives the number of conversations waiting in each
queue at every interval boundary, from the `wait` segments: the waits open at the
first boundary (one count per queue) plus, between boundaries, the waits that
started and ended (one time per wait in the range). The number of boundaries is
bounded by the caller (the API allows at most 5000 intervals).

What it must not do: write anything, know HTTP, or read the clock (the caller passes
`now`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from postroom.analytics import metrics as am
from postroom.store.db import as_utc
from postroom.store.schema import analytics_observations, analytics_segments


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str
    from_s: float  # inclusive
    to_s: float | None  # exclusive; None: no upper bound


# Answered waits by length. Email waits run from minutes to days, so the buckets do too.
BUCKETS: tuple[Bucket, ...] = (
    Bucket("<1m", 0, 60),
    Bucket("1-5m", 60, 300),
    Bucket("5-15m", 300, 900),
    Bucket("15-60m", 900, 3600),
    Bucket("1-4h", 3600, 4 * 3600),
    Bucket("4-24h", 4 * 3600, 86400),
    Bucket(">1d", 86400, None),
)


def bucket_of(seconds: float) -> int:
    """The index in BUCKETS of a wait of `seconds`."""
    for i, b in enumerate(BUCKETS):
        if b.to_s is None or seconds < b.to_s:
            return i
    return len(BUCKETS) - 1  # not reached: the last bucket has no upper bound


def buckets_json() -> list[dict[str, Any]]:
    return [
        {"label": b.label, "fromMs": b.from_s * 1000,
         "toMs": None if b.to_s is None else b.to_s * 1000}
        for b in BUCKETS
    ]  # fmt: skip


def _bucket_expr(value: sa.ColumnElement[float]) -> sa.ColumnElement[int]:
    whens = [(value < b.to_s, i) for i, b in enumerate(BUCKETS) if b.to_s is not None]
    return sa.case(*whens, else_=len(BUCKETS) - 1)


def wait_distribution(
    db: sa.Engine,
    start: datetime,
    end: datetime,
    *,
    queues: Sequence[str] = (),
    agents: Sequence[str] = (),
    names: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Answered waits (the `tAnswered` facts: one per wait segment an agent answered,
    counted when answered) in [start, end), per queue and bucket. `queues` and `agents`
    keep only those queues and the waits those agents answered (empty: all). Every queue
    of `names` that passes the queue filter is listed, with zeros if nothing was answered.
    Returns [{"group": {"queueId"}, "counts": [one per bucket], "total"}] by queue name."""
    o = analytics_observations
    bucket = _bucket_expr(o.c.value).label("bucket")
    query = (
        sa.select(o.c.queue, bucket, sa.func.count().label("n"))
        .where(o.c.at >= start, o.c.at < end, o.c.metric == "tAnswered")
        .group_by(o.c.queue, bucket)
    )
    if queues:
        query = query.where(o.c.queue.in_(list(queues)))
    if agents:
        query = query.where(o.c.agent.in_(list(agents)))
    counts: dict[str | None, list[int]] = {
        n: [0] * len(BUCKETS) for n in names if not queues or n in queues
    }
    with db.connect() as conn:
        for queue, idx, n in conn.execute(query):
            counts.setdefault(queue, [0] * len(BUCKETS))[int(idx)] += int(n)
    return [
        {"group": {"queueId": q}, "counts": c, "total": sum(c)}
        for q, c in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]


def backlog_edges(
    start: datetime, end: datetime, granularity: str | None, tz: ZoneInfo, now: datetime
) -> list[datetime]:
    """The moments the backlog is counted at: the interval boundaries from `start` to
    `end` that are not in the future, and `now` when it falls inside the range."""
    edges = [e for e in am.boundaries(start, end, granularity, tz) if e <= now]
    if edges and edges[-1] < now < end:
        edges.append(now)
    return edges


def waiting_at(waits: Iterable[tuple[datetime, datetime | None]], at: datetime) -> int:
    """How many of `waits` (start, end or None while waiting) were waiting at `at`: started
    at or before it and not ended by then. The definition `backlog` computes faster."""
    return sum(1 for s, e in waits if s <= at and (e is None or e > at))


def levels(
    edges: Sequence[datetime], opened: int, changes: Iterable[tuple[datetime, int]]
) -> list[int]:
    """How many wait at each of `edges` (ascending): `opened` at the first, then each
    change (a wait's start, +1, or end, -1, after the first edge and at or before the
    last) counted from the first edge at or after its moment."""
    steps = [0] * len(edges)
    if steps:
        steps[0] = opened
    for at, sign in changes:
        steps[bisect.bisect_left(edges, at)] += sign
    out, level = [], 0
    for step in steps:
        level += step
        out.append(level)
    return out


def backlog(
    db: sa.Engine,
    start: datetime,
    end: datetime,
    *,
    granularity: str | None,
    tz: ZoneInfo,
    now: datetime,
    queues: Sequence[str] = (),
    names: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Conversations waiting in each queue at every moment of `backlog_edges` (a wait
    segment from entering the queue until answered, abandoned, flowed out or
    transferred on; `waiting_at` is the definition). `queues` keeps only those
    (empty: all); every queue of `names` that passes is listed. Returns
    [{"group": {"queueId"}, "data": [{"at": ISO in tz, "waiting"}]}] by queue name."""
    edges = backlog_edges(start, end, granularity, tz, now)
    if not edges:
        return []
    first, last = edges[0], edges[-1]
    s = analytics_segments
    kept = s.c.queue.in_(list(queues)) if queues else sa.true()
    wait = sa.and_(s.c.kind == "wait", kept)
    opened = (
        sa.select(s.c.queue, sa.func.count())
        .where(wait, s.c.started_at <= first, sa.or_(s.c.ended_at.is_(None), s.c.ended_at > first))
        .group_by(s.c.queue)
    )
    starts = sa.select(s.c.queue, s.c.started_at).where(
        wait, s.c.started_at > first, s.c.started_at <= last
    )
    ends = sa.select(s.c.queue, s.c.ended_at).where(
        wait, s.c.ended_at > first, s.c.ended_at <= last
    )
    opened_by: dict[str | None, int] = {n: 0 for n in names if not queues or n in queues}
    changes: dict[str | None, list[tuple[datetime, int]]] = {q: [] for q in opened_by}
    with db.connect() as conn:
        for queue, n in conn.execute(opened):
            opened_by[queue] = opened_by.get(queue, 0) + int(n)
        for sign, query in ((1, starts), (-1, ends)):
            for queue, at in conn.execute(query).all():  # one fetch: far faster than row by row
                t = as_utc(at)
                assert t is not None
                changes.setdefault(queue, []).append((t, sign))
    out = []
    shown = [e.astimezone(tz).isoformat(timespec="seconds") for e in edges]
    for q in sorted(set(opened_by) | set(changes), key=lambda q: (q is None, q or "")):
        counts = levels(edges, opened_by.get(q, 0), changes.get(q, ()))
        data = [{"at": at, "waiting": n} for at, n in zip(shown, counts, strict=True)]
        out.append({"group": {"queueId": q}, "data": data})
    return out

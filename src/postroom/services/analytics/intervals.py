"""The interval rows (`analytics_intervals`), kept equal to the metric facts.

The job: `refresh(conn, units)` recomputes the rows of the given hours from the facts
(``postroom.analytics.rollup.roll``), in the caller's transaction — the projector calls
it with the hours a pass touched, old facts and new; `build(conn)` recomputes every
row (after a rebuild), a day of facts at a time; `units_of` gives the hours the stored
facts of some conversations fall in (before the projector replaces them); `cells`
reads what an aggregate query needs.

What it must not do: write any table but `analytics_intervals`, or know HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from postroom.analytics import rollup
from postroom.analytics.metrics import COUNT_METRICS
from postroom.services.analytics import bulk
from postroom.store.db import as_utc
from postroom.store.schema import analytics_intervals, analytics_observations

_COLUMNS = (
    "level", "start", "metric", *rollup.FIELDS, "count", "sum_us", "min", "max", "sketch",
    "waits",
)  # fmt: skip
_CHUNK = 500
_DAY = timedelta(days=1)
_INSERT_ROWS = 50_000  # interval rows handed to the driver at a time


def unit_of(at: datetime) -> datetime:
    return rollup.floor(at, int(rollup.UNIT.total_seconds() // 60))


def units_of(conn: sa.Connection, keys: Sequence[str]) -> set[datetime]:
    """The hours the stored facts of these conversations fall in."""
    o = analytics_observations
    out: set[datetime] = set()
    for i in range(0, len(keys), _CHUNK):
        rows = conn.execute(
            sa.select(o.c.at).where(o.c.conversation_key.in_(keys[i : i + _CHUNK])).distinct()
        )
        out.update(unit_of(_aware(at)) for (at,) in rows)
    return out


def _ranges(units: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive hours as [start, end) ranges."""
    out: list[tuple[datetime, datetime]] = []
    for u in sorted(units):
        if out and out[-1][1] == u:
            out[-1] = (out[-1][0], u + rollup.UNIT)
        else:
            out.append((u, u + rollup.UNIT))
    return out


def refresh(conn: sa.Connection, units: Iterable[datetime]) -> None:
    """Recompute the rows of these hours from the facts."""
    t = analytics_intervals
    for lo, hi in _ranges(units):
        for lv in rollup.LEVELS:
            conn.execute(t.delete().where(t.c.level == lv.name, t.c.start >= lo, t.c.start < hi))
        _roll_range(conn, lo, hi)


_PENDING = "pending"  # a row of this level: a rebuild began, its `build` has not run


def mark_pending(conn: sa.Connection, now: datetime) -> None:
    """Note that the rows are to be built (a rebuild began; `build` clears it): if the
    rebuild stops early, the projector builds them once it has caught up."""
    conn.execute(analytics_intervals.insert().values(
        level=_PENDING, start=now, metric="", count=0, sum_us=0, min=0.0, max=0.0, sketch="[]",
    ))  # fmt: skip


def pending(conn: sa.Connection) -> bool:
    t = analytics_intervals
    return conn.execute(sa.select(t.c.id).where(t.c.level == _PENDING).limit(1)).first() is not None


def build(conn: sa.Connection) -> None:
    """Every row again from the facts."""
    conn.execute(analytics_intervals.delete())
    o = analytics_observations
    first, last = conn.execute(sa.select(sa.func.min(o.c.at), sa.func.max(o.c.at))).one()
    if first is None:
        return
    lo, end = unit_of(_aware(first)), _aware(last)
    while lo <= end:
        _roll_range(conn, lo, lo + _DAY)
        lo += _DAY


def build_from(
    conn: sa.Connection, rolled: dict[str, dict[rollup.CellKey, rollup.Cell]], stale: set[datetime]
) -> None:
    """Every row again: from `rolled`, the cells of the facts rolled as they were written
    (a rebuild), but the hours in `stale` (some of their facts were replaced after they
    were rolled) from the facts."""
    conn.execute(analytics_intervals.delete())
    if stale:
        rolled = {
            name: {k: c for k, c in cells.items() if unit_of(k[0]) not in stale}
            for name, cells in rolled.items()
        }
    _insert(conn, rolled)
    for lo, hi in _ranges(stale):
        _roll_range(conn, lo, hi)


def _roll_range(conn: sa.Connection, lo: datetime, hi: datetime) -> None:
    o = analytics_observations
    at_col = sa.type_coerce(o.c.at, sa.String)  # SQLite: text, parsed once below
    rows = conn.execute(
        sa.select(
            o.c.metric, at_col, o.c.value, o.c.queue, o.c.agent, o.c.route, o.c.wrapup_code,
            o.c.direction,
        ).where(o.c.at >= lo, o.c.at < hi)
    ).all()  # fmt: skip
    facts = (
        (m, _time(at).timestamp(), v, q, a, r, w, d) for m, at, v, q, a, r, w, d in rows
    )
    _insert(conn, rollup.roll_rows(facts))


def _insert(conn: sa.Connection, rolled: dict[str, dict[rollup.CellKey, rollup.Cell]]) -> None:
    out: list[tuple[Any, ...]] = []
    time: Callable[[datetime], Any] = (
        bulk.sqlite_time if conn.dialect.name == "sqlite" else (lambda x: x)
    )
    stored: dict[datetime, Any] = {}  # cells share their starts: convert each once
    for name, cells in rolled.items():
        for key, c in cells.items():
            at = stored.get(key[0])
            if at is None:
                at = stored[key[0]] = time(key[0])
            out.append((name, at, *key[1:], c.count, c.sum_us, c.min, c.max,
                        c.encoded_sketch(), c.encoded_waits()))  # fmt: skip
            if len(out) >= _INSERT_ROWS:
                bulk.insert(conn, analytics_intervals, _COLUMNS, out)
                out = []
    bulk.insert(conn, analytics_intervals, _COLUMNS, out)


def cells(
    conn: sa.Connection,
    level: rollup.Level,
    start: datetime,
    end: datetime,
    metrics: Sequence[str],
    where: sa.ColumnElement[bool],
) -> Iterator[tuple[rollup.CellKey, rollup.Cell]]:
    """The stored cells of `level` in [start, end) for `metrics`, filtered by `where`
    (over analytics_intervals' dimension columns)."""
    t = analytics_intervals
    rows = conn.execute(
        sa.select(
            _start(), t.c.metric, t.c.queue, t.c.agent, t.c.route, t.c.wrapup_code,
            t.c.direction, t.c.count, t.c.sum_us, t.c.min, t.c.max, t.c.sketch,
        ).where(
            t.c.level == level.name, t.c.start >= start, t.c.start < end,
            t.c.metric.in_(metrics), where,
        )
    ).tuples()  # fmt: skip
    starts = _Starts()
    for at, metric, q, a, r, w, d, count, sum_us, lo, hi, sketch in rows:
        key: rollup.CellKey = (starts[at], metric, q, a, r, w, d)
        # a count is answered by its count: no need to read its sketch
        flat = () if metric in COUNT_METRICS else orjson.loads(sketch)  # ints we wrote
        yield key, rollup.Cell.decoded(count, sum_us, lo, hi, flat)


def waits(
    conn: sa.Connection,
    level: rollup.Level,
    start: datetime,
    end: datetime,
    where: sa.ColumnElement[bool],
) -> Iterator[tuple[rollup.CellKey, int, str]]:
    """(key, count, waits) of the answered and abandoned waits' cells of `level` (one
    with `waits`) in [start, end), filtered by `where`."""
    t = analytics_intervals
    rows = conn.execute(
        sa.select(
            _start(), t.c.metric, t.c.queue, t.c.agent, t.c.route, t.c.wrapup_code,
            t.c.direction, t.c.count, t.c.waits,
        ).where(
            t.c.level == level.name, t.c.start >= start, t.c.start < end,
            t.c.metric.in_(("tAnswered", "tAbandon")), t.c.waits.is_not(None), where,
        )
    ).tuples()  # fmt: skip
    starts = _Starts()
    for at, metric, q, a, r, w, d, count, encoded in rows:
        yield (starts[at], metric, q, a, r, w, d), count, encoded


def _start() -> sa.ColumnElement[Any]:
    """The interval start as the driver gives it (SQLite: text), for `_Starts`."""
    return sa.type_coerce(analytics_intervals.c.start, sa.String).label("start")


class _Starts(dict[Any, datetime]):
    """Interval starts as read (text or datetime) to aware UTC times, each parsed once
    (the rows of a query share a few hundred starts)."""

    def __missing__(self, raw: Any) -> datetime:
        got = self[raw] = _time(raw)
        return got


COLUMN = {
    "queueId": analytics_intervals.c.queue,
    "userId": analytics_intervals.c.agent,
    "addressTo": analytics_intervals.c.route,
    "wrapUpCode": analytics_intervals.c.wrapup_code,
    "direction": analytics_intervals.c.direction,
}


def _time(t: str | datetime) -> datetime:
    if isinstance(t, str):
        return datetime.fromisoformat(t).replace(tzinfo=UTC)
    return t if t.tzinfo is UTC else _aware(t)


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        return t.replace(tzinfo=UTC)
    out = as_utc(t)
    assert out is not None
    return out

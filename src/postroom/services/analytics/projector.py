"""The analytics projector: `events` into the analytics tables, incrementally or rebuilt.

The job: `AnalyticsProjector.step` reads the events past its checkpoint, feeds
them to the pure trackers of ``postroom.analytics.details`` and writes, for
every conversation an event touched, its detail row, its segments and its
metric facts (``postroom.analytics.metrics.observations``), replacing what was
there, in one transaction with the checkpoint. `rebuild` empties the tables
and projects the whole log with the same code. Other projections of the same
events (a `Sink`, e.g. agents' status) ride on the same pass: each batch of
events is handed to every sink in the same transaction, and a rebuild resets
them too, so one checkpoint covers all.

On PostgreSQL an event with a lower id can commit after one with a higher id
was read: the checkpoint keeps such holes (`gaps`) as the webhook dispatcher
does (services/admin/webhooks.py): an event after a hole younger than
`settle_s` waits for it, a hole is looked for on every pass until `gap_wait_s`
has passed. An event that arrives after later events of its conversation were
projected makes the projector replay that conversation from `events`, so the
result is the same as a rebuild's.

What it must not do: write `events` or any table but the analytics ones, or
know HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from postroom.analytics import metrics as am
from postroom.analytics import rollup
from postroom.analytics.details import (
    ConversationDetail,
    ConversationTracker,
    EventRecord,
    key_of,
)
from postroom.services.analytics import bulk, intervals
from postroom.store.db import as_utc
from postroom.store.schema import (
    analytics_checkpoint,
    analytics_conversations,
    analytics_intervals,
    analytics_observations,
    analytics_segments,
    events,
)

log = logging.getLogger("postroom.analytics")

SETTLE_S = 2.0
GAP_WAIT_S = 3600.0
MAX_GAPS = 10_000
BATCH = 2000
REBUILD_BATCH = 20_000  # a rebuild reads more at a time: fewer passes, fewer rewrites
CACHE_MAX = 200_000  # open conversations kept in memory; past it the cache starts over
_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    settle_s: float = SETTLE_S
    gap_wait_s: float = GAP_WAIT_S
    max_gaps: int = MAX_GAPS
    batch: int = BATCH
    cache_max: int = CACHE_MAX
    rebuild_batch: int = REBUILD_BATCH


class Sink(Protocol):
    """Another projection of the events, fed by the projector in its own transaction."""

    def apply(self, conn: sa.Connection, taken: Sequence[EventRecord]) -> None:
        """Project `taken` (in id order; late commits included once each)."""

    def reset(self, conn: sa.Connection) -> None:
        """Forget everything (a rebuild follows)."""


def record(row: Any) -> EventRecord:
    at = as_utc(row.at)
    assert at is not None
    return EventRecord(
        int(row.id), at, str(row.kind), row.conversation_id, row.data or {}, row.message_id
    )


# The columns `_step` reads: times and JSON as the driver gives them (SQLite: text), so
# that `_record` parses them once, without SQLAlchemy's per-row processing.
_EVENT_COLUMNS = (
    events.c.id,
    sa.type_coerce(events.c.at, sa.String).label("at"),
    events.c.kind,
    events.c.conversation_id,
    sa.type_coerce(events.c.data, sa.Text).label("data"),
    events.c.message_id,
)


def _record(row: Any, texts: dict[datetime | None, Any] | None = None) -> EventRecord:
    eid, at, kind, cid, data, mid = row
    # SQLite stores UTC as text; PostgreSQL's driver gives an aware datetime.
    if isinstance(at, str):
        text = at
        at = datetime.fromisoformat(text + "+00:00")  # aware, datetime.UTC
        if texts is not None and len(text) == 26 and text[10] == " ":
            texts[at] = text  # as bulk.sqlite_time gives it: written again as it was read
    elif at.tzinfo is not UTC:
        at = as_utc(at)
    if isinstance(data, str):
        data = _loads(data)
    return EventRecord(int(eid), at, str(kind), cid, data or {}, mid)


def _loads(text: str) -> Any:
    """`json.loads`, faster: orjson, but what it refuses and the standard library takes
    (NaN, integers past 64 bits, lone surrogates) is read as the standard library does."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class AnalyticsProjector:
    def __init__(
        self,
        engine: sa.Engine,
        clock: Callable[[], datetime],
        config: ProjectorConfig | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.config = config or ProjectorConfig()
        self.sinks = tuple(sinks)
        self._cache: dict[str, ConversationTracker] = {}
        self._written: int | None = None  # the checkpoint this projector last wrote
        # During a rebuild, the keys written since it emptied the tables: only those
        # have rows to replace (None: not rebuilding, or another projector took part).
        self._fresh: set[str] | None = None
        self._rolled = _Rolled()  # during a rebuild: the facts' cells, rolled as written
        self._batch = self.config.batch

    # -- projecting ------------------------------------------------------------------

    def step(self, settle_s: float | None = None) -> int:
        """Project one batch; returns how many events it took (0: caught up)."""
        try:
            return self._step(self.config.settle_s if settle_s is None else settle_s)
        except sa.exc.IntegrityError:
            # Another process projected the same events at the same moment (SQLite, where
            # the checkpoint row cannot be locked): its rows stand, this pass is void.
            self._cache.clear()
            self._written = None
            self._rolled.stop()
            return 0
        except Exception:
            self._cache.clear()  # the transaction rolled back: memory may be ahead of it
            self._written = None
            self._rolled.stop()
            raise

    def run_until_caught_up(self, settle_s: float | None = None) -> int:
        total = 0
        while n := self.step(settle_s):
            total += n
        return total

    def _step(self, settle_s: float) -> int:
        now = self.clock()
        cfg = self.config
        with self.engine.begin() as conn:
            bulk.utc_session(conn)
            cur = conn.execute(
                sa.select(analytics_checkpoint)
                .where(analytics_checkpoint.c.id == 1)
                .with_for_update()
            ).first()
            if cur is None:
                conn.execute(
                    analytics_checkpoint.insert().values(
                        id=1, last_event_id=0, gaps={}, updated_at=now
                    )
                )
                high, old_gaps = 0, {}
            else:
                high, old_gaps = int(cur.last_event_id), dict(cur.gaps or {})
            if self._written != high:
                self._cache.clear()  # someone else moved the checkpoint (a rebuild)
                self._fresh = None
                self._rolled.stop()
            gaps: dict[int, datetime] = {}
            for key, seen in old_gaps.items():
                when = datetime.fromisoformat(str(seen))
                if (now - when).total_seconds() < cfg.gap_wait_s:
                    gaps[int(key)] = when
            cond = events.c.id > high
            if gaps:
                cond = sa.or_(cond, events.c.id.in_(sorted(gaps)))
            rows = conn.execute(
                sa.select(*_EVENT_COLUMNS).where(cond).order_by(events.c.id).limit(self._batch)
            ).all()
            young = {g for g, seen in gaps.items() if (now - seen).total_seconds() < settle_s}
            taken: list[EventRecord] = []
            texts: dict[datetime | None, Any] | None = {} if conn.dialect.name == "sqlite" else None
            start_high = high
            for r in rows:
                eid = int(r[0])
                if eid in gaps:  # a late commit: take it now
                    del gaps[eid]
                    young.discard(eid)
                    taken.append(_record(r, texts))
                    continue
                if eid <= high:
                    continue
                missing = range(max(high + 1, eid - cfg.max_gaps), eid)
                for gid in missing:
                    gaps.setdefault(gid, now)
                if settle_s > 0:
                    young.update(missing)
                if young and min(young) < eid:
                    high = eid - 1  # wait for the hole to fill (or to grow old)
                    break
                taken.append(_record(r, texts))
                high = eid
            if len(gaps) > cfg.max_gaps:
                gaps = dict(sorted(gaps.items())[-cfg.max_gaps :])
            touched = self._project(conn, taken, high)
            self._write(conn, touched, texts or {})
            if self._fresh is None and len(rows) < self._batch and intervals.pending(conn):
                intervals.build(conn)  # caught up after a rebuild that stopped early
            for sink in self.sinks:
                sink.apply(conn, taken)
            if high != start_high or gaps.keys() != {int(k) for k in old_gaps}:
                conn.execute(
                    analytics_checkpoint.update()
                    .where(analytics_checkpoint.c.id == 1)
                    .values(
                        last_event_id=high,
                        gaps={str(g): seen.isoformat() for g, seen in sorted(gaps.items())},
                        updated_at=now,
                    )
                )
        self._written = high
        for key in [k for k, t in self._cache.items() if t.closed]:
            del self._cache[key]
        if len(self._cache) > cfg.cache_max:
            self._cache.clear()
        return len(taken)

    def _project(
        self, conn: sa.Connection, taken: Sequence[EventRecord], high: int
    ) -> list[ConversationDetail]:
        groups: dict[str, list[EventRecord]] = {}
        for e in taken:
            key = key_of(e)
            if key is not None:
                groups.setdefault(key, []).append(e)
        if not groups:
            return []
        missing = [k for k in groups if k not in self._cache]
        known: set[str] = set()
        if self._fresh is not None:
            known = {k for k in missing if k in self._fresh}
            missing = []
        for chunk in _chunks(missing):
            known.update(
                str(k)
                for (k,) in conn.execute(
                    sa.select(analytics_conversations.c.key).where(
                        analytics_conversations.c.key.in_(chunk)
                    )
                )
            )
        out = []
        for key, evs in groups.items():
            tracker = self._cache.get(key)
            late = tracker is not None and evs[0].id <= tracker.last_event_id
            if (tracker is None and key in known) or late:
                tracker = self._replay(conn, key, evs, high)
            else:
                if tracker is None:
                    tracker = ConversationTracker(key, evs[0])
                for e in evs:
                    tracker.apply(e)
            self._cache[key] = tracker
            out.append(tracker.detail)
        return out

    def _replay(
        self, conn: sa.Connection, key: str, evs: Sequence[EventRecord], high: int
    ) -> ConversationTracker:
        """The conversation from all its events up to `high` (an event came late, or
        the projector restarted and holds nothing of it)."""
        cid = evs[0].conversation_id
        if cid is None:
            history = list(evs)
        else:
            upto = max(high, max(e.id for e in evs))
            history = [
                record(r)
                for r in conn.execute(
                    sa.select(events)
                    .where(events.c.conversation_id == cid, events.c.id <= upto)
                    .order_by(events.c.id)
                )
            ]
        tracker = ConversationTracker(key, history[0])
        for e in history:
            tracker.apply(e)
        return tracker

    def _write(
        self,
        conn: sa.Connection,
        details: Sequence[ConversationDetail],
        texts: dict[datetime | None, Any] | None = None,
    ) -> None:
        """Replace the rows of `details`, and the interval rows of the hours their old and
        new facts fall in (a rebuild builds the intervals at its end instead)."""
        if not details:
            return
        keys = [d.key for d in details]
        fresh = self._fresh
        old = keys if fresh is None else [k for k in keys if k in fresh]
        units: set[datetime] = set()
        if fresh is None:
            units = intervals.units_of(conn, old)
        rolled = self._rolled if fresh is not None and self._rolled.on else None
        if rolled is not None:
            rolled.replacing(conn, old)
        for chunk in _chunks(old):
            for table in (analytics_observations, analytics_segments):
                conn.execute(table.delete().where(table.c.conversation_key.in_(chunk)))
            conn.execute(
                analytics_conversations.delete().where(analytics_conversations.c.key.in_(chunk))
            )
        # segments and facts share times, most of them the events' (as read: `texts`)
        times: dict[datetime | None, Any] = {None: None}
        times.update(texts or {})

        def tm(t: datetime | None) -> Any:
            got = times.get(t, times)
            if got is times:
                got = times[t] = bulk.sqlite_time(t)
            return got

        if conn.dialect.name != "sqlite":
            tm = _same
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        convs: list[tuple[Any, ...]] = []
        segs: list[tuple[Any, ...]] = []
        obs: list[tuple[Any, ...]] = []
        for d in details:
            key = d.key
            queues = d.queues
            convs.append((
                key, d.conversation_id, d.message_id, tm(d.started_at), tm(d.ended_at),
                d.direction, (d.route or "")[:320] or None, queues[0] if queues else None,
                d.outcome, (d.wrapup_code or "")[:200] or None, dumps(d.as_dict()),
                d.last_event_id,
            ))  # fmt: skip
            segs.extend(
                (key, i, s.kind, s.queue, s.agent, tm(s.start), tm(s.end), s.outcome)
                for i, s in enumerate(d.segments)
            )
            facts: list[rollup.FactRow] = []
            for o in am.observations(d):
                route, code = (o.route or "")[:320] or None, (o.wrapup_code or "")[:200] or None
                obs.append((
                    key, o.metric, tm(o.at), tm(o.start), o.value, o.queue, o.agent, route,
                    code, o.direction,
                ))  # fmt: skip
                if fresh is None:
                    units.add(intervals.unit_of(o.at))
                elif rolled is not None:  # the fact as intervals.py reads it back
                    facts.append((o.metric, o.at.timestamp(), float(o.value), o.queue,
                                  o.agent, route, code, o.direction))  # fmt: skip
            if rolled is not None:
                rolled.wrote(key, facts, d.outcome != "open")
        bulk.insert(conn, analytics_conversations, _CONVERSATION_COLUMNS, convs)
        bulk.insert(conn, analytics_segments, _SEGMENT_COLUMNS, segs)
        bulk.insert(conn, analytics_observations, _OBSERVATION_COLUMNS, obs)
        if fresh is None:
            intervals.refresh(conn, units)
        else:
            fresh.update(keys)

    def rebuild(self) -> int:
        """Empty the analytics tables and project every event again; returns how many."""
        now = self.clock()
        with self.engine.begin() as conn:
            cur = conn.execute(
                sa.select(analytics_checkpoint.c.id)
                .where(analytics_checkpoint.c.id == 1)
                .with_for_update()
            ).first()
            for table in (
                analytics_intervals,
                analytics_observations,
                analytics_segments,
                analytics_conversations,
            ):
                conn.execute(table.delete())
            intervals.mark_pending(conn, now)
            for sink in self.sinks:
                sink.reset(conn)
            if cur is None:
                conn.execute(
                    analytics_checkpoint.insert().values(
                        id=1, last_event_id=0, gaps={}, updated_at=now
                    )
                )
            else:
                conn.execute(
                    analytics_checkpoint.update().values(last_event_id=0, gaps={}, updated_at=now)
                )
        self._cache.clear()
        self._written = 0
        self._fresh = set()
        self._rolled.start()
        self._batch = self.config.rebuild_batch
        try:
            with bulk.sqlite_bulk_mode(self.engine):
                # Every event there is has long committed, bar the last moments': no settling.
                n = self.run_until_caught_up(settle_s=0.0)
                with self.engine.begin() as conn:
                    bulk.utc_session(conn)
                    if self._rolled.on:  # no other projector took part: the rolled cells
                        cells, stale = self._rolled.result()  # are the facts'
                        intervals.build_from(conn, cells, stale)
                    else:
                        intervals.build(conn)
        finally:
            self._fresh = None
            self._rolled.stop()
            self._batch = self.config.batch
        return n

    def checkpoint(self) -> tuple[int, list[int]]:
        with self.engine.connect() as conn:
            cur = conn.execute(
                sa.select(analytics_checkpoint).where(analytics_checkpoint.c.id == 1)
            ).first()
        if cur is None:
            return 0, []
        return int(cur.last_event_id), sorted(int(g) for g in (cur.gaps or {}))


def _same(t: datetime | None) -> datetime | None:
    return t


class _Rolled:
    """A rebuild's interval cells, rolled from the facts as `_write` writes them, so that
    the rebuild need not read every fact back: a conversation's facts are rolled once it
    has ended (`wrote(..., ended=True)`), an open one's are kept until it ends or the
    rebuild does. Facts rolled and then replaced (an event came after the end) cannot
    be taken out of the cells: their hours are `stale`, built from the stored facts."""

    def __init__(self) -> None:
        self.on = False
        self._roller = rollup.Roller()
        self._rolled: set[str] = set()  # conversations whose facts are in the cells
        self._open: dict[str, list[rollup.FactRow]] = {}
        self._stale: set[datetime] = set()

    def start(self) -> None:
        self.stop()
        self.on = True

    def stop(self) -> None:
        """Forget it all (the rebuild ended, or the cells may no longer match the facts)."""
        self.on = False
        self._roller = rollup.Roller()
        self._rolled = set()
        self._open = {}
        self._stale = set()

    def replacing(self, conn: sa.Connection, keys: Sequence[str]) -> None:
        """The stored facts of `keys` are about to be replaced."""
        again = [k for k in keys if k in self._rolled]
        if again:
            self._stale |= intervals.units_of(conn, again)
            self._rolled.difference_update(again)

    def wrote(self, key: str, facts: list[rollup.FactRow], ended: bool) -> None:
        if ended:
            self._roller.add(facts)
            self._rolled.add(key)
            self._open.pop(key, None)
        else:
            self._open[key] = facts

    def result(self) -> tuple[dict[str, dict[rollup.CellKey, rollup.Cell]], set[datetime]]:
        for facts in self._open.values():
            self._roller.add(facts)
        self._open = {}
        return self._roller.cells(), self._stale


_CONVERSATION_COLUMNS = (
    "key", "conversation_id", "message_id", "started_at", "ended_at", "direction", "route",
    "first_queue", "outcome", "wrapup_code", "detail", "last_event_id",
)  # fmt: skip
_SEGMENT_COLUMNS = (
    "conversation_key", "seq", "kind", "queue", "agent", "started_at", "ended_at", "outcome",
)  # fmt: skip
_OBSERVATION_COLUMNS = (
    "conversation_key", "metric", "at", "start", "value", "queue", "agent", "route",
    "wrapup_code", "direction",
)  # fmt: skip

"""Analytics use cases: the projector from `events`, the rebuild, and the queries.

The job: `AnalyticsProjector.step` reads the events past its checkpoint, feeds
them to the pure trackers of ``postroom.analytics.details`` and writes, for
every conversation an event touched, its detail row, its segments and its
metric facts (``postroom.analytics.metrics.observations``), replacing what was
there, in one transaction with the checkpoint. `rebuild` empties the tables
and projects the whole log with the same code. `aggregates` and `details`
answer the API's queries from those tables (aggregates are computed from the
stored facts at query time: no interval table to keep in step).

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

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from postroom.analytics import metrics as am
from postroom.analytics.details import (
    ConversationDetail,
    ConversationTracker,
    EventRecord,
    key_of,
    replay,
)
from postroom.domain.routes import QueueConfig
from postroom.store.db import as_utc
from postroom.store.schema import (
    analytics_checkpoint,
    analytics_conversations,
    analytics_observations,
    analytics_segments,
    events,
)

log = logging.getLogger("postroom.analytics")

SETTLE_S = 2.0
GAP_WAIT_S = 3600.0
MAX_GAPS = 10_000
BATCH = 2000
CACHE_MAX = 200_000  # open conversations kept in memory; past it the cache starts over
_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    settle_s: float = SETTLE_S
    gap_wait_s: float = GAP_WAIT_S
    max_gaps: int = MAX_GAPS
    batch: int = BATCH
    cache_max: int = CACHE_MAX


def record(row: Any) -> EventRecord:
    at = as_utc(row.at)
    assert at is not None
    return EventRecord(
        int(row.id), at, str(row.kind), row.conversation_id, row.data or {}, row.message_id
    )


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class AnalyticsProjector:
    def __init__(
        self,
        engine: sa.Engine,
        clock: Callable[[], datetime],
        config: ProjectorConfig | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.config = config or ProjectorConfig()
        self._cache: dict[str, ConversationTracker] = {}
        self._written: int | None = None  # the checkpoint this projector last wrote

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
            return 0
        except Exception:
            self._cache.clear()  # the transaction rolled back: memory may be ahead of it
            self._written = None
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
            gaps: dict[int, datetime] = {}
            for key, seen in old_gaps.items():
                when = datetime.fromisoformat(str(seen))
                if (now - when).total_seconds() < cfg.gap_wait_s:
                    gaps[int(key)] = when
            cond = events.c.id > high
            if gaps:
                cond = sa.or_(cond, events.c.id.in_(sorted(gaps)))
            rows = conn.execute(
                sa.select(events).where(cond).order_by(events.c.id).limit(cfg.batch)
            ).all()
            young = {g for g, seen in gaps.items() if (now - seen).total_seconds() < settle_s}
            taken: list[EventRecord] = []
            start_high = high
            for r in rows:
                eid = int(r.id)
                if eid in gaps:  # a late commit: take it now
                    del gaps[eid]
                    young.discard(eid)
                    taken.append(record(r))
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
                taken.append(record(r))
                high = eid
            if len(gaps) > cfg.max_gaps:
                gaps = dict(sorted(gaps.items())[-cfg.max_gaps :])
            touched = self._project(conn, taken, high)
            self._write(conn, touched)
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

    def _write(self, conn: sa.Connection, details: Sequence[ConversationDetail]) -> None:
        if not details:
            return
        keys = [d.key for d in details]
        for chunk in _chunks(keys):
            for table in (analytics_observations, analytics_segments):
                conn.execute(table.delete().where(table.c.conversation_key.in_(chunk)))
            conn.execute(
                analytics_conversations.delete().where(analytics_conversations.c.key.in_(chunk))
            )
        convs: list[dict[str, Any]] = []
        segs: list[dict[str, Any]] = []
        obs: list[dict[str, Any]] = []
        for d in details:
            convs.append(_conversation_row(d))
            segs.extend(
                {
                    "conversation_key": d.key,
                    "seq": i,
                    "kind": s.kind,
                    "queue": s.queue,
                    "agent": s.agent,
                    "started_at": s.start,
                    "ended_at": s.end,
                    "outcome": s.outcome,
                }
                for i, s in enumerate(d.segments)
            )
            obs.extend(_observation_row(o) for o in am.observations(d))
        conn.execute(analytics_conversations.insert(), convs)
        if segs:
            conn.execute(analytics_segments.insert(), segs)
        if obs:
            conn.execute(analytics_observations.insert(), obs)

    def rebuild(self) -> int:
        """Empty the analytics tables and project every event again; returns how many."""
        now = self.clock()
        with self.engine.begin() as conn:
            cur = conn.execute(
                sa.select(analytics_checkpoint.c.id)
                .where(analytics_checkpoint.c.id == 1)
                .with_for_update()
            ).first()
            for table in (analytics_observations, analytics_segments, analytics_conversations):
                conn.execute(table.delete())
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
        # Every event there is has long committed, bar the last moments': no settling.
        return self.run_until_caught_up(settle_s=0.0)

    def checkpoint(self) -> tuple[int, list[int]]:
        with self.engine.connect() as conn:
            cur = conn.execute(
                sa.select(analytics_checkpoint).where(analytics_checkpoint.c.id == 1)
            ).first()
        if cur is None:
            return 0, []
        return int(cur.last_event_id), sorted(int(g) for g in (cur.gaps or {}))


def _conversation_row(d: ConversationDetail) -> dict[str, Any]:
    return {
        "key": d.key,
        "conversation_id": d.conversation_id,
        "message_id": d.message_id,
        "started_at": d.started_at,
        "ended_at": d.ended_at,
        "direction": d.direction,
        "route": (d.route or "")[:320] or None,
        "first_queue": d.queues[0] if d.queues else None,
        "outcome": d.outcome,
        "wrapup_code": (d.wrapup_code or "")[:200] or None,
        "detail": d.as_dict(),
        "last_event_id": d.last_event_id,
    }


def _observation_row(o: am.Observation) -> dict[str, Any]:
    return {
        "conversation_key": o.conversation,
        "metric": o.metric,
        "at": o.at,
        "start": o.start,
        "value": o.value,
        "queue": o.queue,
        "agent": o.agent,
        "route": (o.route or "")[:320] or None,
        "wrapup_code": (o.wrapup_code or "")[:200] or None,
        "direction": o.direction,
    }


# -- queries ------------------------------------------------------------------------------

_OBS_COLUMN = {
    "queueId": analytics_observations.c.queue,
    "userId": analytics_observations.c.agent,
    "addressTo": analytics_observations.c.route,
    "wrapUpCode": analytics_observations.c.wrapup_code,
    "direction": analytics_observations.c.direction,
}


@dataclass(frozen=True, slots=True)
class Predicate:
    dimension: str  # one of metrics.DIMENSIONS, or "outcome" in details queries
    value: str


@dataclass(frozen=True, slots=True)
class Filter:
    type: str = "and"  # "and" | "or"
    predicates: tuple[Predicate, ...] = ()


def targets_of(queues: Iterable[QueueConfig]) -> dict[str, am.ServiceTarget]:
    """Each queue's current service-level target (calendar time)."""
    return {
        q.name: am.ServiceTarget(q.service_level_percent, q.service_level_seconds) for q in queues
    }


def _combine(f: Filter | None, clause: Callable[[Predicate], sa.ColumnElement[bool]]) -> Any:
    if f is None or not f.predicates:
        return sa.true()
    parts = [clause(p) for p in f.predicates]
    return sa.or_(*parts) if f.type == "or" else sa.and_(*parts)


def aggregates(
    db: sa.Engine,
    start: datetime,
    end: datetime,
    *,
    metrics: Sequence[str],
    granularity: str | None,
    tz: ZoneInfo,
    group_by: Sequence[str],
    filter: Filter | None,
    targets: Mapping[str, am.ServiceTarget],
    short_abandon_s: float = am.SHORT_ABANDON_S,
) -> list[dict[str, Any]]:
    """Genesys-shaped aggregate results (analytics/metrics.py `aggregate`)."""
    facts = sorted({f for m in metrics for f in am.NEEDS.get(m, (m,))})
    o = analytics_observations
    query = sa.select(
        o.c.metric, o.c.at, o.c.value, o.c.queue, o.c.agent, o.c.route, o.c.wrapup_code,
        o.c.direction, o.c.start, o.c.conversation_key,
    ).where(
        o.c.at >= start, o.c.at < end, o.c.metric.in_(facts),
        _combine(filter, lambda p: _OBS_COLUMN[p.dimension] == p.value),
    )  # fmt: skip
    with db.connect() as conn:
        rows = conn.execute(query).all()
    obs = (
        am.Observation(
            r.metric,
            _aware(r.at),
            r.value,
            r.queue,
            r.agent,
            r.route,
            r.wrapup_code,
            r.direction,
            as_utc(r.start),
            r.conversation_key,
        )
        for r in rows
    )
    return am.aggregate(
        obs, start, end, metrics=metrics, granularity=granularity, tz=tz, group_by=group_by,
        targets=targets, short_abandon_s=short_abandon_s,
    )  # fmt: skip


def _aware(t: datetime) -> datetime:
    out = as_utc(t)
    assert out is not None
    return out


_CONV_COLUMN = {
    "addressTo": analytics_conversations.c.route,
    "wrapUpCode": analytics_conversations.c.wrapup_code,
    "direction": analytics_conversations.c.direction,
    "outcome": analytics_conversations.c.outcome,
}


def _detail_clause(p: Predicate) -> sa.ColumnElement[bool]:
    if p.dimension in ("queueId", "userId"):
        s = analytics_segments
        col = s.c.queue if p.dimension == "queueId" else s.c.agent
        return sa.exists().where(
            s.c.conversation_key == analytics_conversations.c.key, col == p.value
        )
    return _CONV_COLUMN[p.dimension] == p.value


def details(
    db: sa.Engine,
    start: datetime,
    end: datetime,
    *,
    filter: Filter | None,
    page_size: int,
    page_number: int,
) -> tuple[int, list[dict[str, Any]]]:
    """Conversations that started in [start, end), oldest first: (total, one page)."""
    c = analytics_conversations
    where = sa.and_(c.c.started_at >= start, c.c.started_at < end, _combine(filter, _detail_clause))
    with db.connect() as conn:
        count = sa.select(sa.func.count()).select_from(c).where(where)
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(
            sa.select(c.c.detail)
            .where(where)
            .order_by(c.c.started_at, c.c.key)
            .limit(page_size)
            .offset((page_number - 1) * page_size)
        ).all()
    return total, [dict(r.detail) for r in rows]


# -- today's service level for the queue figures -------------------------------------------


# The events that shape queue waits (messages and wrap-up do not).
_WAIT_KINDS = (
    "conversation_created",
    "offer_created",
    "offer_timed_out",
    "offer_withdrawn",
    "fell_back_to_queue",
    "conversation_state_changed",
    "park_returned",
    "conversation_closed",
)


def service_level_waits(
    conn: sa.Connection, since: datetime
) -> tuple[list[am.Observation], list[am.Observation]]:
    """The answered and abandoned waits that ended since `since` (tAnswered, tAbandon), from
    the events of the conversations that left a queue since then. Each wait belongs to
    the queue segment it was in: a later transfer does not move or restart it."""
    left = (
        sa.select(events.c.conversation_id)
        .where(
            events.c.at >= since,
            events.c.kind.in_(("conversation_state_changed", "conversation_closed")),
            events.c.conversation_id.is_not(None),
        )
        .distinct()
    )
    rows = conn.execute(
        sa.select(events)
        .where(events.c.conversation_id.in_(left), events.c.kind.in_(_WAIT_KINDS))
        .order_by(events.c.id)
    ).all()
    answered, abandoned = [], []
    for d in replay(record(r) for r in rows):
        for o in am.observations(d):
            if o.at < since:
                continue
            if o.metric == "tAnswered":
                answered.append(o)
            elif o.metric == "tAbandon":
                abandoned.append(o)
    return answered, abandoned


def iter_details(
    db: sa.Engine, start: datetime, end: datetime, *, filter: Filter | None, chunk: int = 500
) -> Iterator[dict[str, Any]]:
    """Every conversation `details` would list, chunk by chunk (for CSV)."""
    c = analytics_conversations
    where = sa.and_(c.c.started_at >= start, c.c.started_at < end, _combine(filter, _detail_clause))
    after: tuple[datetime, str] | None = None
    while True:
        query = sa.select(c.c.started_at, c.c.key, c.c.detail).where(where)
        if after is not None:
            query = query.where(
                sa.or_(
                    c.c.started_at > after[0],
                    sa.and_(c.c.started_at == after[0], c.c.key > after[1]),
                )
            )
        with db.connect() as conn:
            rows = conn.execute(query.order_by(c.c.started_at, c.c.key).limit(chunk)).all()
        for r in rows:
            yield dict(r.detail)
        if len(rows) < chunk:
            return
        after = (r.started_at, r.key)

"""Analytics queries: aggregates, details and today's service level, from the tables
the projector (projector.py) keeps.

The job: `aggregates` answers the API's aggregate query (facts bucketed and grouped by
``postroom.analytics.metrics.aggregate``), `details` and `iter_details` page through
conversation details, `service_level_waits` gives the queue figures today's answered
and abandoned waits per queue segment (replayed from `events`, so it does not lag the
projector).

What it must not do: write anything, or know HTTP.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from postroom.analytics import metrics as am
from postroom.analytics import rollup
from postroom.analytics.details import replay
from postroom.domain.calendars import BusinessCalendar
from postroom.domain.routes import QueueConfig
from postroom.services.analytics import intervals
from postroom.services.analytics.projector import record
from postroom.store.db import READ_ONLY, as_utc
from postroom.store.schema import (
    analytics_conversation_tags,
    analytics_conversations,
    analytics_observations,
    analytics_segments,
    events,
)

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


def targets_of(
    queues: Iterable[QueueConfig], calendars: Iterable[BusinessCalendar] = ()
) -> dict[str, tuple[am.ServiceTarget, ...]]:
    """Each queue's service-level targets now, the first first, each with the calendar
    it counts in (from `calendars` by name; one not there counts calendar time) and
    the queue's short-abandon threshold."""
    by_name = {c.name: c for c in calendars}
    return {
        q.name: tuple(
            am.ServiceTarget(
                t.name,
                t.percent,
                t.seconds,
                by_name.get(t.calendar) if t.calendar else None,
                q.short_abandon_s,
            )
            for t in q.targets
        )
        for q in queues
    }


def _combine(f: Filter | None, clause: Callable[[Predicate], sa.ColumnElement[bool]]) -> Any:
    if f is None or not f.predicates:
        return sa.true()
    parts = [clause(p) for p in f.predicates]
    return sa.or_(*parts) if f.type == "or" else sa.and_(*parts)


def _obs_clause(p: Predicate) -> sa.ColumnElement[bool]:
    if p.dimension == "tag":
        t = analytics_conversation_tags
        return sa.exists().where(
            t.c.conversation_key == analytics_observations.c.conversation_key, t.c.tag == p.value
        )
    return _OBS_COLUMN[p.dimension] == p.value


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
    targets: am.Targets,
    short_abandon_s: float = am.SHORT_ABANDON_S,
) -> list[dict[str, Any]]:
    """Genesys-shaped aggregate results (analytics/metrics.py `aggregate`): from the
    interval rows where they answer exactly (analytics/rollup.py `level_for`), from the
    facts otherwise and for the metrics computed from single facts (service level)."""
    dims = [*group_by, *(p.dimension for p in (filter.predicates if filter else ()))]
    rolled = rollup.rolled_metrics(metrics)
    level = rollup.level_for(start, end, granularity, tz, dims) if rolled else None
    if level is None:
        return _from_facts(
            db, start, end, metrics=metrics, granularity=granularity, tz=tz,
            group_by=group_by, filter=filter, targets=targets, short_abandon_s=short_abandon_s,
        )  # fmt: skip
    where = _combine(filter, lambda p: intervals.COLUMN[p.dimension] == p.value)
    with db.connect().execution_options(**READ_ONLY) as conn:
        cells = list(intervals.cells(conn, level, start, end, rolled, where))
    answered = rollup.answer(
        cells, start, end, metrics=rolled, granularity=granularity, tz=tz, group_by=group_by
    )
    parts = [answered]
    rest = [m for m in metrics if m not in rolled]
    by_queue = {q: am.as_targets(t) for q, t in targets.items()}
    if rest and all(t.calendar is None for ts in by_queue.values() for t in ts):
        parts.append(_service_level(
            db, level, start, end, metrics=rest, granularity=granularity, tz=tz,
            group_by=group_by, filter=filter, targets=by_queue, short_abandon_s=short_abandon_s,
        ))  # fmt: skip
    elif rest:
        parts.append(_from_facts(
            db, start, end, metrics=rest, granularity=granularity, tz=tz, group_by=group_by,
            filter=filter, targets=targets, short_abandon_s=short_abandon_s,
        ))  # fmt: skip
    return rollup.merge_results(parts, metrics, group_by)


QueueTargets = Mapping[str, tuple[am.ServiceTarget, ...]]


def _threshold(ts: Sequence[am.ServiceTarget], default: float) -> float:
    """A queue's short-abandon threshold (its targets carry it; else the default)."""
    own = ts[0].short_abandon_s if ts else None
    return default if own is None else own


def _service_level(
    db: sa.Engine,
    level: rollup.Level,
    start: datetime,
    end: datetime,
    *,
    metrics: Sequence[str],
    granularity: str | None,
    tz: ZoneInfo,
    group_by: Sequence[str],
    filter: Filter | None,
    targets: QueueTargets,
    short_abandon_s: float,
) -> list[dict[str, Any]]:
    """oServiceLevel, oServiceTarget (one entry per target, its name the qualifier) and
    nOverSla (against each queue's first target) as metrics.aggregate computes them
    from the answered and abandoned waits against calendar-time targets, per interval
    of `level` (which tile the query's: rollup.level_for): from the level's
    whole-second wait counts when it has them and every threshold is whole seconds
    (exact then), else counted by the database from the facts."""
    targets = {q: ts for q, ts in targets.items() if ts}
    if not targets:
        return []
    limits = [t.seconds for ts in targets.values() for t in ts]
    limits += [_threshold(ts, short_abandon_s) for ts in targets.values()]
    if level.waits and all(float(x).is_integer() for x in limits):
        counted = _counted_from_waits(db, level, start, end, group_by, filter, targets,
                                      short_abandon_s)  # fmt: skip
    else:
        counted = _counted_by_sql(db, level.minutes, start, end, group_by, filter, targets,
                                  short_abandon_s)  # fmt: skip
    edges = am.boundaries(start, end, granularity, tz)
    rank: dict[str, int] = {}
    for ts in targets.values():
        for i, t in enumerate(ts):
            rank[t.name] = min(rank.get(t.name, i), i)
    # per group, per interval: [nOverSla, {target name: [within, counted, {percents}]}]
    cells: dict[tuple[Any, ...], dict[int, list[Any]]] = {}
    for at, queue, gkey, answered, within, n_long in counted:
        if not answered and not n_long:
            continue
        idx = bisect.bisect_right(edges, at) - 1
        acc = cells.setdefault(gkey, {}).setdefault(idx, [0, {}])
        acc[0] += answered - within[0]
        for t, n in zip(targets[queue], within, strict=True):
            per = acc[1].setdefault(t.name, [0, 0, set()])
            per[0] += n
            per[1] += answered + n_long
            per[2].add(t.percent)
    return _sl_results(cells, edges, metrics, tz, group_by, rank)


# (interval start, queue, group key, answered, answered within each target, long abandons)
_Counted = tuple[datetime, str, tuple[Any, ...], int, tuple[int, ...], int]


def _counted_from_waits(
    db: sa.Engine,
    level: rollup.Level,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
    filter: Filter | None,
    targets: QueueTargets,
    short_abandon_s: float,
) -> list[_Counted]:
    gidx = [rollup.FIELDS.index(am.DIMENSION_FIELD[g]) + 2 for g in group_by]
    where = _combine(filter, lambda p: intervals.COLUMN[p.dimension] == p.value)
    out: list[_Counted] = []
    with db.connect().execution_options(**READ_ONLY) as conn:
        for key, count, waits in intervals.waits(conn, level, start, end, where):
            queue = key[2]
            ts = targets.get(queue or "")
            if queue is None or not ts:
                continue
            gkey = tuple(key[i] for i in gidx)
            if key[1] == "tAnswered":
                within = tuple(rollup.within(waits, t.seconds) for t in ts)
                out.append((key[0], queue, gkey, count, within, 0))
            else:
                short = rollup.within(waits, _threshold(ts, short_abandon_s))
                out.append((key[0], queue, gkey, 0, (0,) * len(ts), count - short))
    return out


def _counted_by_sql(
    db: sa.Engine,
    minutes: int,
    start: datetime,
    end: datetime,
    group_by: Sequence[str],
    filter: Filter | None,
    targets: QueueTargets,
    short_abandon_s: float,
) -> list[_Counted]:
    o = analytics_observations
    answered, abandoned = o.c.metric == "tAnswered", o.c.metric == "tAbandon"
    most = max(len(ts) for ts in targets.values())
    withins = []
    for i in range(most):
        seconds = sa.case({q: ts[i].seconds for q, ts in targets.items() if len(ts) > i},
                          value=o.c.queue, else_=-1.0)  # fmt: skip
        withins.append(sa.func.sum(sa.case((sa.and_(answered, o.c.value <= seconds), 1),
                                           else_=0)))  # fmt: skip
    n_answered = sa.func.sum(sa.case((answered, 1), else_=0))
    short = sa.case({q: _threshold(ts, short_abandon_s) for q, ts in targets.items()},
                    value=o.c.queue)  # fmt: skip
    long = sa.func.sum(sa.case((sa.and_(abandoned, o.c.value > short), 1), else_=0))
    bucket, parse = _bucket(db.dialect.name, minutes)
    dims = [_OBS_COLUMN[g] for g in group_by]
    query = (
        sa.select(bucket, o.c.queue, *dims, n_answered, long, *withins)
        .where(
            o.c.metric.in_(("tAnswered", "tAbandon")), o.c.at >= start, o.c.at < end,
            o.c.queue.in_(sorted(targets)),
            _combine(filter, lambda p: _OBS_COLUMN[p.dimension] == p.value),
        )
        .group_by(bucket, o.c.queue, *dims)
    )  # fmt: skip
    with db.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(query).all()
    out: list[_Counted] = []
    for r in rows:
        n = 2 + len(dims)
        queue = r[1]
        counts = [int(x or 0) for x in r[n:]]
        within = tuple(counts[2 : 2 + len(targets[queue])])
        out.append((parse(r[0]), queue, tuple(r[2:n]), counts[0], within, counts[1]))
    return out


def _sl_results(
    cells: Mapping[tuple[Any, ...], Mapping[int, list[Any]]],
    edges: Sequence[datetime],
    metrics: Sequence[str],
    tz: ZoneInfo,
    group_by: Sequence[str],
    rank: Mapping[str, int],
) -> list[dict[str, Any]]:
    results = []
    labels = rollup.IntervalLabels(edges, tz)
    for gkey in sorted(cells, key=lambda k: tuple("" if v is None else v for v in k)):
        data = []
        for idx in sorted(cells[gkey]):
            over_n, per_target = cells[gkey][idx]
            names = sorted(per_target, key=lambda name: (rank[name], name))
            ms: list[dict[str, Any]] = []
            for m in metrics:
                if m == "nOverSla" and over_n:
                    ms.append({"metric": m, "stats": {"count": over_n}})
                elif m in ("oServiceLevel", "oServiceTarget"):
                    for name in names:
                        num, den, pcts = per_target[name]
                        if not den:
                            continue
                        st: dict[str, Any] = {"numerator": num, "denominator": den}
                        if m == "oServiceLevel":
                            st["ratio"] = round(num / den, 6)
                        if len(pcts) == 1:
                            st["target"] = next(iter(pcts))
                        ms.append({"metric": m, "qualifier": name, "stats": st})
            if ms:
                data.append({"interval": labels[idx], "metrics": ms})
        if data:
            results.append({"group": dict(zip(group_by, gkey, strict=True)), "data": data})
    return results


def _bucket(dialect: str, minutes: int) -> tuple[Any, Callable[[Any], datetime]]:
    """The SQL start of a fact's `minutes`-long UTC interval, and its parser."""
    at = analytics_observations.c.at
    if dialect == "sqlite":  # 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) as text
        text = sa.type_coerce(at, sa.String)
        hour = sa.func.substr(text, 1, 14)
        if minutes == 60:
            return hour, lambda v: datetime.fromisoformat(f"{v}00").replace(tzinfo=UTC)
        mm = sa.func.substr(text, 15, 2)
        quarter = sa.case((mm < "15", "00"), (mm < "30", "15"), (mm < "45", "30"), else_="45")
        return hour + quarter, lambda v: datetime.fromisoformat(v).replace(tzinfo=UTC)
    step = minutes * 60
    epoch = sa.func.floor(sa.extract("epoch", at) / step) * step
    return sa.func.to_timestamp(epoch), lambda v: v.astimezone(UTC)


def _from_facts(
    db: sa.Engine,
    start: datetime,
    end: datetime,
    *,
    metrics: Sequence[str],
    granularity: str | None,
    tz: ZoneInfo,
    group_by: Sequence[str],
    filter: Filter | None,
    targets: am.Targets,
    short_abandon_s: float,
) -> list[dict[str, Any]]:
    facts = sorted({f for m in metrics for f in am.NEEDS.get(m, (m,))})
    o = analytics_observations
    t = analytics_conversation_tags
    by_tag = "tag" in group_by
    query = sa.select(
        o.c.metric, o.c.at, o.c.value, o.c.queue, o.c.agent, o.c.route, o.c.wrapup_code,
        o.c.direction, o.c.start, o.c.conversation_key,
        (t.c.tag if by_tag else sa.null()).label("tag"),
    ).where(
        o.c.at >= start, o.c.at < end, o.c.metric.in_(facts), _combine(filter, _obs_clause),
    )  # fmt: skip
    if by_tag:  # one row per tag of the fact's conversation (none: the null group)
        query = query.select_from(o.outerjoin(t, t.c.conversation_key == o.c.conversation_key))
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
            r.tag,
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
    if p.dimension == "tag":
        t = analytics_conversation_tags
        return sa.exists().where(
            t.c.conversation_key == analytics_conversations.c.key, t.c.tag == p.value
        )
    if p.dimension in ("queueId", "userId"):
        s = analytics_segments
        col = s.c.queue if p.dimension == "queueId" else s.c.agent
        return sa.exists().where(
            s.c.conversation_key == analytics_conversations.c.key, col == p.value
        )
    return _CONV_COLUMN[p.dimension] == p.value


MAX_HITS = 10_000  # details counts stop here (totalHitsCapped), and pages reach this far


def details(
    db: sa.Engine,
    start: datetime,
    end: datetime,
    *,
    filter: Filter | None,
    page_size: int,
    page_number: int,
    max_hits: int = MAX_HITS,
) -> tuple[int, bool, list[dict[str, Any]]]:
    """Conversations that started in [start, end), oldest first: (total, whether the total
    stopped at `max_hits` — there are more —, one page)."""
    c = analytics_conversations
    where = sa.and_(c.c.started_at >= start, c.c.started_at < end, _combine(filter, _detail_clause))
    with db.connect().execution_options(**READ_ONLY) as conn:
        # In page order: the database walks (started_at, key) and stops at the cap.
        first = (
            sa.select(c.c.key)
            .where(where)
            .order_by(c.c.started_at, c.c.key)
            .limit(max_hits + 1)
            .subquery()
        )
        count = sa.select(sa.func.count()).select_from(first)
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(
            sa.select(c.c.detail)
            .where(where)
            .order_by(c.c.started_at, c.c.key)
            .limit(page_size)
            .offset((page_number - 1) * page_size)
        ).all()
    return min(total, max_hits), total > max_hits, [dict(r.detail) for r in rows]


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
    "conversation_discarded",
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
        with db.connect().execution_options(**READ_ONLY) as conn:
            rows = conn.execute(query.order_by(c.c.started_at, c.c.key).limit(chunk)).all()
        for r in rows:
            yield dict(r.detail)
        if len(rows) < chunk:
            return
        after = (r.started_at, r.key)

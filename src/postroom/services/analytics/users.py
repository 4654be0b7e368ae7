"""The agents' status projection: `presence_changed` events into `analytics_user_segments`.

The job: `UserStatusSink` is a `Sink` of the analytics projector (projector.py):
for each batch of events it extends every agent's status segments
(``postroom.analytics.users``) — the open segment is replaced by what follows
from the new events — in the projector's transaction, so its checkpoint covers
them and a rebuild resets them. An event older than an agent's newest segment (a
late commit) makes the sink replay that agent from `events`, so the result is a
rebuild's. `user_segments` reads the segments overlapping an interval for the
users aggregates query.

What it must not do: write `events` or any table but its own, or know HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from postroom.analytics import users as au
from postroom.analytics.details import EventRecord
from postroom.services.analytics.projector import record
from postroom.store.db import as_utc
from postroom.store.schema import analytics_user_segments, events

_S = analytics_user_segments


def _row(s: au.StatusSegment) -> dict[str, Any]:
    return {
        "agent": s.agent[:200],
        "presence": s.presence[:20],
        "routing_status": s.routing_status[:20],
        "started_at": s.start,
        "ended_at": s.end,
        "event_id": s.event_id,
    }


def _segment(r: Any) -> au.StatusSegment:
    start = as_utc(r.started_at)
    assert start is not None
    return au.StatusSegment(
        r.agent, r.presence, r.routing_status, start, as_utc(r.ended_at), int(r.event_id)
    )


class UserStatusSink:
    """Agents' status segments, kept by the analytics projector."""

    def apply(self, conn: sa.Connection, taken: Sequence[EventRecord]) -> None:
        by_agent: dict[str, list[EventRecord]] = {}
        for e in taken:
            found = au.status_of(e)
            if found is not None:
                by_agent.setdefault(found[0], []).append(e)
        for agent, evs in by_agent.items():
            last = conn.execute(
                sa.select(_S).where(_S.c.agent == agent).order_by(_S.c.event_id.desc()).limit(1)
            ).first()
            if last is not None and evs[0].id < int(last.event_id):
                self._replay(conn, agent)
                continue
            current = _segment(last) if last is not None and last.ended_at is None else None
            out: list[au.StatusSegment] = []
            for e in evs:
                closed, current = au.advance(current, e)
                if closed is not None:
                    out.append(closed)
            if current is not None:
                out.append(current)
            if last is not None and last.ended_at is None:
                conn.execute(_S.delete().where(_S.c.id == last.id))
            conn.execute(_S.insert(), [_row(s) for s in out])

    def _replay(self, conn: sa.Connection, agent: str) -> None:
        conn.execute(_S.delete().where(_S.c.agent == agent))
        rows = conn.execute(
            sa.select(events)
            .where(events.c.kind == au.KIND, events.c.data["agent"].as_string() == agent)
            .order_by(events.c.id)
        )
        segs = au.segments(record(r) for r in rows)
        if segs:
            conn.execute(_S.insert(), [_row(s) for s in segs])

    def reset(self, conn: sa.Connection) -> None:
        conn.execute(_S.delete())


def user_segments(
    conn: sa.Connection, start: datetime, end: datetime, agents: Sequence[str] = ()
) -> list[au.StatusSegment]:
    """The segments overlapping [start, end), of `agents` only when given."""
    query = sa.select(_S).where(
        _S.c.started_at < end, sa.or_(_S.c.ended_at.is_(None), _S.c.ended_at > start)
    )
    if agents:
        query = query.where(_S.c.agent.in_(list(agents)))
    return [_segment(r) for r in conn.execute(query.order_by(_S.c.agent, _S.c.started_at))]


def user_aggregates(
    db: sa.Engine,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    metrics: Sequence[str],
    granularity: str | None,
    tz: ZoneInfo,
    group_by: Sequence[str],
    agents: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Genesys-shaped users aggregates (analytics/users.py `aggregate`): time in each
    routing status and presence per interval, open segments counted until `now`."""
    with db.connect() as conn:
        segs = user_segments(conn, start, end, agents)
    return au.aggregate(
        segs, start, end, now=now, metrics=metrics, granularity=granularity, tz=tz,
        group_by=group_by,
    )  # fmt: skip

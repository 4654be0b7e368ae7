"""The agent board and the queue backlog: what supervisors read before acting.

Reads agents, their held work and their last `presence_changed` event (for the
time in the current status), and a queue's waiting conversations oldest first.
Writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.store.db import as_utc
from postroom.store.schema import agents, conversations, events, messages

# How far back the board looks for agents' last `presence_changed` events.
STATUS_LOOKBACK = 20_000
BACKLOG_LIMIT = 1000


def _status_since(conn: sa.Connection, wanted: set[str]) -> dict[str, datetime]:
    """When each agent's current (presence, routing status) began: the oldest of their
    newest run of equal `presence_changed` events."""
    since: dict[str, datetime] = {}
    current: dict[str, tuple[str, str]] = {}
    done: set[str] = set()
    rows = conn.execute(
        sa.select(events.c.at, events.c.data)
        .where(events.c.kind == "presence_changed")
        .order_by(events.c.id.desc())
        .limit(STATUS_LOOKBACK)
    )
    for at, data in rows:
        agent = (data or {}).get("agent")
        if not isinstance(agent, str) or agent not in wanted or agent in done:
            continue
        state = (str(data.get("presence")), str(data.get("routing_status")))
        if agent not in current:
            current[agent] = state
        elif current[agent] != state:
            done.add(agent)
            continue
        at_utc = as_utc(at)
        if at_utc is not None:
            since[agent] = at_utc
    return since


def agent_board(db: sa.Engine, now: datetime) -> list[dict[str, Any]]:
    """Every agent: presence, routing status, seconds in it, holding/capacity, parked,
    queues; ordered by id."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(agents).order_by(agents.c.id)).all()
        held: dict[str, dict[str, int]] = {}
        for aid, state, n in conn.execute(
            sa.select(conversations.c.agent_id, conversations.c.state, sa.func.count())
            .where(conversations.c.agent_id.is_not(None), conversations.c.state != "closed")
            .group_by(conversations.c.agent_id, conversations.c.state)
        ):
            held.setdefault(str(aid), {})[str(state)] = int(n)
        since = _status_since(conn, {r.id for r in rows})
    out = []
    for r in rows:
        states = held.get(r.id, {})
        started = since.get(r.id)
        out.append(
            {
                "id": r.id,
                "name": r.name,
                "presence": r.presence,
                "routing_status": r.routing_status,
                "status_since": started.isoformat() if started else None,
                "seconds_in_status": (
                    round(max(0.0, (now - started).total_seconds()), 1) if started else None
                ),
                "holding": sum(states.get(s, 0) for s in ("alerting", "connected", "wrapup")),
                "alerting": states.get("alerting", 0),
                "connected": states.get("connected", 0),
                "wrapup": states.get("wrapup", 0),
                "parked": states.get("parked", 0),
                "capacity": int(r.capacity),
                "queues": list(r.queues),
            }
        )
    return out


def backlog(
    db: sa.Engine, queue: str, now: datetime, *, limit: int = BACKLOG_LIMIT
) -> list[dict[str, Any]]:
    """The queue's waiting conversations (queued or alerting), oldest first, with the
    subject and sender of their first message."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(conversations)
            .where(
                conversations.c.queue == queue,
                conversations.c.state.in_(("queued", "alerting")),
            )
            .order_by(conversations.c.enqueued_at, conversations.c.id)
            .limit(limit)
        ).all()
        firsts: dict[int, sa.Row[Any]] = {}
        ids = [r.id for r in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            first_ids = (
                sa.select(sa.func.min(messages.c.id))
                .where(messages.c.conversation_id.in_(chunk))
                .group_by(messages.c.conversation_id)
            )
            for first in conn.execute(
                sa.select(messages.c.conversation_id, messages.c.subject, messages.c.sender)
                .where(messages.c.id.in_(first_ids))
            ):
                firsts[int(first.conversation_id)] = first
    out = []
    for r in rows:
        m = firsts.get(int(r.id))
        entered = as_utc(r.enqueued_at)
        out.append(
            {
                "id": int(r.id),
                "state": r.state,
                "agent": r.agent_id,
                "priority": int(r.priority),
                "skills": [[str(n), float(p)] for n, p in (r.skills or [])],
                "subject": m.subject if m is not None else None,
                "from": m.sender if m is not None else None,
                "enqueued_at": entered.isoformat() if entered else None,
                "waiting_s": round((now - entered).total_seconds(), 1) if entered else None,
            }
        )
    return out


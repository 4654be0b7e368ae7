"""The events a stream sends: which kinds, the rows after an id, and which of them a
user may see (with access.py's audiences). Writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from postroom.services.conversations.access import visible_ids
from postroom.services.conversations.common import iso as _iso
from postroom.services.users import User
from postroom.store.schema import events


def event_json(r: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": r.id,
        "at": _iso(r.at),
        "kind": r.kind,
        "conversation_id": r.conversation_id,
        "message_id": r.message_id,
        "data": r.data,
    }


STREAM_KINDS = (
    "offer_created",
    "offer_timed_out",
    "offer_withdrawn",
    "conversation_created",
    "conversation_state_changed",
    "conversation_closed",
    "message_received",
    "message_appended",
    "routing_status_changed",
    "presence_changed",
    "wrapup_required",
    "wrapup_timed_out",
    "park_returned",
    "message_sent",
    "message_queued",
    # Delivery outcomes, as services/outbound.py and intake write them.
    "delivery_deferred",
    "delivery_failed",
    "bounce_received",
    # A supervisor split or merged conversations (services/supervisor/threads.py).
    "conversation_split",
    "conversation_merged",
)


# Events about one agent (no conversation): only that agent's stream, and supervisors'.
_AGENT_KINDS = frozenset({"routing_status_changed", "presence_changed"})


def events_after(
    db: sa.Engine, after_id: int, *, limit: int = 1000, extra_ids: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Stream-worthy events with id > after_id (plus any `extra_ids`), oldest first."""
    cond = events.c.id > after_id
    if extra_ids:
        cond = sa.or_(cond, events.c.id.in_(list(extra_ids)))
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(events)
            .where(cond, events.c.kind.in_(STREAM_KINDS))
            .order_by(events.c.id)
            .limit(limit)
        ).all()
    return [event_json(r) for r in rows]


def last_event_id(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)



def event_visible_to(user: User, event: dict[str, Any], audience: frozenset[str]) -> bool:
    """May `user` see `event`, given the audience of its conversation?"""
    if user.sees_everything:
        return True
    agent = (event.get("data") or {}).get("agent")
    if event["kind"] in _AGENT_KINDS:
        return bool(agent == user.id)
    if event.get("conversation_id") is None:
        return False
    return agent == user.id or user.id in audience



def visible_events(
    db: sa.Engine, user: User, batch: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The events of `batch` that `user` may see: their own offers and status, and
    anything about conversations they can see."""
    if user.sees_everything:
        return list(batch)
    # Events naming this user (their offers, their status) need no query.
    cids = {
        int(e["conversation_id"])
        for e in batch
        if e.get("conversation_id") is not None and (e.get("data") or {}).get("agent") != user.id
    }
    allowed = visible_ids(db, user, cids)
    out = []
    for e in batch:
        agent = (e.get("data") or {}).get("agent")
        if e["kind"] in _AGENT_KINDS:
            if agent == user.id:
                out.append(e)
        elif e.get("conversation_id") is not None and (
            int(e["conversation_id"]) in allowed or agent == user.id
        ):
            out.append(e)
    return out

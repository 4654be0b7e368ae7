"""A conversation's timeline and its routing story, as people read them: every event
of the conversation in order (queued, offered to whom and why, declined or timed out,
accepted, transferred, parked, closed, wrap-up code and notes) with its messages in
and out and their delivery status; and the offers with the explanation the router
stored with each (`offer_created` data `why`, routing/explain.py).

Supervisors see the explanations; an agent sees the timeline of a conversation they
may see, without them. It reads; it changes nothing and knows nothing of HTTP.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from postroom.services.conversations.access import ensure_visible
from postroom.services.conversations.common import iso
from postroom.services.users import User
from postroom.store.schema import events, messages, outbox

# Events that are bookkeeping, not part of the story.
_HIDDEN = frozenset({"presence_changed", "routing_status_changed"})


def _event_entry(row: sa.Row[Any], with_why: bool) -> dict[str, Any]:
    data = dict(row.data or {})
    if not with_why:
        data.pop("why", None)
    return {"at": iso(row.at), "kind": row.kind, "event": row.id, "data": data}


def timeline(db: sa.Engine, user: User, conversation_id: int) -> list[dict[str, Any]]:
    """The conversation's entries, oldest first (raises NotFoundError when `user`
    may not see it)."""
    ensure_visible(db, user, conversation_id)
    with db.connect() as conn:
        evs = conn.execute(
            sa.select(events)
            .where(events.c.conversation_id == conversation_id)
            .order_by(events.c.id)
        ).all()
        msgs = conn.execute(
            sa.select(
                messages.c.id, messages.c.direction, messages.c.sender,
                messages.c.received_at, messages.c.subject, messages.c.status,
            )
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.received_at, messages.c.id)
        ).all()  # fmt: skip
        sent = {
            int(r.message_id): r
            for r in conn.execute(
                sa.select(outbox.c.message_id, outbox.c.status, outbox.c.attempts).where(
                    outbox.c.message_id.in_([m.id for m in msgs if m.direction == "out"] or [-1])
                )
            )
        }
    entries = [_event_entry(r, user.sees_everything) for r in evs if r.kind not in _HIDDEN]
    for m in msgs:
        delivery = sent.get(int(m.id))
        entries.append(
            {
                "at": iso(m.received_at),
                "kind": "message_in" if m.direction == "in" else "message_out",
                "event": None,
                "data": {
                    "message": m.id,
                    "sender": m.sender,
                    "subject": m.subject,
                    "status": m.status,
                    "delivery": None
                    if delivery is None
                    else {"status": delivery.status, "attempts": delivery.attempts},
                },
            }
        )
    # Oldest first; at one instant, messages before the events they caused.
    entries.sort(key=lambda e: (e["at"] or "", e["event"] is not None, e["event"] or 0))
    return entries


def routing_story(db: sa.Engine, user: User, conversation_id: int) -> dict[str, Any]:
    """Every offer of the conversation with why it went to its agent, and how each
    ended (accepted, declined/missed, withdrawn)."""
    ensure_visible(db, user, conversation_id)
    kinds = ("offer_created", "offer_timed_out", "offer_withdrawn", "conversation_state_changed")
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(events)
            .where(events.c.conversation_id == conversation_id, events.c.kind.in_(kinds))
            .order_by(events.c.id)
        ).all()
    offers: list[dict[str, Any]] = []
    for r in rows:
        data = r.data or {}
        if r.kind == "offer_created":
            offers.append(
                {
                    "at": iso(r.at),
                    "agent": data.get("agent"),
                    "queue": data.get("queue"),
                    "rule": data.get("rule"),
                    "why": data.get("why"),
                    "outcome": "auto_answered" if data.get("auto_answered") else "pending",
                }
            )
            continue
        if not offers or offers[-1]["outcome"] != "pending":
            continue
        if r.kind == "offer_timed_out":
            offers[-1]["outcome"] = "timed_out"
        elif r.kind == "offer_withdrawn":
            offers[-1]["outcome"] = "withdrawn"
        elif data.get("from") == "alerting":
            to = data.get("to")
            offers[-1]["outcome"] = "accepted" if to == "connected" else f"ended: {to}"
    return {"conversation_id": conversation_id, "offers": offers}

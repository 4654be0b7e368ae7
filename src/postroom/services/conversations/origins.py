"""Where an offer comes from (new, a reply, a transfer, a park return), for the
offer banner; read from a conversation's events and its thread. Changes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from postroom.store.schema import agents, conversations, events

_ORIGIN_KINDS = ("conversation_created", "conversation_state_changed", "park_returned")


def offer_origins(db: sa.Engine, conversation_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Why each conversation is being offered, from its events and its thread, for the
    offer banner. One dict per id::

        {"kind": "new"}                        the first conversation of its thread
        {"kind": "reply", "thread_id": 12}     the customer wrote again in a thread
                                               whose earlier conversations are done
        {"kind": "transfer", "agent": "ann", "agent_name": "Ann", "queue": "support"}
                                               an agent (or, without one, a queue) let
                                               it go to a queue or to another agent
        {"kind": "park", "agent": "ann", "agent_name": "Ann"}
                                               a parked conversation came back (the
                                               customer replied or its timer fired)

    The latest cause wins: a follow-up that was then transferred is a transfer.
    Declines and timed-out offers do not change it. The caller applies the access
    rule (these are the user's own offers)."""
    wanted = sorted(set(conversation_ids))
    if not wanted:
        return {}
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.conversation_id, events.c.kind, events.c.data)
            .where(events.c.conversation_id.in_(wanted), events.c.kind.in_(_ORIGIN_KINDS))
            .order_by(events.c.id)
        ).all()
        convs = {
            int(r.id): int(r.thread_id)
            for r in conn.execute(
                sa.select(conversations.c.id, conversations.c.thread_id).where(
                    conversations.c.id.in_(wanted)
                )
            )
        }
        threads_ = set(convs.values()) or {-1}
        first_of_thread = {
            int(t): int(first)
            for t, first in conn.execute(
                sa.select(conversations.c.thread_id, sa.func.min(conversations.c.id))
                .where(conversations.c.thread_id.in_(threads_))
                .group_by(conversations.c.thread_id)
            )
        }
        names = {str(r.id): r.name for r in conn.execute(sa.select(agents.c.id, agents.c.name))}
    out: dict[int, dict[str, Any]] = {}
    by_conv: dict[int, list[sa.Row[Any]]] = {}
    for r in rows:
        by_conv.setdefault(int(r.conversation_id), []).append(r)
    for cid in wanted:
        if cid not in convs:
            continue
        thread_id = convs[cid]
        origin: dict[str, Any] | None = None
        holder: str | None = None
        queue: str | None = None
        park_back: str | None = None  # a park_returned not yet followed by its state change
        for r in by_conv.get(cid, []):
            data = r.data or {}
            if r.kind == "park_returned":
                park_back = str(data.get("agent") or "") or None
                continue
            if r.kind == "conversation_created":
                queue = data.get("queue") or queue
                if data.get("state") == "connected":
                    holder = data.get("agent") or holder
                continue
            before, after = data.get("from"), data.get("to")
            if after == "connected":
                holder, origin = data.get("agent") or holder, None
            elif before in ("connected", "parked") and after in ("queued", "alerting"):
                if park_back is not None:
                    origin = {"kind": "park", "agent": park_back}
                else:
                    origin = {"kind": "transfer", "agent": holder, "queue": queue}
            elif before in ("queued", "alerting") and after in ("queued", "alerting"):
                new_queue = data.get("queue")
                if new_queue and queue and new_queue != queue and origin is None:
                    # moved between queues before anyone took it (a supervisor's transfer)
                    origin = {"kind": "transfer", "agent": None, "queue": queue}
            park_back = None
            queue = data.get("queue") or queue
        if origin is None:
            first = first_of_thread.get(thread_id, cid)
            origin = {"kind": "reply", "thread_id": thread_id} if first < cid else {"kind": "new"}
        if origin.get("agent"):
            origin["agent_name"] = names.get(origin["agent"]) or origin["agent"]
        out[cid] = origin
    return out

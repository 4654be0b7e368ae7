"""Splitting and merging conversations: a supervisor moves messages between threads.

The job: in one transaction, move message rows (their `conversation_id` and
`thread_id`; ids never change) and what follows them — the thread's participants
(so a later reply to a moved message threads into its new place), the references
awaited for them, the agents who may see them (`thread_agents`) — write the events
(`conversation_split`, `conversation_merged`, and for a split the new thread's and
conversation's `thread_created`/`conversation_created`), and ask the router, through
`routing_inbox`, for the state changes: `enqueued` for the conversation a split
makes, `merged` for a waiting conversation merged away. It never writes a
conversation's state itself (the router is the only writer of that) and it does
not check who may call it (the web layer asks the permission table).

The access rule kept: the agents who were connected to the conversation whose
messages move take part in the thread that receives them, and nobody else gains
anything; no agent gains access to the source's own thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError, ThreadChangeConflict, ThreadChangeError
from postroom.store.schema import (
    awaited_references,
    conversations,
    events,
    messages,
    routing_inbox,
    thread_agents,
    thread_participants,
    threads,
)

HELD = ("connected", "parked", "wrapup")
WAITING = ("queued", "alerting")


@dataclass(frozen=True, slots=True)
class SplitResult:
    conversation_id: int  # the conversation the messages left
    new_conversation_id: int
    new_thread_id: int
    moved: tuple[int, ...]  # message ids, in thread order
    events: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "new_conversation_id": self.new_conversation_id,
            "new_thread_id": self.new_thread_id,
            "moved_messages": list(self.moved),
        }


@dataclass(frozen=True, slots=True)
class MergeResult:
    conversation_id: int  # the source, which ends
    into: int
    thread_id: int  # the target's thread, which now holds the messages
    moved: tuple[int, ...]
    source_state: str  # as it was: "queued"/"alerting" leave their queue through the router
    forced: bool
    events: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "into": self.into,
            "thread_id": self.thread_id,
            "moved_messages": list(self.moved),
            "source_state": self.source_state,
            "forced": self.forced,
        }


def _conversation(conn: sa.Connection, cid: int) -> sa.Row[Any]:
    """The conversation's row, locked until the transaction ends (on PostgreSQL; SQLite
    has one writer at a time), so two merges of the same pair cannot cross."""
    row = conn.execute(
        sa.select(conversations).where(conversations.c.id == cid).with_for_update()
    ).first()
    if row is None:
        raise NotFoundError(f"no conversation {cid}")
    return row


MERGED_INTO = "merged into conversation "


def _merged_into(row: sa.Row[Any]) -> str | None:
    """The conversation this one was merged into (its close reason says), if any."""
    reason = row.close_reason or ""
    return reason.removeprefix(MERGED_INTO) if reason.startswith(MERGED_INTO) else None


def _message_ids(conn: sa.Connection, cid: int) -> list[int]:
    """The conversation's messages in the thread view's order (received, then id)."""
    return [
        int(i)
        for (i,) in conn.execute(
            sa.select(messages.c.id)
            .where(messages.c.conversation_id == cid)
            .order_by(messages.c.received_at, messages.c.id)
        )
    ]


def customer(conn: sa.Connection, cid: int) -> str | None:
    """The conversation's customer: the sender of its first inbound message, or the
    first recipient of its first outbound one (a new email an agent started)."""
    first = conn.execute(
        sa.select(messages.c.direction, messages.c.sender, messages.c.envelope_to)
        .where(messages.c.conversation_id == cid)
        .order_by(messages.c.received_at, messages.c.id)
    ).all()
    for row in first:
        if row.direction == "in" and row.sender:
            return str(row.sender).lower()
    for row in first:
        if row.direction == "out" and row.envelope_to:
            return str(row.envelope_to[0]).lower()
    return None


def _handlers(conn: sa.Connection, conv: sa.Row[Any]) -> set[str]:
    """The agents who were connected to the conversation: its holder, and everyone its
    `conversation_state_changed` events connected to it."""
    found = {conv.agent_id} if conv.agent_id and conv.state in HELD else set()
    for (data,) in conn.execute(
        sa.select(events.c.data).where(
            events.c.conversation_id == conv.id,
            events.c.kind == "conversation_state_changed",
        )
    ):
        if (data or {}).get("to") in HELD and isinstance((data or {}).get("agent"), str):
            found.add(data["agent"])
    return found


def _give_access(conn: sa.Connection, thread_id: int, agents_: set[str]) -> None:
    have = {
        a
        for (a,) in conn.execute(
            sa.select(thread_agents.c.agent_id).where(thread_agents.c.thread_id == thread_id)
        )
    }
    for agent in sorted(agents_ - have):
        conn.execute(thread_agents.insert().values(thread_id=thread_id, agent_id=agent))


def _copy_participants(conn: sa.Connection, from_thread: int, to_thread: int) -> None:
    have = {
        a.lower()
        for (a,) in conn.execute(
            sa.select(thread_participants.c.address).where(
                thread_participants.c.thread_id == to_thread
            )
        )
    }
    for (address,) in conn.execute(
        sa.select(thread_participants.c.address).where(
            thread_participants.c.thread_id == from_thread
        )
    ).all():
        if address.lower() not in have:
            have.add(address.lower())
            conn.execute(thread_participants.insert().values(thread_id=to_thread, address=address))


def _move(conn: sa.Connection, ids: Sequence[int], conversation_id: int, thread_id: int) -> None:
    """Move messages (ids kept) and the references they await to another place."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        conn.execute(
            messages.update()
            .where(messages.c.id.in_(chunk))
            .values(conversation_id=conversation_id, thread_id=thread_id)
        )
        conn.execute(
            awaited_references.update()
            .where(awaited_references.c.message_id.in_(chunk))
            .values(thread_id=thread_id)
        )


def _event(
    conn: sa.Connection,
    now: datetime,
    kind: str,
    *,
    conversation_id: int | None = None,
    message_id: int | None = None,
    thread_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = data or {}
    eid = conn.execute(
        events.insert()
        .values(
            at=now,
            kind=kind,
            conversation_id=conversation_id,
            message_id=message_id,
            thread_id=thread_id,
            data=body,
        )
        .returning(events.c.id)
    ).scalar_one()
    return {
        "id": int(eid),
        "at": now.isoformat(),
        "kind": kind,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "data": body,
    }


def _request(conn: sa.Connection, now: datetime, kind: str, cid: int, data: dict[str, Any]) -> int:
    return int(
        conn.execute(
            routing_inbox.insert()
            .values(at=now, kind=kind, conversation_id=cid, data=data)
            .returning(routing_inbox.c.id)
        ).scalar_one()
    )


def split(
    db: sa.Engine, clock: Callable[[], datetime], conversation_id: int, message_id: int, by: str
) -> SplitResult:
    """Move `message_id` and the messages after it (in the thread view's order) out of
    `conversation_id` into a new thread with a new conversation, queued in the same
    queue with the same priority, skills and language, preferring the agent who
    held or last held the original; the router is asked to enqueue it. The original
    keeps the earlier messages and its state. Raises NotFoundError, or
    ThreadChangeError when the message is not in the conversation or is its first."""
    now = clock()
    with db.begin() as conn:
        conv = _conversation(conn, conversation_id)
        ids = _message_ids(conn, conversation_id)
        if message_id not in ids:
            raise ThreadChangeError(
                f"message {message_id} is not in conversation {conversation_id}; "
                "split the conversation that holds it"
            )
        at = ids.index(message_id)
        if at == 0:
            raise ThreadChangeError(
                f"message {message_id} is the first of conversation {conversation_id}: "
                "nothing would remain; split from a later message"
            )
        moved = ids[at:]
        first = conn.execute(
            sa.select(messages.c.subject).where(messages.c.id == message_id)
        ).scalar()
        thread_subject = conn.execute(
            sa.select(threads.c.subject).where(threads.c.id == conv.thread_id)
        ).scalar()
        subject = str(first or thread_subject or "")[:1000]
        new_thread = int(
            conn.execute(
                threads.insert()
                .values(subject=subject, created_at=now, last_activity_at=now)
                .returning(threads.c.id)
            ).scalar_one()
        )
        _copy_participants(conn, conv.thread_id, new_thread)
        last_agent = conv.agent_id if conv.state in HELD else None
        last_agent = last_agent or conv.last_agent
        new_cid = int(
            conn.execute(
                conversations.insert()
                .values(
                    thread_id=new_thread,
                    state="queued",
                    queue=conv.queue,
                    priority=conv.priority,
                    skills=conv.skills,
                    language=conv.language,
                    tags=conv.tags,
                    route_address=conv.route_address,
                    reply_from=conv.reply_from,
                    created_at=now,
                    enqueued_at=now,
                    last_agent=last_agent,
                    last_agent_at=now if last_agent else None,
                )
                .returning(conversations.c.id)
            ).scalar_one()
        )
        _move(conn, moved, new_cid, new_thread)
        _give_access(conn, new_thread, _handlers(conn, conv))
        published = [
            _event(
                conn, now, "thread_created", thread_id=new_thread, message_id=message_id,
                data={"split_from": conversation_id, "by": by},
            ),
            _event(
                conn,
                now,
                "conversation_created",
                conversation_id=new_cid,
                message_id=message_id,
                thread_id=new_thread,
                data={
                    "state": "queued",
                    "queue": conv.queue,
                    "priority": conv.priority,
                    "skills": conv.skills,
                    "language": conv.language,
                    "tags": conv.tags,
                    "rules": [],
                    "enqueued_at": now.isoformat(),
                    "last_agent": last_agent,
                    "preferred_agents": [],
                    "deadline_s": None,
                    "route_address": conv.route_address,
                    "split_from": conversation_id,
                },
            ),
            _event(
                conn,
                now,
                "conversation_split",
                conversation_id=conversation_id,
                message_id=message_id,
                thread_id=conv.thread_id,
                data={
                    "message": message_id,
                    "messages": moved,
                    "new_conversation": new_cid,
                    "new_thread": new_thread,
                    "by": by,
                },
            ),
        ]
        _request(conn, now, "enqueued", new_cid, {"split_from": conversation_id})
    return SplitResult(conversation_id, new_cid, new_thread, tuple(moved), tuple(published))


def merge(
    db: sa.Engine,
    clock: Callable[[], datetime],
    conversation_id: int,
    into: int,
    by: str,
    *,
    force: bool = False,
) -> MergeResult:
    """Move every message of `conversation_id` (the source) into conversation `into`
    (the target) and its thread, and end the source: a waiting one (queued or
    alerting) leaves its queue through the router (request `merged`), a closed one
    stays closed. Raises NotFoundError; ThreadChangeError for a conversation merged
    into itself; ThreadChangeConflict when the target is closed, the source is held
    by an agent, or (unless `force`) the two have different customers."""
    if conversation_id == into:
        raise ThreadChangeError(
            f"conversation {conversation_id} cannot be merged into itself; name another one"
        )
    now = clock()
    with db.begin() as conn:
        # Locked in id order: two merges of the same pair wait for each other.
        first, second = sorted((conversation_id, into))
        locked = {first: _conversation(conn, first), second: _conversation(conn, second)}
        source, target = locked[conversation_id], locked[into]
        for row in (source, target):
            gone = _merged_into(row)
            if gone is not None:
                raise ThreadChangeConflict(
                    f"conversation {row.id} was merged into conversation {gone} already; "
                    f"use conversation {gone} instead"
                )
        if target.state == "closed":
            raise ThreadChangeConflict(
                f"conversation {into} is closed; merge it into conversation "
                f"{conversation_id} instead, or into another open one",
                field="into",
            )
        if source.state in HELD:
            raise ThreadChangeConflict(
                f"conversation {conversation_id} is {source.state} with {source.agent_id}; "
                "they transfer it to a queue or finish it first, then merge it"
            )
        ours, theirs = customer(conn, conversation_id), customer(conn, into)
        if ours and theirs and ours != theirs and not force:
            raise ThreadChangeConflict(
                f"conversation {conversation_id} is from {ours} and {into} from {theirs}; "
                'merge anyway with "force": true',
                field="force",
            )
        moved = _message_ids(conn, conversation_id)
        _move(conn, moved, into, target.thread_id)
        if source.thread_id != target.thread_id:
            _copy_participants(conn, source.thread_id, target.thread_id)
            _give_access(conn, target.thread_id, _handlers(conn, source))
        conn.execute(
            threads.update().where(threads.c.id == target.thread_id).values(last_activity_at=now)
        )
        if source.state != "closed":
            conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(close_reason=f"{MERGED_INTO}{into}")
            )
        data = {
            "source": conversation_id,
            "target": into,
            "source_thread": source.thread_id,
            "thread": target.thread_id,
            "messages": moved,
            "source_state": source.state,
            "forced": bool(force and ours != theirs),
            "by": by,
        }
        published = [
            _event(
                conn, now, "conversation_merged", conversation_id=conversation_id,
                thread_id=source.thread_id, data=data,
            ),
            _event(
                conn, now, "conversation_merged", conversation_id=into,
                thread_id=target.thread_id, data=data,
            ),
        ]
        if source.state in WAITING:
            _request(conn, now, "merged", conversation_id, {"into": into})
    return MergeResult(
        conversation_id, into, int(target.thread_id), tuple(moved), str(source.state),
        bool(data["forced"]), tuple(published),
    )  # fmt: skip

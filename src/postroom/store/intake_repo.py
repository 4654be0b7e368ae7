"""Queries for intake: spooled messages, IMAP cursors, configuration rows, status.

Plain functions over a SQLAlchemy Connection that the caller's transaction
owns; no commits here (except in SqlCursorStore, which owns its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.routes import QueueConfig, Route, Rule
from postroom.store.schema import (
    attachments,
    awaited_references,
    conversations,
    events,
    imap_cursors,
    messages,
    queues,
    routes,
    routing_inbox,
    rules,
    thread_participants,
    threads,
)


@dataclass(frozen=True, slots=True)
class SpoolRow:
    raw_sha256: str
    raw_size: int
    source: str
    source_ref: str | None
    envelope_from: str | None
    envelope_to: tuple[str, ...]
    received_at: datetime
    raw: bytes | None = None  # inline bytes of a small message (see schema.messages.raw)


_INSERT_SPOOLED = messages.insert().returning(messages.c.id, sort_by_parameter_order=True)


def insert_spooled(conn: sa.Connection, rows: Sequence[SpoolRow]) -> list[tuple[int, bool]]:
    """Insert rows as pending messages; rows whose source_ref exists are not inserted.

    Returns (message pk, created) per row, in order. One multi-row INSERT per batch.
    """
    refs = [r.source_ref for r in rows if r.source_ref]
    existing: dict[str, int] = {}
    if refs:
        for pk, ref in conn.execute(
            sa.select(messages.c.id, messages.c.source_ref).where(messages.c.source_ref.in_(refs))
        ):
            existing[ref] = pk
    fresh: list[SpoolRow] = []
    seen: set[str] = set()
    for row in rows:
        if row.source_ref and (row.source_ref in existing or row.source_ref in seen):
            continue
        if row.source_ref:
            seen.add(row.source_ref)
        fresh.append(row)
    if fresh:
        params = [
            {
                "direction": "in",
                "source": r.source,
                "source_ref": r.source_ref,
                "raw_sha256": r.raw_sha256,
                "raw_size": r.raw_size,
                "raw": r.raw,
                "envelope_from": r.envelope_from,
                "envelope_to": list(r.envelope_to),
                "received_at": r.received_at,
                "status": "pending",
            }
            for r in fresh
        ]
        pks = list(conn.execute(_INSERT_SPOOLED, params).scalars())
        created = dict(zip((id(r) for r in fresh), pks, strict=True))
    else:
        created = {}
    out: list[tuple[int, bool]] = []
    for row in rows:
        if id(row) in created:
            pk = created[id(row)]
            if row.source_ref:
                existing[row.source_ref] = pk
            out.append((pk, True))
        else:
            assert row.source_ref is not None
            out.append((existing[row.source_ref], False))
    return out


class SqlCursorStore:
    """`MailboxCursorStore` on the imap_cursors table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def load(self, mailbox_key: str) -> tuple[int | None, int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(imap_cursors.c.uidvalidity, imap_cursors.c.last_uid).where(
                    imap_cursors.c.mailbox_key == mailbox_key
                )
            ).first()
        return (None, 0) if row is None else (int(row[0]), int(row[1]))

    def save(self, mailbox_key: str, uidvalidity: int, last_uid: int) -> None:
        with self.engine.begin() as conn:
            updated = conn.execute(
                imap_cursors.update()
                .where(imap_cursors.c.mailbox_key == mailbox_key)
                .values(uidvalidity=uidvalidity, last_uid=last_uid)
            ).rowcount
            if not updated:
                conn.execute(
                    imap_cursors.insert().values(
                        mailbox_key=mailbox_key, uidvalidity=uidvalidity, last_uid=last_uid
                    )
                )


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def sync_configuration(
    conn: sa.Connection,
    queue_list: Sequence[QueueConfig],
    route_list: Sequence[Route],
    rule_list: Sequence[Rule],
) -> None:
    """Make the queues, routes and rules tables mirror the configuration file.

    Queues are upserted by name and never deleted (conversations refer to them).
    Routes and rules are replaced, keeping their configured order.
    """
    current = {name: pk for pk, name in conn.execute(sa.select(queues.c.id, queues.c.name))}
    for q in queue_list:
        cfg = _jsonable(q)
        if q.name in current:
            conn.execute(queues.update().where(queues.c.id == current[q.name]).values(config=cfg))
        else:
            conn.execute(queues.insert().values(name=q.name, config=cfg))
    conn.execute(routes.delete())
    for pos, r in enumerate(route_list):
        cfg = _jsonable(r)
        if r.imap is not None:
            cfg["imap"] = {**cfg["imap"], "password": "***"}  # secrets stay in the config file
        conn.execute(
            routes.insert().values(position=pos, address=r.address, queue=r.queue, config=cfg)
        )
    conn.execute(rules.delete())
    for pos, rule in enumerate(rule_list):
        conn.execute(rules.insert().values(position=pos, name=rule.name, config=_jsonable(rule)))


def status_counts(conn: sa.Connection) -> dict[str, Any]:
    """The figures `postroom status --json` prints."""
    by_status: dict[str, int] = {
        status: int(n)
        for status, n in conn.execute(
            sa.select(messages.c.status, sa.func.count())
            .where(messages.c.direction == "in")
            .group_by(messages.c.status)
        )
    }
    auto = conn.execute(
        sa.select(sa.func.count())
        .select_from(messages)
        .where(messages.c.direction == "in", messages.c.auto_kind.is_not(None))
    ).scalar_one()
    duplicates = int(by_status.get("duplicate", 0))
    received = sum(int(v) for v in by_status.values()) - duplicates
    conv = {
        state: int(n)
        for state, n in conn.execute(
            sa.select(conversations.c.state, sa.func.count()).group_by(conversations.c.state)
        )
    }
    for state in ("queued", "alerting", "connected", "parked", "wrapup", "closed"):
        conv.setdefault(state, 0)
    return {
        "messages": {
            "received": received,
            "pending": int(by_status.get("pending", 0)),
            "processed": int(by_status.get("processed", 0)),
            "quarantined": int(by_status.get("quarantined", 0)),
            "discarded": int(by_status.get("discarded", 0)),
            "duplicates": duplicates,
            "auto_generated": int(auto),
        },
        "threads": int(conn.execute(sa.select(sa.func.count()).select_from(threads)).scalar_one()),
        "conversations": conv,
    }


# -- pipeline queries ---------------------------------------------------------
#
# Built once with bind parameters: constructing a statement costs SQLAlchemy
# several times what running a cached one does, and these run for every message
# while the pipeline holds SQLite's write lock.

_PENDING_IDS = (
    sa.select(messages.c.id)
    .where(messages.c.status == "pending", messages.c.direction == "in")
    .order_by(messages.c.id)
    .limit(sa.bindparam("limit"))
)
_MESSAGE = sa.select(messages).where(messages.c.id == sa.bindparam("pk"))
_LOCK_PENDING = (
    sa.select(messages)
    .where(messages.c.id == sa.bindparam("pk"), messages.c.status == "pending")
    .with_for_update(skip_locked=True)
)
_EARLIER = sa.and_(
    messages.c.id < sa.bindparam("pk"),
    messages.c.direction == "in",
    messages.c.status.not_in(("duplicate", "pending")),
)
_DUP_BY_HASH = (
    sa.select(messages.c.id)
    .where(_EARLIER, messages.c.raw_sha256 == sa.bindparam("sha"))
    .order_by(messages.c.id)
    .limit(1)
)
_DUP_BY_ID = (
    sa.select(messages.c.id)
    .where(
        _EARLIER,
        messages.c.header_message_id == sa.bindparam("mid"),
        messages.c.sender == sa.bindparam("sender"),
    )
    .order_by(messages.c.id)
    .limit(1)
)
_RECENT_FROM_SENDER = (
    sa.select(sa.func.count())
    .select_from(messages)
    .where(
        messages.c.id < sa.bindparam("pk"),
        messages.c.direction == "in",
        messages.c.sender == sa.bindparam("sender"),
        messages.c.received_at >= sa.bindparam("since"),
        messages.c.status != "duplicate",
    )
)
_OUTBOUND_BY_IDS = (
    sa.select(messages.c.id)
    .where(
        messages.c.direction == "out",
        messages.c.header_message_id.in_(sa.bindparam("ids", expanding=True)),
    )
    .limit(1)
)
_MESSAGES_BY_IDS = (
    sa.select(messages.c.header_message_id, messages.c.thread_id, messages.c.id)
    .where(
        messages.c.header_message_id.in_(sa.bindparam("ids", expanding=True)),
        messages.c.thread_id.is_not(None),
    )
    .order_by(messages.c.id.desc())
)
# Addresses are compared case-insensitively: rows written since migration 0007 are
# lower-cased, older ones are lowered here.
_IS_PARTICIPANT = sa.select(thread_participants.c.thread_id).where(
    thread_participants.c.thread_id == sa.bindparam("tid"),
    sa.func.lower(thread_participants.c.address) == sa.bindparam("address"),
)
_OUTBOUND_RECIPIENTS = sa.select(messages.c.envelope_to).where(
    messages.c.thread_id == sa.bindparam("tid"), messages.c.direction == "out"
)
_AWAITED = (
    sa.select(awaited_references.c.thread_id, awaited_references.c.sender)
    .where(awaited_references.c.referenced_id == sa.bindparam("mid"))
    .order_by(awaited_references.c.id)
)
_ADD_AWAITED = awaited_references.insert()
_ADD_PARTICIPANT = thread_participants.insert()
_LATEST_CONVERSATION = (
    sa.select(conversations)
    .where(conversations.c.thread_id == sa.bindparam("tid"))
    .order_by(conversations.c.id.desc())
    .limit(1)
)
_THREAD_EXISTS = sa.select(threads.c.id).where(threads.c.id == sa.bindparam("tid"))

INSERT_EVENT = events.insert().returning(events.c.id)
INSERT_THREAD = threads.insert().returning(threads.c.id)
INSERT_CONVERSATION = conversations.insert().returning(conversations.c.id)
INSERT_ATTACHMENT = attachments.insert()


def get_message(conn: sa.Connection, pk: int) -> sa.Row[Any] | None:
    return conn.execute(_MESSAGE, {"pk": pk}).first()


def pending_ids(conn: sa.Connection, limit: int) -> list[int]:
    return list(conn.execute(_PENDING_IDS, {"limit": limit}).scalars())


def lock_pending(conn: sa.Connection, pk: int) -> sa.Row[Any] | None:
    """The pending message row, locked for this transaction; None if taken or done.

    On PostgreSQL, SKIP LOCKED lets several pipeline workers share the work;
    SQLite serializes writers with BEGIN IMMEDIATE and ignores the clause.
    """
    return conn.execute(_LOCK_PENDING, {"pk": pk}).first()


_COUNT_ATTEMPT = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_pk"), messages.c.status == "pending")
    .values(attempts=messages.c.attempts + 1)
)


def count_attempt(conn: sa.Connection, pk: int) -> None:
    """Count one more start of the pipeline on a pending message (no-op otherwise)."""
    conn.execute(_COUNT_ATTEMPT, {"b_pk": pk})


def find_duplicate(
    conn: sa.Connection, pk: int, raw_sha256: str, message_id: str | None, sender: str | None
) -> int | None:
    """An earlier inbound message with the same content, or same Message-ID and sender."""
    found: int | None = conn.execute(_DUP_BY_HASH, {"pk": pk, "sha": raw_sha256}).scalar()
    if found is None and message_id and sender:
        found = conn.execute(_DUP_BY_ID, {"pk": pk, "mid": message_id, "sender": sender}).scalar()
    return found


def recent_from_sender(conn: sa.Connection, pk: int, sender: str, since: datetime) -> int:
    return int(
        conn.execute(_RECENT_FROM_SENDER, {"pk": pk, "sender": sender, "since": since}).scalar_one()
    )


def outbound_by_message_ids(conn: sa.Connection, ids: Sequence[str]) -> int | None:
    if not ids:
        return None
    result: int | None = conn.execute(_OUTBOUND_BY_IDS, {"ids": list(ids)}).scalar()
    return result


def conversation_of_message(conn: sa.Connection, pk: int) -> tuple[int | None, int | None] | None:
    """(conversation id, thread id) of a stored message, or None when there is no such row."""
    row = conn.execute(
        sa.select(messages.c.conversation_id, messages.c.thread_id).where(messages.c.id == pk)
    ).first()
    return None if row is None else (row.conversation_id, row.thread_id)


def threads_of_message_ids(conn: sa.Connection, ids: Sequence[str]) -> tuple[list[int], set[str]]:
    """The threads of stored or sent messages carrying these Message-IDs, and the ids found.

    Threads come in the order of `ids` (most specific first), newest message first
    for one id, each thread once. An id carried only by messages without a thread
    (quarantined, pending) is not found: it stays awaited, so such a message,
    once released, still joins the thread of a reply to it.
    """
    matches, found = thread_matches(conn, ids)
    return [tid for tid, _, _ in matches], found


def thread_matches(
    conn: sa.Connection, ids: Sequence[str]
) -> tuple[list[tuple[int, str, int]], set[str]]:
    """As `threads_of_message_ids`, each thread with the Message-ID and the stored
    message (its row id) that named it first: (thread, Message-ID, message)."""
    if not ids:
        return [], set()
    by_id: dict[str, list[tuple[int, int]]] = {}
    for mid, tid, pk in conn.execute(_MESSAGES_BY_IDS, {"ids": list(ids)}):
        if tid is not None:
            by_id.setdefault(mid, []).append((int(tid), int(pk)))
    seen: dict[int, tuple[int, str, int]] = {}
    for mid in ids:
        for tid, pk in by_id.get(mid, ()):
            seen.setdefault(tid, (tid, mid, pk))
    return list(seen.values()), set(by_id)


def unresolved_ids(conn: sa.Connection, ids: Sequence[str]) -> tuple[str, ...]:
    """The ids, in order, that no stored or sent message carries."""
    found = threads_of_message_ids(conn, ids)[1]
    return tuple(m for m in ids if m not in found)


def is_participant(conn: sa.Connection, thread_id: int, address: str) -> bool:
    """Whether `address` took part in the thread, compared case-insensitively.

    Participants are the From, Reply-To, To and Cc addresses of the thread's
    inbound messages (and the recipients of a new email an agent started), and
    every recipient of the thread's outbound messages.
    """
    low = address.lower()
    if _listed(conn, thread_id, low):
        return True
    for (recipients,) in conn.execute(_OUTBOUND_RECIPIENTS, {"tid": thread_id}):
        if any(str(r).lower() == low for r in recipients or ()):
            return True
    return False


def _listed(conn: sa.Connection, thread_id: int, low: str) -> bool:
    return conn.execute(_IS_PARTICIPANT, {"tid": thread_id, "address": low}).first() is not None


def add_participants(conn: sa.Connection, thread_id: int, addresses: Sequence[str]) -> None:
    for address in dict.fromkeys(a.lower() for a in addresses if a):
        if not _listed(conn, thread_id, address):
            conn.execute(_ADD_PARTICIPANT, {"thread_id": thread_id, "address": address})


def awaited_by(conn: sa.Connection, message_id: str) -> list[tuple[int, str | None]]:
    """(thread, sender) of earlier messages that referenced `message_id` before it was stored."""
    return [(int(t), s) for t, s in conn.execute(_AWAITED, {"mid": message_id})]


def add_awaited(
    conn: sa.Connection, thread_id: int, pk: int, sender: str | None, referenced: Sequence[str]
) -> None:
    """Remember Message-IDs a message referenced that no stored message carries (yet)."""
    rows = [
        {"referenced_id": mid, "thread_id": thread_id, "message_id": pk, "sender": sender}
        for mid in dict.fromkeys(referenced)
    ]
    if rows:
        conn.execute(_ADD_AWAITED, rows)


def latest_conversation(conn: sa.Connection, thread_id: int) -> sa.Row[Any] | None:
    return conn.execute(_LATEST_CONVERSATION, {"tid": thread_id}).first()


def thread_exists(conn: sa.Connection, thread_id: int) -> bool:
    return conn.execute(_THREAD_EXISTS, {"tid": thread_id}).first() is not None


_TOUCH_THREAD = (
    threads.update()
    .where(threads.c.id == sa.bindparam("tid"))
    .values(last_activity_at=sa.bindparam("at"))
)


def touch_thread(conn: sa.Connection, thread_id: int, at: datetime) -> None:
    conn.execute(_TOUCH_THREAD, {"tid": thread_id, "at": at})


_UPDATE_MESSAGE = messages.update().where(messages.c.id == sa.bindparam("b_pk"))
_DELETE_ATTACHMENTS = attachments.delete().where(attachments.c.message_id == sa.bindparam("pk"))


def update_message(conn: sa.Connection, pk: int, values: dict[str, Any]) -> None:
    conn.execute(_UPDATE_MESSAGE, {"b_pk": pk, **values})


def replace_attachments(conn: sa.Connection, pk: int, rows: list[dict[str, Any]]) -> None:
    conn.execute(_DELETE_ATTACHMENTS, {"pk": pk})
    if rows:
        conn.execute(INSERT_ATTACHMENT, [{"message_id": pk, **r} for r in rows])


_INSERT_INBOX = routing_inbox.insert()


def request_routing(
    conn: sa.Connection,
    at: datetime,
    kind: str,
    conversation_id: int | None = None,
    agent_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Ask the router to act (see services/routing.py); part of the caller's transaction."""
    conn.execute(
        _INSERT_INBOX,
        {
            "at": at,
            "kind": kind,
            "conversation_id": conversation_id,
            "agent_id": agent_id,
            "data": data or {},
        },
    )

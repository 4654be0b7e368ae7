"""Reading conversations for people: the filtered list, one conversation with its
messages, attachments and delivery states, an attachment to download, and the
customer and queue for substitutions. The access rule is access.py; this module
changes nothing and knows nothing of HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError
from postroom.mail import threading as thread_keys
from postroom.services.conversations.access import ensure_visible, visible_ids
from postroom.services.conversations.browse import BrowseFilter, browse, summary
from postroom.services.conversations.common import iso as _iso
from postroom.services.conversations.wrapup import wrapup_notes
from postroom.services.users import User
from postroom.store.schema import attachments, conversations, messages, outbox, threads


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    state: str | None = None
    queue: str | None = None
    agent: str | None = None
    search: str | None = None
    mine: bool = False
    limit: int = 50
    before_id: int | None = None


def _summary(row: sa.Row[Any], prefix: str) -> dict[str, Any]:
    return summary(row, prefix)


def _base_select() -> sa.Select[Any]:
    return sa.select(conversations, threads.c.subject).join(
        threads, threads.c.id == conversations.c.thread_id
    )


def list_conversations(
    db: sa.Engine, user: User, flt: ConversationFilter, *, prefix: str = "PR"
) -> list[dict[str, Any]]:
    """Conversations the user may see, newest (highest id) first; with `search`,
    those the full-text search finds (browse.py), each with its snippet and rank."""
    page = browse(
        db,
        user,
        BrowseFilter(
            q=flt.search,
            state=flt.state,
            queue=flt.queue,
            agent=flt.agent,
            mine=flt.mine,
            limit=flt.limit,
            before_id=flt.before_id,
            sort="id",
        ),
        prefix=prefix,
    )
    return page.conversations


# Every column but the search index's document (PostgreSQL's tsvector).
_SHOWN = [c for c in messages.c if c.name != "search_document"]


def _attachment_json(a: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": a.id,
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "inline": a.inline,
        "content_id": a.content_id,
        "url": f"/api/v1/attachments/{a.id}",
    }


def get_conversation(
    db: sa.Engine, user: User, conversation_id: int, *, prefix: str = "PR"
) -> dict[str, Any]:
    ensure_visible(db, user, conversation_id)
    with db.connect() as conn:
        row = conn.execute(_base_select().where(conversations.c.id == conversation_id)).one()
        msgs = conn.execute(
            sa.select(*_SHOWN)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.received_at, messages.c.id)
        ).all()
        atts = conn.execute(
            sa.select(attachments)
            .where(attachments.c.message_id.in_([m.id for m in msgs] or [-1]))
            .order_by(attachments.c.message_id, attachments.c.position)
        ).all()
        delivery = _delivery(conn, [m.id for m in msgs if m.direction == "out"])
        history = conn.execute(
            sa.select(conversations.c.id, conversations.c.state, conversations.c.created_at)
            .where(conversations.c.thread_id == row.thread_id)
            .order_by(conversations.c.id)
        ).all()
    by_msg: dict[int, list[dict[str, Any]]] = {}
    for a in atts:
        by_msg.setdefault(a.message_id, []).append(_attachment_json(a))
    out = _summary(row, prefix)
    out["messages"] = [
        {
            "id": m.id,
            "direction": m.direction,
            "sender": m.sender,
            "from": _header(m.headers, "from"),
            "to": _header(m.headers, "to"),
            "cc": _header(m.headers, "cc"),
            "subject": m.subject,
            "received_at": _iso(m.received_at),
            "sent_at": _iso(m.sent_at),
            "text": m.text,
            "html": m.html,
            "preview": m.preview,
            "status": m.status,
            "delivery": delivery.get(m.id),
            "auto_kind": m.auto_kind,
            "attachments": by_msg.get(m.id, []),
            "thread_reason": _thread_reason(m.thread_reason),
        }
        for m in msgs
    ]
    out["thread"] = [
        {"id": h.id, "state": h.state, "created_at": _iso(h.created_at)} for h in history
    ]
    out["wrapup_notes"] = [e["data"] for e in wrapup_notes(db, conversation_id)]
    return out


def _thread_reason(stored: Any) -> dict[str, Any] | None:
    """How intake threaded the message: its stored code and ids, and the sentence."""
    if not isinstance(stored, dict):
        return None  # an outbound message, or one stored before this was recorded
    return {**stored, "text": thread_keys.describe_thread_reason(stored)}


def _delivery(conn: sa.Connection, message_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The outbox state of outbound messages: status (queued, sent, failed, bounced),
    attempts, the relay's last error and when it was sent."""
    if not message_ids:
        return {}
    rows = conn.execute(
        sa.select(
            outbox.c.message_id,
            outbox.c.status,
            outbox.c.attempts,
            outbox.c.last_error,
            outbox.c.sent_at,
        ).where(outbox.c.message_id.in_(list(message_ids)))
    )
    return {
        int(r.message_id): {
            "status": r.status,
            "attempts": int(r.attempts or 0),
            "last_error": r.last_error,
            "sent_at": _iso(r.sent_at),
        }
        for r in rows
    }


def message_delivery(db: sa.Engine, user: User, message_id: int) -> dict[str, Any]:
    """The delivery state of one outbound message in a conversation the user can see:
    ``{"message_id", "conversation_id", "delivery"}`` (delivery None when the message
    was never put in the outbox, e.g. a received one)."""
    with db.connect() as conn:
        row = conn.execute(
            sa.select(messages.c.conversation_id, messages.c.direction).where(
                messages.c.id == message_id
            )
        ).first()
    missing = NotFoundError(f"no message {message_id} that you can see")
    if row is None or row.conversation_id is None:
        raise missing
    if int(row.conversation_id) not in visible_ids(db, user, [int(row.conversation_id)]):
        raise missing
    found = {}
    if row.direction == "out":
        with db.connect() as conn:
            found = _delivery(conn, [message_id])
    return {
        "message_id": message_id,
        "conversation_id": int(row.conversation_id),
        "delivery": found.get(message_id),
    }


def _header(headers: Any, name: str) -> str | None:
    for item in headers or []:
        if len(item) == 2 and str(item[0]).lower() == name:
            return str(item[1])
    return None


def attachment_for_download(db: sa.Engine, user: User, attachment_id: int) -> tuple[str, str, str]:
    """(blob key, filename, content type) of an attachment the user may read."""
    with db.connect() as conn:
        row = conn.execute(
            sa.select(attachments, messages.c.conversation_id)
            .join(messages, messages.c.id == attachments.c.message_id)
            .where(attachments.c.id == attachment_id)
        ).first()
    missing = NotFoundError(f"no attachment {attachment_id} that you can see")
    if row is None or row.conversation_id is None:
        raise missing
    if int(row.conversation_id) not in visible_ids(db, user, [int(row.conversation_id)]):
        raise missing
    return row.sha256, row.filename, row.content_type


def customer_and_queue(db: sa.Engine, conversation_id: int) -> tuple[str, str, int]:
    """(customer name, queue name, thread id) for substitutions."""
    with db.connect() as conn:
        conv = conn.execute(
            sa.select(conversations.c.queue, conversations.c.thread_id).where(
                conversations.c.id == conversation_id
            )
        ).first()
        if conv is None:
            raise NotFoundError(f"no conversation {conversation_id}")
        first = conn.execute(
            sa.select(messages.c.headers, messages.c.sender)
            .where(messages.c.conversation_id == conversation_id, messages.c.direction == "in")
            .order_by(messages.c.received_at, messages.c.id)
            .limit(1)
        ).first()
        opened = None
        if first is None:
            # An agent started it (a new email): the customer is whom it was sent to.
            opened = conn.execute(
                sa.select(messages.c.headers)
                .where(messages.c.conversation_id == conversation_id)
                .order_by(messages.c.received_at, messages.c.id)
                .limit(1)
            ).first()
    name = ""
    if first is not None:
        display, address = parseaddr(_header(first.headers, "from") or "")
        name = display or address or (first.sender or "")
    elif opened is not None:
        display, address = parseaddr(_header(opened.headers, "to") or "")
        name = display or address
    return name, conv.queue, int(conv.thread_id)

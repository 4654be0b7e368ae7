"""Reading conversations for people: lists, one conversation with its messages,
attachments, drafts, uploads and the events a user may see (canned responses
are services/canned.py).

The access rule lives here and only here: an agent sees the conversations
offered or assigned to them and every conversation of a thread they took part
in (were connected to); supervisors and admins see everything. Anything an
agent may not see is reported as not found, so its existence does not leak.
It changes no conversation state (that is the router's, through
services/agents.py) and knows nothing of HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import MessageTooLargeError, NotFoundError, PostroomError
from postroom.domain.routes import QueueConfig
from postroom.mail.threading import thread_token
from postroom.services.users import User
from postroom.store.blobs import BlobStore, sha256_hex
from postroom.store.db import as_utc
from postroom.store.schema import (
    ID_MAX,
    agents,
    attachments,
    conversations,
    drafts,
    events,
    messages,
    outbox,
    thread_agents,
    threads,
    uploads,
)

STATES = ("queued", "alerting", "connected", "parked", "wrapup", "closed")
HELD = ("connected", "parked", "wrapup")


class LimitExceeded(PostroomError):
    """A request carries more than a configured limit allows."""


def _iso(value: datetime | None) -> str | None:
    v = as_utc(value)
    return v.isoformat() if v is not None else None


# -- the access rule ------------------------------------------------------------------


def _took_part_threads(user_id: str) -> sa.Select[Any]:
    # thread_agents is kept by the router (an index lookup, not a scan of events).
    return sa.select(thread_agents.c.thread_id).where(thread_agents.c.agent_id == user_id)


def visible_clause(user: User) -> sa.ColumnElement[bool]:
    """Which conversation rows `user` may read."""
    if user.sees_everything:
        return sa.true()
    return sa.or_(
        conversations.c.agent_id == user.id,
        conversations.c.thread_id.in_(_took_part_threads(user.id)),
    )


def visible_ids(db: sa.Engine, user: User, ids: Iterable[int]) -> set[int]:
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    if user.sees_everything:
        return set(wanted)
    with db.connect() as conn:
        return {
            int(i)
            for (i,) in conn.execute(
                sa.select(conversations.c.id).where(
                    conversations.c.id.in_(wanted), visible_clause(user)
                )
            )
        }


def ensure_visible(db: sa.Engine, user: User, conversation_id: int) -> None:
    if conversation_id not in visible_ids(db, user, [conversation_id]):
        raise NotFoundError(f"no conversation {conversation_id} that you can see")
    with db.connect() as conn:
        found = conn.execute(
            sa.select(conversations.c.id).where(conversations.c.id == conversation_id)
        ).first()
    if found is None:
        raise NotFoundError(f"no conversation {conversation_id} that you can see")


# -- conversations --------------------------------------------------------------------


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
    return {
        "id": row.id,
        "reference": thread_token(prefix, row.thread_id),
        "thread_id": row.thread_id,
        "state": row.state,
        "queue": row.queue,
        "priority": row.priority,
        "agent": row.agent_id,
        "last_agent": row.last_agent,
        "offer_deadline": _iso(row.offer_deadline),
        "subject": row.subject,
        "tags": row.tags,
        "language": row.language,
        "created_at": _iso(row.created_at),
        "enqueued_at": _iso(row.enqueued_at),
        "closed_at": _iso(row.closed_at),
        "wrapup_code": row.wrapup_code,
    }


def _base_select() -> sa.Select[Any]:
    return sa.select(conversations, threads.c.subject).join(
        threads, threads.c.id == conversations.c.thread_id
    )


def list_conversations(
    db: sa.Engine, user: User, flt: ConversationFilter, *, prefix: str = "PR"
) -> list[dict[str, Any]]:
    if flt.state is not None and flt.state not in STATES:
        raise PostroomError(f"state must be one of {', '.join(STATES)}")
    q = _base_select().where(visible_clause(user))
    if flt.state:
        q = q.where(conversations.c.state == flt.state)
    if flt.queue:
        q = q.where(conversations.c.queue == flt.queue)
    if flt.agent:
        q = q.where(conversations.c.agent_id == flt.agent)
    if flt.mine:
        q = q.where(conversations.c.agent_id == user.id)
    if flt.before_id is not None:
        q = q.where(conversations.c.id < flt.before_id)
    if flt.search:
        term = flt.search.strip()
        ref = re.fullmatch(re.escape(prefix) + r"-(\d{1,12})", term, re.IGNORECASE)
        if ref:  # a number beyond any id matches nothing (and is no query parameter)
            number = int(ref.group(1))
            q = q.where(conversations.c.thread_id == number if number <= ID_MAX else sa.false())
        else:
            like = f"%{term.lower()}%"
            matching = sa.select(messages.c.conversation_id).where(
                sa.or_(
                    sa.func.lower(messages.c.subject).like(like),
                    sa.func.lower(messages.c.sender).like(like),
                    sa.func.lower(messages.c.text).like(like),
                )
            )
            q = q.where(
                sa.or_(
                    sa.func.lower(threads.c.subject).like(like), conversations.c.id.in_(matching)
                )
            )
    limit = max(1, min(flt.limit, 200))
    with db.connect() as conn:
        rows = conn.execute(q.order_by(conversations.c.id.desc()).limit(limit)).all()
    return [_summary(r, prefix) for r in rows]


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
            sa.select(messages)
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
        }
        for m in msgs
    ]
    out["thread"] = [
        {"id": h.id, "state": h.state, "created_at": _iso(h.created_at)} for h in history
    ]
    out["wrapup_notes"] = [e["data"] for e in wrapup_notes(db, conversation_id)]
    return out


# -- where an offer comes from ----------------------------------------------------------

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


# -- drafts ----------------------------------------------------------------------------------


def get_draft(db: sa.Engine, user: User, conversation_id: int) -> dict[str, Any] | None:
    ensure_visible(db, user, conversation_id)
    with db.connect() as conn:
        row = conn.execute(
            sa.select(drafts).where(
                drafts.c.conversation_id == conversation_id, drafts.c.user_id == user.id
            )
        ).first()
    if row is None:
        return None
    return {
        "conversation_id": conversation_id,
        "data": row.data,
        "updated_at": _iso(row.updated_at),
        "attachment_files": _upload_files(db, user, (row.data or {}).get("attachments") or []),
    }


def _upload_files(db: sa.Engine, user: User, ids: Sequence[Any]) -> list[dict[str, Any]]:
    """Name, type and size of the user's own uploads among `ids`, in that order; ids
    that are not (or no longer) theirs are left out."""
    wanted = [int(i) for i in ids if isinstance(i, int) or str(i).isdigit()]
    if not wanted:
        return []
    with db.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                sa.select(uploads.c.id, uploads.c.filename, uploads.c.content_type, uploads.c.size)
                .where(uploads.c.id.in_(wanted), uploads.c.user_id == user.id)
            )
        }
    return [
        {
            "id": i,
            "filename": rows[i].filename,
            "content_type": rows[i].content_type,
            "size": rows[i].size,
        }
        for i in dict.fromkeys(wanted)
        if i in rows
    ]


def save_draft(
    db: sa.Engine,
    clock: Callable[[], datetime],
    user: User,
    conversation_id: int,
    data: dict[str, Any],
    *,
    max_recipients: int,
    max_attachments: int,
) -> dict[str, Any]:
    """Create or replace the user's one draft for the conversation."""
    ensure_visible(db, user, conversation_id)
    check_limits(data, max_recipients=max_recipients, max_attachments=max_attachments)
    ids = [int(x) for x in data.get("attachments") or []]
    owned_uploads(db, user, ids)
    now = clock()
    with db.begin() as conn:
        done = conn.execute(
            drafts.update()
            .where(drafts.c.conversation_id == conversation_id, drafts.c.user_id == user.id)
            .values(data=data, updated_at=now)
        ).rowcount
        if not done:
            conn.execute(
                drafts.insert().values(
                    conversation_id=conversation_id, user_id=user.id, data=data, updated_at=now
                )
            )
    return {"conversation_id": conversation_id, "data": data, "updated_at": now.isoformat()}


def delete_draft(db: sa.Engine, user: User, conversation_id: int) -> None:
    ensure_visible(db, user, conversation_id)
    with db.begin() as conn:
        conn.execute(
            drafts.delete().where(
                drafts.c.conversation_id == conversation_id, drafts.c.user_id == user.id
            )
        )


def check_limits(data: dict[str, Any], *, max_recipients: int, max_attachments: int) -> None:
    count = sum(len(data.get(k) or []) for k in ("to", "cc", "bcc"))
    if count > max_recipients:
        raise LimitExceeded(
            f"{count} recipients; at most {max_recipients} are allowed in to, cc and bcc "
            "together: send several messages instead"
        )
    n = len(data.get("attachments") or [])
    if n > max_attachments:
        raise LimitExceeded(
            f"{n} attachments; at most {max_attachments} are allowed: zip them or send "
            "several messages"
        )


# -- uploads ------------------------------------------------------------------------------------


def save_upload(
    db: sa.Engine,
    clock: Callable[[], datetime],
    blobs: BlobStore,
    user: User,
    *,
    filename: str,
    content_type: str,
    data: bytes,
    max_size: int,
) -> dict[str, Any]:
    if len(data) > max_size:
        raise MessageTooLargeError(
            f"the file is {len(data)} bytes; at most {max_size} bytes are allowed: "
            "compress it or share a link instead"
        )
    name = (filename or "attachment").replace("/", "_").replace("\\", "_")[:255]
    key = blobs.put(data, sha256=sha256_hex(data))
    with db.begin() as conn:
        uid = conn.execute(
            uploads.insert()
            .values(
                user_id=user.id,
                filename=name,
                content_type=(content_type or "application/octet-stream")[:255],
                size=len(data),
                sha256=key,
                created_at=clock(),
            )
            .returning(uploads.c.id)
        ).scalar_one()
    return {
        "id": uid,
        "filename": name,
        "content_type": content_type,
        "size": len(data),
        "url": f"/api/v1/uploads/{uid}",
    }


def owned_uploads(db: sa.Engine, user: User, ids: Sequence[int]) -> list[sa.Row[Any]]:
    if not ids:
        return []
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(uploads).where(uploads.c.id.in_(list(ids)), uploads.c.user_id == user.id)
        ).all()
    found = {r.id for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"no upload {missing[0]} of yours; upload the file again")
    return list(rows)


def upload_for_download(db: sa.Engine, user: User, upload_id: int) -> tuple[str, str, str]:
    (row,) = owned_uploads(db, user, [upload_id])
    return row.sha256, row.filename, row.content_type


# -- events -----------------------------------------------------------------------------------


def _event_json(r: sa.Row[Any]) -> dict[str, Any]:
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
    return [_event_json(r) for r in rows]


def last_event_id(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)


def audiences(db: sa.Engine, conversation_ids: Iterable[int]) -> dict[int, frozenset[str]]:
    """For each conversation, the agents who may see it (holder and thread participants).

    One query for a whole batch of events, shared by every stream of a process;
    the same rule as `visible_clause` for agents (supervisors and admins see all)."""
    wanted = sorted(set(conversation_ids))
    if not wanted:
        return {}
    out: dict[int, set[str]] = {cid: set() for cid in wanted}
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(conversations.c.id, conversations.c.agent_id, thread_agents.c.agent_id)
            .select_from(
                conversations.outerjoin(
                    thread_agents, thread_agents.c.thread_id == conversations.c.thread_id
                )
            )
            .where(conversations.c.id.in_(wanted))
        )
        for cid, holder, participant in rows:
            out[int(cid)].update(a for a in (holder, participant) if a)
    return {cid: frozenset(agents_) for cid, agents_ in out.items()}


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


# -- who holds a conversation and wrap-up notes ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    state: str
    agent_id: str | None
    last_agent: str | None
    queue: str


def holder(db: sa.Engine, user: User, conversation_id: int) -> Holder:
    """State and agent of a conversation the user can see."""
    ensure_visible(db, user, conversation_id)
    with db.connect() as conn:
        row = conn.execute(
            sa.select(
                conversations.c.state,
                conversations.c.agent_id,
                conversations.c.last_agent,
                conversations.c.queue,
            ).where(conversations.c.id == conversation_id)
        ).one()
    return Holder(row.state, row.agent_id, row.last_agent, row.queue)


def check_wrapup_code(queue: QueueConfig | None, code: str) -> None:
    codes = queue.wrapup_codes if queue is not None else ()
    if codes and code not in codes:
        raise PostroomError(f"wrap-up code {code!r} is not one of: {', '.join(codes)}")


def record_wrapup_notes(
    db: sa.Engine,
    clock: Callable[[], datetime],
    conversation_id: int,
    agent_id: str,
    code: str,
    notes: str,
) -> None:
    """Append the agent's wrap-up notes as an event (the router keeps only the code)."""
    with db.begin() as conn:
        conn.execute(
            events.insert().values(
                at=clock(),
                kind="wrapup_notes",
                conversation_id=conversation_id,
                data={"agent": agent_id, "code": code, "notes": notes},
            )
        )


def wrapup_notes(db: sa.Engine, conversation_id: int) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(events)
            .where(events.c.conversation_id == conversation_id, events.c.kind == "wrapup_notes")
            .order_by(events.c.id)
        ).all()
    return [_event_json(r) for r in rows]

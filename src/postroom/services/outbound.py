"""Outbound use cases: queue replies and acknowledgements, claim and record deliveries.

The job: turn an agent's reply (or a route's acknowledgement template) into a
stored outbound message — raw bytes in the blob store, a ``messages`` row with
direction ``out``, an ``outbox`` row and a ``message_queued`` event, all in one
transaction — with the queue's name in From, the customer's message quoted
below a reply when asked (the queue's ``quote_original``), and the original
message and its attachments included in a forward; and keep the outbox's
delivery state: claim due rows for a sender, record ``sent`` / retry with
backoff / ``failed``, and ``bounced`` when intake
matches a delivery status notification to one of our messages. Events are
published to listeners only after their transaction commits.

What it must not do: open sockets or speak SMTP (the sender in
``postroom.outbound`` does, through a transport) or build MIME itself
(``postroom.mail.compose`` does). All state is in the database, so any process
can queue and any process with the ``sender`` role can deliver, across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

import sqlalchemy as sa

from postroom.domain.errors import NoRecipientError, NoReplyAddressError, NotFoundError
from postroom.domain.routes import QueueConfig, Route
from postroom.mail import compose as mc
from postroom.mail import threading as thread_keys
from postroom.mail.model import ParsedMessage
from postroom.mail.quotes import html_to_text
from postroom.mail.sanitize import sanitize_html
from postroom.services.search import index as search_index
from postroom.store.blobs import BlobNotFoundError, BlobStore, sha256_hex
from postroom.store.db import as_utc
from postroom.store.schema import attachments as attachments_table
from postroom.store.schema import (
    auto_acks,
    conversations,
    events,
    messages,
    outbox,
    threads,
)

log = logging.getLogger("postroom.outbound")

EventListener = Callable[[Sequence[dict[str, Any]]], None]

QUEUED, SENT, FAILED, BOUNCED = "queued", "sent", "failed", "bounced"
ACK_DONE_KINDS = ("auto_ack_queued", "auto_ack_skipped")
# A request older than this is answered with a skip: an acknowledgement that
# arrives a day late (after an outage) confuses more than it helps.
ACK_MAX_AGE = timedelta(days=1)
# Requests are looked for above (highest answered id - this margin): on PostgreSQL
# an event can commit after events with higher ids; this many is ample slack.
ACK_SCAN_MARGIN = 1000


class _OutboundSettingsLike(Protocol):
    @property
    def max_recipients(self) -> int: ...
    @property
    def max_attachments(self) -> int: ...
    @property
    def max_message_size(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def retry_initial_s(self) -> float: ...
    @property
    def retry_max_s(self) -> float: ...
    @property
    def auto_ack_window_s(self) -> int: ...


class _IntakeSettingsLike(Protocol):
    @property
    def message_id_domain(self) -> str: ...
    @property
    def thread_token_prefix(self) -> str: ...


@dataclass(frozen=True, slots=True)
class OutboundConfig:
    message_id_domain: str = "postroom.local"
    thread_token_prefix: str = "PR"
    limits: mc.Limits = field(default_factory=mc.Limits)
    max_attempts: int = 8
    retry_initial_s: float = 30.0
    retry_max_s: float = 3600.0
    auto_ack_window_s: int = 86400
    lease_s: float = 300.0  # a claimed row is due again after this (its sender died)
    # (queue, name in From) pairs; a queue not named here sends without a name
    from_names: tuple[tuple[str, str], ...] = ()
    # When set, asked for the pairs at each message instead (the live configuration).
    names: Callable[[], tuple[tuple[str, str], ...]] | None = None
    # (route address, name in From) pairs: a route's own name wins over its queue's
    # for the conversations that came in through it; `route_names` asks at each message.
    route_from_names: tuple[tuple[str, str], ...] = ()
    route_names: Callable[[], tuple[tuple[str, str], ...]] | None = None

    @classmethod
    def from_settings(
        cls,
        outbound: _OutboundSettingsLike,
        intake: _IntakeSettingsLike,
        queues: Sequence[QueueConfig] = (),
        *,
        names: Callable[[], tuple[tuple[str, str], ...]] | None = None,
        route_names: Callable[[], tuple[tuple[str, str], ...]] | None = None,
    ) -> OutboundConfig:
        """From runtime settings' ``[outbound]`` and ``[intake]`` sections (and the
        queues, or a function that gives their names in From now)."""
        return cls(
            from_names=from_names(queues),
            names=names,
            route_names=route_names,
            message_id_domain=intake.message_id_domain,
            thread_token_prefix=intake.thread_token_prefix,
            limits=mc.Limits(
                max_recipients=outbound.max_recipients,
                max_attachments=outbound.max_attachments,
                max_message_size=outbound.max_message_size,
            ),
            max_attempts=outbound.max_attempts,
            retry_initial_s=outbound.retry_initial_s,
            retry_max_s=outbound.retry_max_s,
            auto_ack_window_s=outbound.auto_ack_window_s,
        )


def from_names(queues: Sequence[QueueConfig]) -> tuple[tuple[str, str], ...]:
    """The (queue, From display name) pairs of OutboundConfig.from_names."""
    return tuple((q.name, q.from_name) for q in queues)


def route_from_names(routes: Sequence[Route]) -> tuple[tuple[str, str], ...]:
    """The (route address, From display name) pairs of the routes that name one."""
    return tuple((r.address, r.reply_from_name) for r in routes if r.reply_from_name)


Include = Literal["quote", "forward"]


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    message_pk: int
    outbox_id: int
    message_id: str  # the Message-ID header, without brackets
    recipients: tuple[str, ...]
    raw_size: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed outbox row: what a transport needs to send it."""

    outbox_id: int
    message_pk: int
    envelope_from: str  # "" for the null reverse-path
    recipients: tuple[str, ...]
    raw: bytes = field(repr=False)
    attempts: int  # attempts made before this one


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    permanent: bool = False  # a 5xx answer: retrying will not help
    detail: str = ""  # the relay's answer or the local error
    refused: Mapping[str, str] = field(default_factory=dict)  # recipients refused on success


def retry_delay(
    attempts: int, initial_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next try after `attempts` failures: doubling, capped, jittered.

    The jitter (±25 %) spreads retries of many messages deferred at once.
    """
    base = min(max_s, initial_s * (2 ** max(0, attempts - 1)))
    return float(min(max_s, base * (0.75 + 0.5 * rand())))


def _header(headers: Any, name: str) -> str | None:
    lname = name.lower()
    for pair in headers or ():
        if len(pair) == 2 and str(pair[0]).lower() == lname:
            return str(pair[1])
    return None


def _header_date(value: str | None) -> datetime | None:
    """A Date header as an aware datetime (the stored ``sent_at`` loses the offset on
    SQLite), or None."""
    if not value:
        return None
    try:
        found = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _guid_for_thread(domain: str, thread_id: int) -> bytes:
    return hashlib.sha256(f"postroom-thread:{domain}:{thread_id}".encode()).digest()[:16]


_DSN_ACTION = re.compile(r"^\s*action\s*:\s*([a-z]+)", re.IGNORECASE | re.MULTILINE)
_NOT_FAILED = {"delayed", "delivered", "relayed", "expanded"}


def is_failure_report(msg: ParsedMessage) -> bool:
    """False when a delivery status notification only reports delays or success."""
    actions: list[str] = []
    for att in msg.attachments:
        if att.content_type.lower() in (
            "message/delivery-status",
            "message/global-delivery-status",
        ):
            actions += [a.lower() for a in _DSN_ACTION.findall(att.data.decode("utf-8", "replace"))]
    return not actions or any(a not in _NOT_FAILED for a in actions)


def mark_bounced(conn: sa.Connection, outbound_pk: int, at: datetime, msg: ParsedMessage) -> bool:
    """Intake found a bounce for our message `outbound_pk`: the outbox row turns ``bounced``.

    Runs in intake's transaction. Reports that only say "delayed" change nothing.
    """
    if not is_failure_report(msg):
        return False
    done = conn.execute(
        outbox.update()
        .where(outbox.c.message_id == outbound_pk, outbox.c.status != BOUNCED)
        .values(status=BOUNCED, next_attempt_at=None, updated_at=at)
    ).rowcount
    return bool(done)


class OutboundService:
    def __init__(
        self,
        engine: sa.Engine,
        blobs: BlobStore,
        config: OutboundConfig,
        clock: Callable[[], datetime],
        listeners: Sequence[EventListener] = (),
        *,
        unique: Callable[[], str] = lambda: secrets.token_hex(8),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.config = config
        self.clock = clock
        self.listeners = list(listeners)
        self.unique = unique
        self.rand = rand
        self._ack_floor = 0

    # -- queueing ---------------------------------------------------------------

    def queue_reply(
        self,
        conversation_id: int,
        *,
        text: str,
        html: str | None = None,
        attachments: Sequence[mc.OutboundAttachment] = (),
        to: Sequence[str] | None = None,
        cc: Sequence[str] = (),
        bcc: Sequence[str] = (),
        subject: str | None = None,
        reply_to_message: int | None = None,
        agent_id: str | None = None,
        include: Include | None = None,
    ) -> QueuedMessage:
        """Queue an agent's reply in a conversation; raises the named OutboundErrors.

        By default it answers the conversation's newest inbound message: to its
        Reply-To (or From), subject ``Re: ... [#PR-N]``, threaded under it.
        `include` adds that message below the text: ``quote`` as a reply's quote,
        ``forward`` as a forwarded message with its attachments.
        """
        with self.engine.begin() as conn:
            queued, evs = self._queue(
                conn,
                conversation_id,
                text=text,
                html=html,
                attachments=tuple(attachments),
                to=None if to is None else tuple(to),
                cc=tuple(cc),
                bcc=tuple(bcc),
                subject=subject,
                reply_to_message=reply_to_message,
                source="agent",
                automatic=False,
                extra={"agent_id": agent_id} if agent_id else {},
                include=include,
            )
        self._publish(evs)
        return queued

    def queue_in(
        self,
        conn: sa.Connection,
        conversation_id: int,
        *,
        text: str,
        html: str | None,
        attachments: Sequence[mc.OutboundAttachment],
        to: Sequence[str],
        cc: Sequence[str],
        bcc: Sequence[str],
        subject: str,
        agent_id: str,
    ) -> tuple[QueuedMessage, list[dict[str, Any]]]:
        """Queue an agent's message inside the caller's transaction.

        For a use case that creates the conversation in the same transaction (a
        new email); the caller publishes the returned events after its commit.
        """
        return self._queue(
            conn,
            conversation_id,
            text=text,
            html=html,
            attachments=tuple(attachments),
            to=tuple(to),
            cc=tuple(cc),
            bcc=tuple(bcc),
            subject=subject,
            reply_to_message=None,
            source="agent",
            automatic=False,
            extra={"agent_id": agent_id},
        )

    def publish(self, evs: Sequence[dict[str, Any]]) -> None:
        """Tell the listeners of committed events (see `queue_in`)."""
        self._publish(evs)

    def _queue(
        self,
        conn: sa.Connection,
        conversation_id: int,
        *,
        text: str,
        html: str | None,
        attachments: tuple[mc.OutboundAttachment, ...],
        to: tuple[str, ...] | None,
        cc: tuple[str, ...],
        bcc: tuple[str, ...],
        subject: str | None,
        reply_to_message: int | None,
        source: str,
        automatic: bool,
        extra: dict[str, Any],
        source_ref: str | None = None,
        include: Include | None = None,
    ) -> tuple[QueuedMessage, list[dict[str, Any]]]:
        conv = conn.execute(
            sa.select(conversations).where(conversations.c.id == conversation_id)
        ).first()
        if conv is None:
            raise NotFoundError(f"conversation {conversation_id} does not exist")
        thread = conn.execute(sa.select(threads).where(threads.c.id == conv.thread_id)).one()
        parent = self._parent(conn, conv, reply_to_message)
        from_address = conv.reply_from or (
            conv.route_address
            if conv.route_address and not conv.route_address.startswith("*@")
            else None
        )
        if not from_address:
            raise NoReplyAddressError(conversation_id)
        from_name = self._from_name(conv.route_address, conv.queue)
        if include is not None and parent is not None:
            original = self._original(conn, parent)
            if include == "quote":
                text, html = mc.append_block(text, html, mc.quote_block(original))
            else:
                text, html = mc.append_block(text, html, mc.forward_block(original))
                attachments = (*attachments, *self._original_files(conn, parent))
        if to is None:
            to = self._default_to(parent)
        if not to and not cc and not bcc:
            raise NoRecipientError()
        now = self.clock()
        token = thread_keys.thread_token(self.config.thread_token_prefix, thread.id)
        message_id = thread_keys.outbound_message_id(
            token, self.unique(), self.config.message_id_domain
        )
        parent_headers = parent.headers if parent is not None else None
        base_index = mc.decode_thread_index(_header(parent_headers, "Thread-Index"))
        if base_index is None:
            started = as_utc(thread.created_at)
            assert started is not None
            guid = _guid_for_thread(self.config.message_id_domain, thread.id)
            base_index = mc.new_thread_index(started, guid)
        index = mc.child_thread_index(
            base_index, now, hashlib.sha256(message_id.encode()).digest()[0]
        )
        topic = _header(parent_headers, "Thread-Topic") or mc.thread_topic(thread.subject, token)
        if subject is None:
            subject = mc.reply_subject(
                parent.subject if parent is not None and parent.subject else thread.subject, token
            )
        else:
            subject = thread_keys.subject_with_token(subject, token)
        references = (
            mc.references_chain(
                parent.header_message_id, parent.references or (), parent.in_reply_to or ()
            )
            if parent is not None
            else ()
        )
        draft = mc.OutboundDraft(
            from_address=from_address,
            from_name=from_name,
            to=to,
            cc=cc,
            bcc=bcc,
            subject=subject,
            text=text,
            html=html,
            attachments=attachments,
            message_id=message_id,
            date=now,
            in_reply_to=parent.header_message_id if parent is not None else None,
            references=references,
            thread_index=index,
            thread_topic=topic,
            automatic=automatic,
        )
        raw = mc.compose(draft, self.config.limits)
        recipients = mc.envelope_recipients(draft)
        sha = self.blobs.put(raw)
        for att in attachments:
            self.blobs.put(att.data)
        pk = conn.execute(
            messages.insert()
            .values(
                direction="out",
                source=source,
                source_ref=source_ref,
                raw_sha256=sha,
                raw_size=len(raw),
                raw=None,
                # RFC 3834 section 3.3: automatic replies go out with a null reverse-path.
                envelope_from="" if automatic else mc.clean_address(from_address),
                envelope_to=list(recipients),
                received_at=now,
                status="processed",
                header_message_id=message_id,
                sender=mc.clean_address(from_address),
                subject=subject,
                sent_at=now,
                in_reply_to=[draft.in_reply_to] if draft.in_reply_to else [],
                references=list(references),
                auto_kind="auto-replied" if automatic else None,
                thread_id=thread.id,
                conversation_id=conv.id,
                text=text,
                html=html,
                preview=text[:500],
                headers=[
                    ["From", mc.display_address(from_name, from_address)],
                    ["To", ", ".join(to)],
                    *([["Cc", ", ".join(cc)]] if cc else []),
                    ["Subject", subject],
                    ["Message-ID", f"<{message_id}>"],
                    ["Thread-Index", base64.b64encode(index).decode()],
                    ["Thread-Topic", topic],
                    *([["Auto-Submitted", "auto-replied"]] if automatic else []),
                ],
                defects=[],
            )
            .returning(messages.c.id)
        ).scalar_one()
        if attachments:
            conn.execute(
                attachments_table.insert(),
                [
                    {
                        "message_id": pk,
                        "position": pos,
                        "filename": att.filename[:255],
                        "content_type": att.content_type[:255],
                        "sniffed_type": None,
                        "size": len(att.data),
                        "sha256": sha256_hex(att.data),
                        "content_id": att.content_id,
                        "inline": att.content_id is not None and html is not None,
                    }
                    for pos, att in enumerate(attachments)
                ],
            )
            if html is not None and any(att.content_id for att in attachments):
                # The stored copy is the one the workspace shows: its inline images
                # are served from here, as intake does for received mail.
                shown = sanitize_html(
                    html, cid_url=lambda cid: f"/api/v1/messages/{pk}/cid/{quote(cid, safe='')}"
                )
                conn.execute(messages.update().where(messages.c.id == pk).values(html=shown))
        search_index.index_messages(conn, [pk], prefix=self.config.thread_token_prefix)
        outbox_id = conn.execute(
            outbox.insert()
            .values(
                message_id=pk,
                status=QUEUED,
                attempts=0,
                next_attempt_at=now,
                updated_at=now,
            )
            .returning(outbox.c.id)
        ).scalar_one()
        conn.execute(threads.update().where(threads.c.id == thread.id).values(last_activity_at=now))
        ev = self._event(
            conn,
            "message_queued",
            conversation_id=conv.id,
            message_id=pk,
            thread_id=thread.id,
            data={
                "outbox_id": outbox_id,
                "to": list(recipients),
                "source": source,
                "message_id": message_id,
                **extra,
            },
        )
        return QueuedMessage(pk, outbox_id, message_id, recipients, len(raw)), [ev]

    def _from_name(self, route_address: str | None, queue: str) -> str:
        """The name in From: the conversation's route's own, else its queue's."""
        if route_address:
            cfg = self.config
            by_route = dict(cfg.route_names() if cfg.route_names else cfg.route_from_names)
            name = by_route.get(route_address)
            if name:
                return name
        pairs = self.config.names() if self.config.names else self.config.from_names
        return dict(pairs).get(queue, "")

    def _parent(
        self, conn: sa.Connection, conv: sa.Row[Any], reply_to_message: int | None
    ) -> sa.Row[Any] | None:
        query = sa.select(messages).where(messages.c.thread_id == conv.thread_id)
        if reply_to_message is not None:
            row = conn.execute(query.where(messages.c.id == reply_to_message)).first()
            if row is None:
                raise NotFoundError(
                    f"message {reply_to_message} is not in conversation {conv.id}'s thread"
                )
            return row
        for where in (
            (messages.c.conversation_id == conv.id, messages.c.direction == "in"),
            (messages.c.direction == "in",),
        ):
            row = conn.execute(
                query.where(*where, messages.c.status == "processed")
                .order_by(messages.c.id.desc())
                .limit(1)
            ).first()
            if row is not None:
                return row
        return None

    def quote_preview(
        self, conversation_id: int, include: Include, reply_to_message: int | None = None
    ) -> dict[str, Any] | None:
        """What `include` would add below a message in this conversation (text, HTML,
        the message and the names of the files a forward attaches), or None when
        there is no message to include."""
        with self.engine.connect() as conn:
            conv = conn.execute(
                sa.select(conversations).where(conversations.c.id == conversation_id)
            ).first()
            if conv is None:
                raise NotFoundError(f"conversation {conversation_id} does not exist")
            parent = self._parent(conn, conv, reply_to_message)
            if parent is None:
                return None
            original = self._original(conn, parent)
            files: list[str] = []
            if include == "forward":
                files = [
                    str(r.filename)
                    for r in conn.execute(
                        sa.select(attachments_table.c.filename)
                        .where(attachments_table.c.message_id == parent.id)
                        .order_by(attachments_table.c.position)
                    )
                ]
        text, html = (mc.quote_block if include == "quote" else mc.forward_block)(original)
        return {"message": parent.id, "text": text, "html": html, "attachments": files}

    @staticmethod
    def _original(conn: sa.Connection, parent: sa.Row[Any]) -> mc.Original:
        """The stored message as a reply quotes it (its HTML sanitized again: the
        stored copy points inline images at the workspace, which mail cannot reach)."""
        html = sanitize_html(parent.html, cid_url=None) if parent.html else None
        text = parent.text or ""
        if not text.strip() and html:
            text = html_to_text(html).strip("\n")
        return mc.Original(
            sender=_header(parent.headers, "From") or parent.sender or "",
            date=_header_date(_header(parent.headers, "Date"))
            or as_utc(parent.sent_at)
            or as_utc(parent.received_at),
            subject=_header(parent.headers, "Subject") or parent.subject or "",
            to=_header(parent.headers, "To") or "",
            cc=_header(parent.headers, "Cc") or "",
            text=text,
            html=html,
        )

    def _original_files(
        self, conn: sa.Connection, parent: sa.Row[Any]
    ) -> tuple[mc.OutboundAttachment, ...]:
        """The message's attachments (inline pictures too) from the blob store, for a
        forward. A file whose bytes are gone is left out (and logged)."""
        out: list[mc.OutboundAttachment] = []
        for row in conn.execute(
            sa.select(attachments_table)
            .where(attachments_table.c.message_id == parent.id)
            .order_by(attachments_table.c.position)
        ):
            try:
                data = self.blobs.get(row.sha256)
            except BlobNotFoundError:
                log.warning(
                    "a forwarded attachment's bytes are missing",
                    extra={"message_id": parent.id, "attachment": row.id},
                )
                continue
            out.append(mc.OutboundAttachment(row.filename, row.content_type, data))
        return tuple(out)

    @staticmethod
    def _default_to(parent: sa.Row[Any] | None) -> tuple[str, ...]:
        if parent is None:
            return ()
        reply_to = _header(parent.headers, "Reply-To")
        if reply_to:
            found = tuple(a for _, a in getaddresses([reply_to]) if "@" in a)
            if found:
                return found
        return (parent.sender,) if parent.sender else ()

    # -- acknowledgements -------------------------------------------------------

    def queue_auto_acks(self, limit: int = 100) -> int:
        """Answer unanswered ``auto_ack_requested`` events; returns how many were decided.

        Each request is decided once (acknowledged or skipped, with an event saying
        which), in its own transaction with the request locked: safe to run in
        several processes and to repeat after a crash.
        """
        req, done = events.alias("req"), events.alias("done")
        done_exists = (
            sa.select(done.c.id)
            .where(done.c.kind.in_(ACK_DONE_KINDS), done.c.message_id == req.c.message_id)
            .exists()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(req)
                .where(
                    req.c.kind == "auto_ack_requested",
                    req.c.id > self._ack_floor,
                    ~done_exists,
                )
                .order_by(req.c.id)
                .limit(limit)
            ).all()
            if not rows:
                top = conn.execute(
                    sa.select(sa.func.max(events.c.id)).where(events.c.kind.in_(ACK_DONE_KINDS))
                ).scalar()
        if not rows:
            self._ack_floor = max(self._ack_floor, int(top or 0) - ACK_SCAN_MARGIN)
            return 0
        count = 0
        for row in rows:
            try:
                count += self._ack_one(row)
            except Exception:
                log.exception("auto-acknowledgement failed", extra={"event_id": row.id})
        return count

    def _ack_one(self, request: sa.Row[Any]) -> int:
        evs: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            locked = conn.execute(
                sa.select(events.c.id)
                .where(events.c.id == request.id)
                .with_for_update(skip_locked=True)
            ).first()
            if locked is None:
                return 0
            answered = conn.execute(
                sa.select(events.c.id).where(
                    events.c.kind.in_(ACK_DONE_KINDS), events.c.message_id == request.message_id
                )
            ).first()
            if answered is not None:
                return 0
            evs = self._decide_ack(conn, request)
        self._publish(evs)
        return 1

    def _decide_ack(self, conn: sa.Connection, request: sa.Row[Any]) -> list[dict[str, Any]]:
        now = self.clock()
        data = dict(request.data or {})
        to = str(data.get("to") or "")
        template = str(data.get("template") or "")
        customer = conn.execute(
            sa.select(messages).where(messages.c.id == request.message_id)
        ).first()
        at = as_utc(request.at)
        reason: str | None = None
        ledger = None
        key = to.strip().lower()[:320]
        if customer is None or not to or not template or request.conversation_id is None:
            reason = "incomplete request"
        elif customer.auto_kind is not None:
            reason = f"auto-generated mail ({customer.auto_kind})"
        elif at is not None and now - at > ACK_MAX_AGE:
            reason = "request too old"
        else:
            ledger = conn.execute(
                sa.select(auto_acks).where(auto_acks.c.address == key).with_for_update()
            ).first()
            last = as_utc(ledger.last_sent_at) if ledger is not None else None
            if last is not None and now - last < timedelta(seconds=self.config.auto_ack_window_s):
                reason = f"already acknowledged within {self.config.auto_ack_window_s} s"
        base = {"conversation_id": request.conversation_id, "thread_id": request.thread_id}
        if reason is not None:
            return [
                self._event(
                    conn,
                    "auto_ack_skipped",
                    message_id=request.message_id,
                    data={"request": request.id, "to": to, "reason": reason},
                    **base,
                )
            ]
        assert customer is not None
        token = thread_keys.thread_token(self.config.thread_token_prefix, customer.thread_id)
        name = parseaddr(_header(customer.headers, "From") or "")[0] or to
        text = mc.render_template(
            template, reference=token, name=name, subject=customer.subject or ""
        )
        queued, evs = self._queue(
            conn,
            request.conversation_id,
            text=text,
            html=None,
            attachments=(),
            to=(to,),
            cc=(),
            bcc=(),
            subject=None,
            reply_to_message=customer.id,
            source="auto",
            automatic=True,
            extra={"request": request.id},
            source_ref=f"auto-ack:{request.id}",
        )
        if ledger is None:
            conn.execute(
                auto_acks.insert().values(
                    address=key, last_sent_at=now, message_id=queued.message_pk
                )
            )
        else:
            conn.execute(
                auto_acks.update()
                .where(auto_acks.c.address == key)
                .values(last_sent_at=now, message_id=queued.message_pk)
            )
        evs.append(
            self._event(
                conn,
                "auto_ack_queued",
                message_id=request.message_id,
                data={"request": request.id, "outbound_message": queued.message_pk},
                **base,
            )
        )
        return evs

    # -- delivery ---------------------------------------------------------------

    def claim_due(self, limit: int) -> list[Delivery]:
        """Take up to `limit` due rows for this sender (leased for `lease_s`)."""
        now = self.clock()
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(outbox.c.id, outbox.c.message_id, outbox.c.attempts)
                .where(outbox.c.status == QUEUED, outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return []
            ids = [r.id for r in rows]
            conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids))
                .values(next_attempt_at=now + timedelta(seconds=self.config.lease_s))
            )
            found = {
                m.id: m
                for m in conn.execute(
                    sa.select(
                        messages.c.id,
                        messages.c.envelope_from,
                        messages.c.envelope_to,
                        messages.c.raw_sha256,
                    ).where(messages.c.id.in_([r.message_id for r in rows]))
                )
            }
        out: list[Delivery] = []
        missing: list[tuple[Delivery, DeliveryResult]] = []
        for r in rows:
            m = found[r.message_id]
            try:
                raw = self.blobs.get(m.raw_sha256)
            except BlobNotFoundError:
                raw = b""
            d = Delivery(
                r.id,
                r.message_id,
                m.envelope_from or "",
                tuple(m.envelope_to or ()),
                raw,
                r.attempts,
            )
            if raw:
                out.append(d)
            else:
                missing.append(
                    (d, DeliveryResult(False, True, "the stored message bytes are missing"))
                )
        if missing:
            self.record(missing)
        return out

    def record(self, results: Sequence[tuple[Delivery, DeliveryResult]]) -> None:
        """Store what the relay said for each delivery, in one transaction."""
        if not results:
            return
        now = self.clock()
        evs: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            for d, r in results:
                attempts = d.attempts + 1
                where = (outbox.c.id == d.outbox_id, outbox.c.status == QUEUED)
                common = {"outbox_id": d.outbox_id, "attempts": attempts}
                if r.ok:
                    refused = dict(r.refused)
                    values: dict[str, Any] = {
                        "status": SENT,
                        "sent_at": now,
                        "next_attempt_at": None,
                        "last_error": "; ".join(f"{k}: {v}" for k, v in refused.items()) or None,
                    }
                    kind, data = "message_sent", {**common, "refused": refused}
                elif r.permanent or attempts >= self.config.max_attempts:
                    values = {"status": FAILED, "next_attempt_at": None, "last_error": r.detail}
                    kind = "delivery_failed"
                    data = {**common, "error": r.detail, "permanent": r.permanent}
                else:
                    delay = retry_delay(
                        attempts, self.config.retry_initial_s, self.config.retry_max_s, self.rand
                    )
                    retry_at = now + timedelta(seconds=delay)
                    values = {"next_attempt_at": retry_at, "last_error": r.detail}
                    kind = "delivery_deferred"
                    data = {**common, "error": r.detail, "retry_at": retry_at.isoformat()}
                changed = conn.execute(
                    outbox.update()
                    .where(*where)
                    .values(attempts=attempts, updated_at=now, **values)
                ).rowcount
                if changed:
                    ctx = conn.execute(
                        sa.select(messages.c.conversation_id, messages.c.thread_id).where(
                            messages.c.id == d.message_pk
                        )
                    ).one()
                    evs.append(
                        self._event(
                            conn,
                            kind,
                            conversation_id=ctx.conversation_id,
                            message_id=d.message_pk,
                            thread_id=ctx.thread_id,
                            data=data,
                        )
                    )
        self._publish(evs)

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give back claimed rows that were not tried (the sender is stopping)."""
        if not deliveries:
            return
        with self.engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(
                    outbox.c.id.in_([d.outbox_id for d in deliveries]), outbox.c.status == QUEUED
                )
                .values(next_attempt_at=self.clock())
            )

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(outbox.c.next_attempt_at)).where(outbox.c.status == QUEUED)
            ).scalar()
        return as_utc(value)

    def status_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            counts = {
                str(s): int(n)
                for s, n in conn.execute(
                    sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
                )
            }
        return {s: counts.get(s, 0) for s in (QUEUED, SENT, FAILED, BOUNCED)} | counts

    # -- helpers ----------------------------------------------------------------

    def _event(
        self,
        conn: sa.Connection,
        kind: str,
        *,
        conversation_id: int | None = None,
        message_id: int | None = None,
        thread_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        at = self.clock()
        payload = data or {}
        eid = conn.execute(
            events.insert()
            .values(
                at=at,
                kind=kind,
                conversation_id=conversation_id,
                message_id=message_id,
                thread_id=thread_id,
                data=payload,
            )
            .returning(events.c.id)
        ).scalar_one()
        return {
            "id": eid,
            "at": at.isoformat(),
            "kind": kind,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "thread_id": thread_id,
            "data": payload,
        }

    def _publish(self, evs: Sequence[dict[str, Any]]) -> None:
        if not evs:
            return
        for listener in self.listeners:
            try:
                listener(evs)
            except Exception:
                log.exception("event listener failed")

"""Compose outbound mail: a frozen draft in, RFC 5322 bytes out. Pure.

The job: build the MIME tree with the standard library (text and HTML as
multipart/alternative, inline images in multipart/related with Content-ID,
attachments in multipart/mixed), set the headers that make mail clients thread
our replies (Message-ID on our domain, In-Reply-To, References, Outlook's
Thread-Index and Thread-Topic), mark automatic mail (RFC 3834
``Auto-Submitted: auto-replied``) and enforce the configured limits with
named errors.

What it must not do: any I/O, read a clock or draw random numbers. Everything
that varies (the date, the Message-ID, the GUID and random byte of a
Thread-Index) comes in through the draft, so the same draft always gives the
same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, getaddresses

from postroom.domain.errors import (
    InvalidAddressError,
    NoRecipientError,
    OutboundTooLargeError,
    TooManyAttachmentsError,
    TooManyRecipientsError,
)

# -- the draft ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundAttachment:
    filename: str
    content_type: str  # type/subtype
    data: bytes = field(repr=False)
    content_id: str | None = None  # set (without brackets): an inline image the HTML names


@dataclass(frozen=True, slots=True)
class OutboundDraft:
    from_address: str
    to: tuple[str, ...]
    subject: str
    text: str
    message_id: str  # without angle brackets
    date: datetime  # timezone-aware
    from_name: str = ""
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()  # envelope only: never written into the headers
    html: str | None = None
    attachments: tuple[OutboundAttachment, ...] = ()
    in_reply_to: str | None = None  # Message-ID without brackets
    references: tuple[str, ...] = ()  # oldest first, without brackets
    thread_index: bytes | None = None  # raw bytes; see new_thread_index / child_thread_index
    thread_topic: str | None = None
    automatic: bool = False  # RFC 3834: an auto-reply, not a person's answer


@dataclass(frozen=True, slots=True)
class Limits:
    max_recipients: int = 50
    max_attachments: int = 50
    max_message_size: int = 25 * 1024 * 1024


# -- addresses ------------------------------------------------------------------

_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9._-]+$")


def clean_address(value: str) -> str:
    """One bare address (``user@domain``), or InvalidAddressError."""
    if "\r" in value or "\n" in value:
        raise InvalidAddressError(value)
    parsed = getaddresses([value])
    if len(parsed) != 1 or not _ADDR_SPEC.match(parsed[0][1] or ""):
        raise InvalidAddressError(value)
    local, _, domain = parsed[0][1].rpartition("@")
    return f"{local}@{domain.lower()}"


def header_address(value: str) -> str:
    """`value` for a To/Cc header: its display name kept (RFC 2047-encoded when not
    ASCII, quoted when needed), the address cleaned like `clean_address`."""
    address = clean_address(value)
    name = _one_line(getaddresses([value])[0][0])
    return formataddr((name, address))


def envelope_recipients(draft: OutboundDraft) -> tuple[str, ...]:
    """Every recipient (To, Cc, Bcc) once, in that order, as bare addresses."""
    out: dict[str, None] = {}
    for value in (*draft.to, *draft.cc, *draft.bcc):
        out.setdefault(clean_address(value), None)
    return tuple(out)


def check_limits(draft: OutboundDraft, limits: Limits) -> tuple[str, ...]:
    """Validate recipients and attachments before any bytes are built."""
    recipients = envelope_recipients(draft)
    if not recipients:
        raise NoRecipientError()
    if len(recipients) > limits.max_recipients:
        raise TooManyRecipientsError(len(recipients), limits.max_recipients)
    if len(draft.attachments) > limits.max_attachments:
        raise TooManyAttachmentsError(len(draft.attachments), limits.max_attachments)
    clean_address(draft.from_address)
    return recipients


# -- threading headers ----------------------------------------------------------

_REPLY_PREFIX = re.compile(
    r"^\s*((re|aw|sv|vs|antw|wg|fw|fwd|tr|rv|enc)(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)


def normalized_subject(subject: str) -> str:
    """The subject without reply/forward prefixes (``Re:``, ``AW:``, ``Fwd:``...)."""
    return _REPLY_PREFIX.sub("", subject).strip()


def reply_subject(subject: str, token: str) -> str:
    """``Re: <subject> [#TOKEN]``: one ``Re:``, one token."""
    base = normalized_subject(subject).replace(f"[#{token}]", "").strip()
    base = re.sub(r"\s{2,}", " ", base)
    return f"Re: {base} [#{token}]" if base else f"Re: [#{token}]"


def thread_topic(subject: str, token: str) -> str:
    """Outlook's Thread-Topic: the normalized subject, without our token."""
    return re.sub(r"\s{2,}", " ", normalized_subject(subject).replace(f"[#{token}]", "")).strip()


MAX_REFERENCES = 20


def references_chain(
    parent_message_id: str | None,
    parent_references: Sequence[str] = (),
    parent_in_reply_to: Sequence[str] = (),
    *,
    limit: int = MAX_REFERENCES,
) -> tuple[str, ...]:
    """References for a reply (RFC 5322 section 3.6.4), oldest first.

    The parent's References (or, lacking them, its single In-Reply-To) followed
    by the parent's Message-ID. Long chains keep the first id (the thread root,
    which clients key on) and the newest ones.
    """
    chain: list[str] = list(parent_references)
    if not chain and len(parent_in_reply_to) == 1:
        chain = [parent_in_reply_to[0]]
    if parent_message_id:
        chain.append(parent_message_id)
    seen: dict[str, None] = {}
    for mid in chain:
        mid = mid.strip().strip("<>").strip()
        if mid and not any(c.isspace() for c in mid):
            seen.setdefault(mid, None)
    ids = list(seen)
    if len(ids) > limit:
        ids = [ids[0], *ids[len(ids) - limit + 1 :]]
    return tuple(ids)


# Thread-Index ([MS-OXOMSG] 2.2.1.3, PidTagConversationIndex): a 22-byte header
# (reserved byte 0x01, the 40 high bits of a FILETIME, a 16-byte GUID) followed by
# one 5-byte response level per reply (1 bit delta code, 31 bits time delta,
# 8 bits random).
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
THREAD_INDEX_HEADER = 22
THREAD_INDEX_CHILD = 5


def filetime(at: datetime) -> int:
    """100-nanosecond intervals since 1601-01-01 UTC (Windows FILETIME)."""
    if at.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    delta = at.astimezone(UTC) - _FILETIME_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def new_thread_index(at: datetime, guid: bytes) -> bytes:
    """The 22-byte header block that starts a conversation."""
    if len(guid) != 16:
        raise ValueError("a Thread-Index GUID has 16 bytes")
    return b"\x01" + ((filetime(at) >> 24) & 0xFF_FFFF_FFFF).to_bytes(5, "big") + guid


def child_thread_index(parent: bytes, at: datetime, random_byte: int) -> bytes:
    """`parent` plus one response level for a reply made at `at`."""
    if not is_thread_index(parent):
        raise ValueError("not a Thread-Index")
    header_time = int.from_bytes(parent[1:6], "big") << 24
    delta = max(0, filetime(at) - header_time)
    # Under about 1.7 years the delta code is 0 and the finer resolution is used.
    fine = delta >> 49 == 0
    block = (delta >> 18) & 0x7FFF_FFFF if fine else (1 << 31) | ((delta >> 23) & 0x7FFF_FFFF)
    return parent + block.to_bytes(4, "big") + bytes([random_byte & 0xFF])


def is_thread_index(value: bytes) -> bool:
    return (
        len(value) >= THREAD_INDEX_HEADER
        and (len(value) - THREAD_INDEX_HEADER) % THREAD_INDEX_CHILD == 0
        and value[0] == 0x01
    )


@dataclass(frozen=True, slots=True)
class ThreadIndexInfo:
    started_filetime: int  # header time (low 24 bits are zero)
    guid: bytes
    reply_offsets: tuple[int, ...]  # per response level: FILETIME units after the header time


def parse_thread_index(value: bytes) -> ThreadIndexInfo:
    if not is_thread_index(value):
        raise ValueError("not a Thread-Index")
    started = int.from_bytes(value[1:6], "big") << 24
    offsets = []
    for pos in range(THREAD_INDEX_HEADER, len(value), THREAD_INDEX_CHILD):
        word = int.from_bytes(value[pos : pos + 4], "big")
        shift = 23 if word >> 31 else 18
        offsets.append((word & 0x7FFF_FFFF) << shift)
    return ThreadIndexInfo(started, bytes(value[6:22]), tuple(offsets))


def decode_thread_index(header_value: str | None) -> bytes | None:
    """The bytes of a received Thread-Index header, or None when absent or invalid."""
    if not header_value:
        return None
    try:
        raw = base64.b64decode("".join(header_value.split()), validate=True)
    except ValueError:
        return None
    return raw if is_thread_index(raw) else None


# -- templates ------------------------------------------------------------------


def render_template(template: str, *, reference: str, name: str, subject: str) -> str:
    """Fill ``{reference}``, ``{name}`` and ``{subject}``; other braces stay as written."""
    out = template
    for key, value in (("reference", reference), ("name", name), ("subject", subject)):
        out = out.replace("{" + key + "}", value)
    return out


# -- composing ------------------------------------------------------------------


def _one_line(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _ids(values: Iterable[str]) -> str:
    return " ".join(f"<{v}>" for v in values)


def compose(draft: OutboundDraft, limits: Limits | None = None) -> bytes:
    """The message as CRLF bytes ready for SMTP; raises the named limit errors."""
    limits = limits or Limits()
    check_limits(draft, limits)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((_one_line(draft.from_name), clean_address(draft.from_address)))
    msg["To"] = (
        ", ".join(header_address(a) for a in draft.to) if draft.to else "undisclosed-recipients:;"
    )
    if draft.cc:
        msg["Cc"] = ", ".join(header_address(a) for a in draft.cc)
    msg["Subject"] = _one_line(draft.subject)
    msg["Date"] = format_datetime(draft.date)
    msg["Message-ID"] = f"<{draft.message_id}>"
    if draft.in_reply_to:
        msg["In-Reply-To"] = f"<{draft.in_reply_to}>"
    if draft.references:
        msg["References"] = _ids(draft.references)
    if draft.thread_index is not None:
        msg["Thread-Index"] = base64.b64encode(draft.thread_index).decode("ascii")
    if draft.thread_topic:
        msg["Thread-Topic"] = _one_line(draft.thread_topic)
    if draft.automatic:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"  # asks Exchange not to answer it in turn
    _body(msg, draft)
    raw = _serialize(msg, draft.message_id)
    if len(raw) > limits.max_message_size:
        raise OutboundTooLargeError(len(raw), limits.max_message_size)
    return raw


def _serialize(msg: EmailMessage, message_id: str) -> bytes:
    """Bytes with boundaries derived from the Message-ID (the same draft, the same bytes)."""
    seed = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    parts = [p for p in msg.walk() if p.is_multipart()]
    for part in msg.walk():
        if part is not msg and "MIME-Version" in part:
            del part["MIME-Version"]  # the stdlib repeats it on sub-parts; once is enough
    for attempt in range(100):
        for i, part in enumerate(parts):
            part.set_boundary(f"=_pr_{seed}_{attempt}_{i}")
        raw = msg.as_bytes()
        if raw.count(f"=_pr_{seed}_{attempt}_".encode()) == sum(
            len(p.get_payload()) + 2 for p in parts
        ):
            return raw  # no boundary string occurs inside any content
    raise ValueError("could not choose a MIME boundary absent from the content")


def _split_type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = content_type.strip().lower().partition("/")
    if not maintype or not subtype or "/" in subtype:
        return "application", "octet-stream"
    return maintype, subtype


def _body(msg: EmailMessage, draft: OutboundDraft) -> None:
    text = draft.text if draft.text.endswith("\n") or not draft.text else draft.text + "\n"
    msg.set_content(text, subtype="plain", charset="utf-8")
    inline = [a for a in draft.attachments if a.content_id and draft.html is not None]
    inline_ids = {id(a) for a in inline}
    files = [a for a in draft.attachments if id(a) not in inline_ids]
    if draft.html is not None:
        msg.add_alternative(draft.html, subtype="html", charset="utf-8")
        if inline:
            html_part = list(msg.iter_parts())[1]
            assert isinstance(html_part, EmailMessage)
            for att in inline:
                maintype, subtype = _split_type(att.content_type)
                html_part.add_related(
                    att.data,
                    maintype=maintype,
                    subtype=subtype,
                    cid=f"<{att.content_id}>",
                    filename=att.filename,
                    disposition="inline",
                )
    for att in files:
        maintype, subtype = _split_type(att.content_type)
        if maintype in ("multipart", "message"):
            # Bytes of a nested message travel as an opaque file: the stdlib builds
            # message/* parts only from message objects.
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.filename)

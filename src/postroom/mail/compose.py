"""Compose outbound mail: a frozen draft in, RFC 5322 bytes out. Pure.

The job: build the MIME tree with the standard library (text and HTML as
multipart/alternative, inline images in multipart/related with Content-ID,
attachments in multipart/mixed), set the headers that make mail clients thread
our replies (Message-ID on our domain, In-Reply-To, References, Outlook's
Thread-Index and Thread-Topic), mark automatic mail (RFC 3834
``Auto-Submitted: auto-replied``), add the message being answered below a
reply ("On ..., ... wrote:" and a quote) or below a forward (the "Forwarded
message" header block and its body), and enforce the configured limits with
named errors.

What it must not do: any I/O, read a clock or draw random numbers. Everything
that varies (the date, the Message-ID, the GUID and random byte of a
Thread-Index) comes in through the draft, so the same draft always gives the
same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses

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
    return display_address(name, address)


def display_address(name: str, address: str) -> str:
    """``"Name" <address>`` as people read it, quoted where RFC 5322 needs it, or
    the bare address without a name. Assigned to a header, the SMTP policy encodes
    a name that is not ASCII as one RFC 2047 word (``formataddr`` encodes only part
    of it and leaves the rest unquoted: ``=?utf-8?q?S=C3=BC?= Team, Bcc: x@y``
    would read as more addresses)."""
    name = _one_line(name)
    if not name:
        return address
    return str(Address(display_name=name, addr_spec=clean_address(address)))


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


# -- the message answered: quoted below a reply, included in a forward ----------


@dataclass(frozen=True, slots=True)
class Original:
    """A stored message a reply quotes or a forward includes (its header values as
    received, its text, and its HTML already sanitized)."""

    sender: str  # the From header, e.g. 'Olga Reader <olga@reader.example>'
    date: datetime | None
    subject: str = ""
    to: str = ""
    cc: str = ""
    text: str = ""
    html: str | None = None


def _text_html(text: str) -> str:
    """Plain text as HTML blocks, one per line (empty lines kept)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    return "".join(
        f"<div>{html_lib.escape(line)}</div>" if line else "<div><br></div>" for line in lines
    )


def _original_html(original: Original) -> str:
    return original.html if original.html is not None else _text_html(original.text)


def quote_intro(original: Original) -> str:
    """``On Wed, 2 Dec 2026 at 07:44 UTC, Olga <olga@x.example> wrote:``"""
    who = _one_line(original.sender) or "the sender"
    if original.date is None:
        return f"{who} wrote:"
    d = original.date.astimezone(UTC)
    when = f"{d:%a}, {d.day} {d:%b} {d.year} at {d:%H:%M} UTC"
    return f"On {when}, {who} wrote:"


def quote_block(original: Original) -> tuple[str, str]:
    """The quote a reply carries below its text: (text, HTML).

    Text: the intro line and the original's lines prefixed with ``> `` (``>`` on
    empty lines, RFC 3676 style). HTML: the intro and the original's HTML in a
    ``<blockquote type="cite">``, as mail clients write it.
    """
    intro = quote_intro(original)
    lines = original.text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    quoted = "\n".join(f"> {line}" if line else ">" for line in lines)
    text = f"{intro}\n{quoted}\n"
    html = (
        f'<div class="pr-quote-intro">{html_lib.escape(intro)}</div>'
        f'<blockquote type="cite">{_original_html(original)}</blockquote>'
    )
    return text, html


FORWARD_MARK = "---------- Forwarded message ---------"


def forward_block(original: Original) -> tuple[str, str]:
    """What a forward carries below its text: (text, HTML) with the original's
    From, Date, Subject, To (and Cc) and then its body."""
    fields = [("From", original.sender)]
    if original.date is not None:
        fields.append(("Date", format_datetime(original.date.astimezone(UTC))))
    fields += [("Subject", original.subject), ("To", original.to)]
    if original.cc:
        fields.append(("Cc", original.cc))
    head = [(name, _one_line(value)) for name, value in fields]
    text = (
        FORWARD_MARK
        + "\n"
        + "".join(f"{name}: {value}\n" for name, value in head)
        + "\n"
        + original.text.rstrip("\n")
        + "\n"
    )
    html = (
        f'<div class="pr-forward">{html_lib.escape(FORWARD_MARK)}<br>'
        + "<br>".join(f"{name}: {html_lib.escape(value)}" for name, value in head)
        + f"</div><div><br></div><div>{_original_html(original)}</div>"
    )
    return text, html


def append_block(text: str, html: str | None, block: tuple[str, str]) -> tuple[str, str | None]:
    """The agent's text and HTML with `block` (quote_block / forward_block) below
    them, an empty line between. Without HTML only the text gets it."""
    block_text, block_html = block
    body = text.rstrip("\n")
    new_text = f"{body}\n\n{block_text}" if body else block_text
    if html is None:
        return new_text, None
    return new_text, (html + "<div><br></div>" if html.strip() else "") + block_html


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
    msg["From"] = display_address(draft.from_name, draft.from_address)
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

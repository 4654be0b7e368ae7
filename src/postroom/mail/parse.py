"""MIME parsing: raw RFC 5322 bytes -> ParsedMessage.

The job: split the message into MIME parts (RFC 2045/2046), decode headers (RFC 2047
encoded words, RFC 2231 parameters), transfer encodings and charsets with a
tolerant fallback, choose the readable text/HTML body, sanitize the HTML, collect
every other part as an attachment (unpacking TNEF, parsing attached messages) and
extract the reply text. Bad input never raises: whatever cannot be read cleanly is
decoded best effort and described in ``defects``.

What it must not do: any I/O (files, network, database), read a clock, or depend on
global mutable state. It must stay fast: ``email``'s ``policy.default`` header
machinery and its line-by-line feed parser dominate the stdlib's parse time, so the
part tree is split here with ``bytes.find`` over the boundaries, and only the
headers in use are handed to the stdlib helpers (``decode_header``,
``getaddresses``, ``parsedate_to_datetime``, ``Message.get_param``/``get_filename``
for parameters).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from postroom.mail import charsets
from postroom.mail.attachments import safe_filename, sniff_type, type_for_filename
from postroom.mail.htmlscan import MAX_RENDER_TAGS, html_as_text, measure, meta_charset
from postroom.mail.model import Address, Attachment, ParsedMessage
from postroom.mail.quotes import has_html_quotes, html_to_text, strip_html_quotes, strip_quotes
from postroom.mail.sanitize import find_cids, sanitize_html

CidUrl = Callable[[str], str]

# Limits against hostile nesting (zip-bomb-like MIME trees). Beyond them the rest is
# kept as an opaque attachment and a defect is recorded.
MAX_DEPTH = 30  # multipart levels plus attached-message levels, counted together
MAX_PARTS = 1000

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# RFC 5322 section 2.2: field name = printable US-ASCII except ':'.
_FIELD = re.compile(r"([\x21-\x39\x3b-\x7e]+)[ \t]*:[ \t]*(.*)", re.S)
_MSGID = re.compile(r"<([^<>]*)>")
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_BASE64_ALPHABET_WS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n\t "
_QP_BAD = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r?\n|[ \t]*(?:\r?\n|$))")
_ENCODED_WORD = "=?"
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
@dataclass(slots=True)
class _Part:
    headers: list[tuple[str, str]]  # name as written, unfolded raw value (not RFC 2047 decoded)
    body: bytes
    default_type: str = "text/plain"
    _meta: Message | None = None

    def get(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def meta(self) -> Message:
        # A compat32 Message holding only the parameter-bearing headers: its
        # get_param/get_filename implement RFC 2045 parameters with RFC 2231
        # continuations and charsets, and parsing them is lazy and cheap.
        if self._meta is None:
            meta = Message()
            meta.set_default_type(self.default_type)
            for key, value in self.headers:
                if key.lower() in ("content-type", "content-disposition"):
                    meta[key] = value
            self._meta = meta
        return self._meta

    @property
    def content_type(self) -> str:
        if self.get("content-type") is None:
            return self.default_type
        ctype = self.meta.get_content_type()
        # get_content_type falls back to text/plain on a malformed value (RFC 2045 5.2).
        return ctype

    def param(self, name: str, header: str = "content-type") -> str | None:
        try:
            value = self.meta.get_param(name, header=header)
        except Exception:  # malformed parameter syntax
            return None
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, tuple):
            charset, _lang, text = value
            return _decode_2231(text, charset)
        return None

    def filename(self) -> str | None:
        raw = self.param("filename", "content-disposition") or self.param("name")
        if raw is None:
            return None
        # Outlook and others put RFC 2047 words in parameters (forbidden by RFC 2047
        # section 5, common anyway).
        return decode_words(raw) if _ENCODED_WORD in raw else raw

    def disposition(self) -> str | None:
        value = self.get("content-disposition")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower() or None


@dataclass(slots=True)
class _State:
    cid_url: CidUrl | None
    depth: int
    defects: list[str] = field(default_factory=list)
    parts_seen: int = 0
    text: str | None = None
    html_raw: str | None = None
    pending: list[tuple[_Part, bytes, str]] = field(default_factory=list)


# ---------------------------------------------------------------------------
# charsets and headers


def decode_bytes(data: bytes, charset: str | None, defects: list[str] | None = None) -> str:
    """Text from bytes: the declared charset, then the fallbacks of ``mail.charsets``.

    Never raises. A charset Python does not know, or bytes that do not decode with
    the declared one, add a defect (when ``defects`` is given).
    """
    return charsets.decode(data, charset, defects)


def _decode_2231(text: str, charset: str | None) -> str:
    # email.utils.decode_rfc2231 leaves the percent-decoded octets as latin-1 text.
    raw = text.encode("latin-1", "surrogateescape")
    return decode_bytes(raw, charset or "us-ascii")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in a header value; tolerant of bad charsets."""
    if _ENCODED_WORD not in value:
        return value
    try:
        chunks = decode_header(value)
    except Exception:  # malformed encoded words: show them as written
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            # decode_header returns unencoded runs as raw-unicode-escape bytes.
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            out.append(decode_bytes(chunk, charset))
    return "".join(out)


def _decode_header_bytes(data: bytes) -> str:
    # Raw 8-bit headers: UTF-8 per RFC 6532, else the legacy single-byte guess.
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return decode_bytes(data, "utf-8")


def _split_head(raw: bytes, defects: list[str]) -> tuple[list[tuple[str, str]], bytes]:
    """Header fields (unfolded, RFC 5322 2.2.3) and the body bytes."""
    if raw.startswith((b"\n", b"\r\n")):
        return [], raw[1:] if raw[:1] == b"\n" else raw[2:]
    match = _HEADER_END.search(raw)
    if match is None:
        # Header block runs to the end of the data, or a single trailing newline.
        head, sep, body = raw.rstrip(b"\r\n"), b"", b""
    else:
        head, sep, body = raw[: match.start()], match.group(0), raw[match.end() :]
    lines = _decode_header_bytes(head).split("\n")
    fields: list[tuple[str, str]] = []
    name: str | None = None
    value_parts: list[str] = []
    for index, line in enumerate(lines):
        line = line.removesuffix("\r")
        if line[:1] in (" ", "\t"):
            if name is not None:
                value_parts.append(line)
            continue
        if index == 0 and line.startswith("From "):
            continue  # mbox "From " separator line, not a header
        found = _FIELD.fullmatch(line)
        if found is None:
            # Not a header: the header block ended without the empty line. Decoding
            # maps b"\n" to "\n" only, so line k starts at the same byte offset.
            defects.append("missing empty line between header and body")
            offset = sum(len(text_line) + 1 for text_line in head.split(b"\n")[:index])
            body = head[offset:] + sep + body
            break
        if name is not None:
            fields.append((name, _unescape_iso2022("".join(value_parts).strip())))
        name = found.group(1)
        value_parts = [found.group(2)]
    if name is not None:
        fields.append((name, _unescape_iso2022("".join(value_parts).strip())))
    return fields, body


def _unescape_iso2022(value: str) -> str:
    # Old Japanese and Korean mailers write raw 7-bit ISO-2022 in header fields
    # instead of RFC 2047 encoded words.
    if "\x1b" not in value or not value.isascii():
        return value
    return charsets.decode(value.encode("ascii"), None)


def _addresses(values: list[str]) -> tuple[Address, ...]:
    if not values:
        return ()
    result: list[Address] = []
    for name, address in getaddresses(values):
        address = address.strip()
        if not address and not name:
            continue
        local, at, domain = address.rpartition("@")
        if at:
            # RFC 5321 2.4: domains are case-insensitive, local parts are not.
            address = f"{local}@{domain.lower()}"
        elif not name:
            # A bare word ("To: Recipient-List") is a display name, not an addr-spec.
            name, address = address, ""
        result.append(Address(name=" ".join(decode_words(name).split()), address=address))
    return tuple(result)


def _ids(value: str | None) -> tuple[str, ...]:
    """Message ids without angle brackets (RFC 5322 3.6.4); bare ids tolerated."""
    if not value:
        return ()
    found = [i.strip() for i in _MSGID.findall(value)]
    found = ["".join(i.split()) for i in found if i.strip()]
    if found:
        return tuple(found)
    return tuple(token.strip("<>") for token in value.replace(",", " ").split() if "@" in token)


# ---------------------------------------------------------------------------
# bodies


def _transfer_decode(part: _Part, defects: list[str]) -> bytes:
    cte = (part.get("content-transfer-encoding") or "7bit").strip().lower()
    body = part.body
    if cte in ("7bit", "8bit", "binary", ""):
        return body
    if cte == "base64":
        try:
            # RFC 2045 6.8: characters outside the alphabet are to be ignored.
            decoded = binascii.a2b_base64(body)
        except (binascii.Error, ValueError):
            cleaned = _BASE64_JUNK.sub(b"", body.split(b"=", 1)[0])
            cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else None]
            cleaned += b"=" * (-len(cleaned) % 4)
            try:
                decoded = binascii.a2b_base64(cleaned)
            except (binascii.Error, ValueError):
                decoded = b""
            defects.append("invalid base64 (padding or length); decoded best effort")
            return decoded
        if body.translate(None, _BASE64_ALPHABET_WS):
            defects.append("invalid characters in base64 body ignored")
        return decoded
    if cte == "quoted-printable":
        if _QP_BAD.search(body):
            defects.append("invalid quoted-printable escape kept as written")
        return binascii.a2b_qp(body)
    if cte in ("x-uuencode", "uuencode", "x-uue"):
        return _uudecode(body, defects)
    defects.append(f"unknown Content-Transfer-Encoding {cte!r}; body kept as is")
    return body


def _uudecode(body: bytes, defects: list[str]) -> bytes:
    out: list[bytes] = []
    started = False
    for line in body.splitlines():
        if not started:
            started = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`"):
            break
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            defects.append("invalid uuencoded line skipped")
    return b"".join(out)


# How much of an HTML part is searched for a <meta> charset when the MIME header
# names none (style blocks often come first).
_META_PRESCAN = 8192


def _text_of(part: _Part, state: _State) -> str:
    data = _transfer_decode(part, state.defects)
    charset = part.param("charset")
    if not charset and part.content_type == "text/html":
        charset = meta_charset(data[:_META_PRESCAN].decode("latin-1"))
    text = decode_bytes(data, charset, state.defects)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def _split_multipart(body: bytes, boundary: str, defects: list[str]) -> list[bytes]:
    """Body parts between RFC 2046 5.1.1 delimiters.

    The delimiter is CRLF "--" boundary; the CRLF before it belongs to the
    delimiter, not to the preceding part. Trailing whitespace after the boundary
    is allowed (transport padding). bytes.find keeps this linear and fast.
    """
    needle = b"--" + boundary.encode("utf-8", "replace")
    parts: list[bytes] = []
    start: int | None = None  # where the current part's content starts
    pos = 0
    closed = False
    size = len(body)
    while True:
        i = body.find(needle, pos)
        if i < 0:
            break
        pos = i + 1
        if i > 0 and body[i - 1] != 0x0A:
            continue
        j = i + len(needle)
        eol = body.find(b"\n", j)
        line_end = size if eol < 0 else eol + 1
        rest = body[j:line_end]
        is_close = rest.startswith(b"--")
        if not is_close and rest.strip(b" \t\r\n"):
            continue  # a longer boundary that merely starts with ours
        delimiter_start = i
        if i > 0:
            delimiter_start = i - 2 if i >= 2 and body[i - 2] == 0x0D else i - 1
        if start is not None:
            parts.append(body[start:delimiter_start])
        if is_close:
            closed = True
            break
        start = line_end
        pos = line_end
    if start is None:
        defects.append(f"multipart boundary {boundary!r} not found")
        return []
    if not closed:
        defects.append(f"multipart boundary {boundary!r} is never closed")
        parts.append(body[start:])
    return parts


def _walk(part: _Part, state: _State, in_alternative: bool = False, level: int = 0) -> None:
    state.parts_seen += 1
    if state.parts_seen > MAX_PARTS:
        if state.parts_seen == MAX_PARTS + 1:
            state.defects.append(f"more than {MAX_PARTS} MIME parts; the rest ignored")
        return
    ctype = part.content_type
    maintype = ctype.split("/", 1)[0]
    if maintype == "multipart" and state.depth + level >= MAX_DEPTH:
        state.defects.append("MIME parts nested too deep; the rest kept as one attachment")
        state.pending.append((part, part.body, "application/octet-stream"))
        return
    if maintype == "multipart":
        boundary = part.param("boundary")
        if not boundary:
            state.defects.append(f"{ctype} without boundary; treated as text")
            _leaf(_Part(part.headers, part.body, "text/plain"), state, in_alternative, "text/plain")
            return
        bodies = _split_multipart(part.body, boundary, state.defects)
        if not bodies:
            _leaf(_Part([], part.body, "text/plain"), state, in_alternative, "text/plain")
            return
        default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        if ctype == "multipart/related":
            # RFC 2387: the root is the "start" part, else the first one.
            bodies = _related_root_first(bodies, part.param("start"), state, default)
        for child_raw in bodies:
            headers, child_body = _split_head(child_raw, state.defects)
            child = _Part(headers, child_body, default)
            _walk(child, state, in_alternative or ctype == "multipart/alternative", level + 1)
        return
    _leaf(part, state, in_alternative, ctype)


def _related_root_first(
    bodies: list[bytes], start: str | None, state: _State, default: str
) -> list[bytes]:
    if not start:
        return bodies
    wanted = start.strip().strip("<>")
    for index, raw in enumerate(bodies):
        headers, _ = _split_head(raw, [])
        cid = _Part(headers, b"", default).get("content-id")
        if cid and cid.strip().strip("<>") == wanted:
            return [raw, *bodies[:index], *bodies[index + 1 :]]
    return bodies


def _leaf(part: _Part, state: _State, in_alternative: bool, ctype: str) -> None:
    disposition = part.disposition()
    if ctype in ("text/plain", "text/html") and disposition != "attachment":
        filename = part.filename()
        if not filename or in_alternative:
            if ctype == "text/plain" and state.text is None:
                state.text = _text_of(part, state)
                return
            if ctype == "text/html" and state.html_raw is None:
                state.html_raw = _text_of(part, state)
                return
            if in_alternative:
                return  # another rendering of the same content, not an attachment
    elif in_alternative and maintype_of(ctype) == "text" and disposition != "attachment":
        return  # text/enriched and the like: alternative renderings, not attachments
    data = _transfer_decode(part, state.defects)
    state.pending.append((part, data, ctype))


def maintype_of(ctype: str) -> str:
    return ctype.split("/", 1)[0]


# ---------------------------------------------------------------------------
# attachments


def _attachments(state: _State, cids: set[str]) -> list[Attachment]:
    result: list[Attachment] = []
    for part, data, ctype in state.pending:
        content_id = _content_id(part)
        inline = part.disposition() == "inline" or (content_id is not None and content_id in cids)
        filename = part.filename()
        nested: ParsedMessage | None = None
        if ctype in _MESSAGE_TYPES:
            if state.depth >= MAX_DEPTH:
                state.defects.append("attached messages nested too deep; kept unparsed")
            else:
                nested = _parse(data, state.cid_url, state.depth + 1)
                # Surface the attached message's problems at the top as well.
                prefix = "in attached message: "
                state.defects.extend(
                    d if d.startswith(prefix) else prefix + d for d in nested.defects
                )
                if not filename and nested.subject:
                    filename = nested.subject + ".eml"
        elif ctype in _TNEF_TYPES or (filename or "").lower() == "winmail.dat":
            unpacked = _unpack_tnef(data, state.defects, len(result))
            if unpacked is not None:
                result.extend(unpacked)
                continue
        result.append(
            _make_attachment(data, ctype, filename, content_id, inline, len(result) + 1, nested)
        )
    return result


def _content_id(part: _Part) -> str | None:
    value = part.get("content-id")
    if not value:
        return None
    value = value.strip()
    found = _MSGID.search(value)
    cid = (found.group(1) if found else value).strip()
    return cid or None


def _make_attachment(
    data: bytes,
    ctype: str,
    filename: str | None,
    content_id: str | None,
    inline: bool,
    index: int,
    nested: ParsedMessage | None = None,
) -> Attachment:
    return Attachment(
        filename=safe_filename(filename, ctype, index),
        content_type=ctype,
        sniffed_type=sniff_type(data),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_id=content_id,
        inline=inline,
        data=data,
        nested=nested,
    )


def _unpack_tnef(data: bytes, defects: list[str], offset: int) -> list[Attachment] | None:
    """Files inside an Outlook TNEF (winmail.dat) part, or None when it cannot be read."""
    try:
        from tnefparse.tnef import TNEF  # imported lazily: rarely needed, slow import

        tnef = TNEF(data, do_checksum=False)
        unpacked: list[Attachment] = []
        for item in tnef.attachments:
            try:
                name = item.long_filename()
            except Exception:
                name = None
            payload = bytes(item.data or b"")
            name_str = name if isinstance(name, str) else None
            ctype = type_for_filename(name_str or "")
            unpacked.append(
                _make_attachment(payload, ctype, name_str, None, False, offset + len(unpacked) + 1)
            )
    except Exception as exc:
        defects.append(f"winmail.dat (TNEF) could not be unpacked: {type(exc).__name__}")
        return None
    if not unpacked:
        defects.append("winmail.dat (TNEF) holds no attachments; kept as is")
        return None
    return unpacked


# ---------------------------------------------------------------------------
# entry points


def _first(fields: list[tuple[str, str]], name: str) -> str | None:
    for key, value in fields:
        if key.lower() == name:
            return value
    return None


def _all(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in fields if key.lower() == name]


def _parse(raw: bytes, cid_url: CidUrl | None, depth: int) -> ParsedMessage:
    state = _State(cid_url=cid_url, depth=depth)
    defects = state.defects
    fields, body = _split_head(raw, defects)
    if not fields:
        defects.append("message has no header fields")
    root = _Part(fields, body)
    _walk(root, state)

    html_raw = state.html_raw
    html: str | None = None
    cids: set[str] = set()
    shape = measure(html_raw) if html_raw is not None else None
    too_big = shape.problem() if shape is not None else None
    if html_raw is not None and too_big is None:
        cids = find_cids(html_raw)
        html = sanitize_html(html_raw, cid_url=cid_url, shape=shape)
    elif too_big is not None:
        # Bounded work: such HTML is neither sanitized nor shown; the text part is
        # shown instead, or a plain-text rendering of the HTML made in one pass.
        shown = "the text part is shown" if state.text is not None else "shown as plain text"
        defects.append(f"{too_big}; {shown}")
    if state.text is not None:
        text = state.text
        reply_text = strip_quotes(text)
    elif html_raw is not None and too_big is not None:
        text, cut = html_as_text(html_raw)
        if cut:
            defects.append(f"plain-text rendering stopped after {MAX_RENDER_TAGS:,} tags")
        reply_text = strip_quotes(text)
    elif html_raw is not None:
        text = html_to_text(html_raw, shape=shape)
        reply_text = (
            strip_html_quotes(html_raw, shape=shape)
            if has_html_quotes(html_raw)
            else strip_quotes(text)
        )
    else:
        text = ""
        reply_text = ""
    attachments = _attachments(state, cids)

    date: datetime | None = None
    date_value = _first(fields, "date")
    if date_value:
        try:
            date = parsedate_to_datetime(date_value)
        except Exception:  # ValueError/TypeError/OverflowError on garbage
            defects.append(f"unparsable Date header {date_value[:80]!r}")
    from_list = _addresses(_all(fields, "from"))
    message_ids = _ids(_first(fields, "message-id"))
    auto = _first(fields, "auto-submitted")
    return ParsedMessage(
        subject=" ".join(decode_words(_first(fields, "subject") or "").split()),
        from_=from_list[0] if from_list else None,
        to=_addresses(_all(fields, "to")),
        cc=_addresses(_all(fields, "cc")),
        reply_to=_addresses(_all(fields, "reply-to")),
        date=date,
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_ids(_first(fields, "in-reply-to")),
        references=_ids(" ".join(_all(fields, "references"))),
        auto_submitted=auto.strip().lower() if auto else None,
        text=text,
        html=html,
        reply_text=reply_text,
        attachments=tuple(attachments),
        defects=tuple(defects),
        headers=tuple((key, decode_words(value)) for key, value in fields),
    )


def parse_message(raw: bytes, *, cid_url: CidUrl | None = None) -> ParsedMessage:
    """Parse raw message bytes. Never raises; problems are listed in ``defects``.

    ``cid_url`` maps a Content-ID (without brackets) to the URL inline images are
    served from; it is applied to ``cid:`` references in the sanitized HTML.
    """
    try:
        return _parse(bytes(raw), cid_url, 0)
    except Exception as exc:  # last resort: a message must never crash intake
        return _empty(f"parser failure: {type(exc).__name__}: {exc}"[:300])


def _empty(defect: str) -> ParsedMessage:
    return ParsedMessage(
        subject="",
        from_=None,
        to=(),
        cc=(),
        reply_to=(),
        date=None,
        message_id=None,
        in_reply_to=(),
        references=(),
        auto_submitted=None,
        text="",
        html=None,
        reply_text="",
        attachments=(),
        defects=(defect,),
        headers=(),
    )

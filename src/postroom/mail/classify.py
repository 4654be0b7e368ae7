"""Classify one parsed message: auto-generated? a bounce? Pure.

Only looks at the message and its envelope; duplicate detection and the loop
guard need history and live in the intake pipeline. No I/O.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from postroom.mail.model import ParsedMessage

_BULK_PRECEDENCE = {"bulk", "junk", "list"}


def auto_kind(msg: ParsedMessage, envelope_from: str | None) -> str | None:
    """Why the message counts as machine-generated, or None for a person's mail.

    A flagged message is still routed, but never auto-acknowledged: answering
    machines must not answer each other (RFC 3834 section 2).
    """
    if is_bounce(msg):
        return "bounce"
    auto = (msg.auto_submitted or "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"auto-submitted:{auto.split(';')[0].strip()}"
    if msg.header("X-Autoreply") is not None or msg.header("X-Autorespond") is not None:
        return "autoreply"
    precedence = (msg.header("Precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"precedence:{precedence}"
    if msg.header("List-Id") is not None:
        return "list"
    # RFC 5321 section 4.5.5: a null reverse-path marks notifications.
    if envelope_from is not None and envelope_from.strip() in ("", "<>"):
        return "null-sender"
    return_path = msg.header("Return-Path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "null-sender"
    return None


def is_bounce(msg: ParsedMessage) -> bool:
    """A delivery status notification (RFC 3464 inside RFC 6522 multipart/report)."""
    ctype = (msg.header("Content-Type") or "").lower().replace(" ", "")
    return ctype.startswith("multipart/report") and "report-type=delivery-status" in ctype.replace(
        '"', ""
    )


def bounced_message_ids(msg: ParsedMessage) -> tuple[str, ...]:
    """Message-IDs of the original message(s) a bounce reports on.

    RFC 6522 puts the returned message (or only its headers) in the third part
    as message/rfc822 or text/rfc822-headers.
    """
    found: list[str] = []
    for att in msg.attachments:
        ctype = att.content_type.lower()
        mid: str | None = None
        if att.nested is not None:
            mid = att.nested.message_id
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            headers = BytesHeaderParser(policy=compat32).parsebytes(att.data)
            value = headers.get("Message-ID")
            if value:
                mid = str(value).strip().strip("<>").strip()
        if mid and mid not in found:
            found.append(mid)
    return tuple(found)

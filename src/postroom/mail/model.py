"""The normalized message: what the parser hands to the rest of Postroom.

Frozen dataclasses only; no parsing logic here and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str  # lower-cased domain part, local part as written

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "address": self.address}


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str  # safe: no path parts, no control characters, never empty
    content_type: str  # as declared (lower-case type/subtype)
    sniffed_type: str | None  # from the bytes, when recognizable
    size: int
    sha256: str
    content_id: str | None  # without angle brackets
    inline: bool
    data: bytes = field(repr=False, compare=False)
    nested: ParsedMessage | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "sniffed_type": self.sniffed_type,
            "size": self.size,
            "sha256": self.sha256,
            "content_id": self.content_id,
            "inline": self.inline,
        }


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    subject: str
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    date: datetime | None  # timezone-aware when the header carried a zone
    message_id: str | None  # without angle brackets
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    auto_submitted: str | None  # raw RFC 3834 value, lower-cased
    text: str  # readable text body (from HTML when there is no text part)
    html: str | None  # sanitized HTML, cid: images rewritten
    reply_text: str  # text without quoted history, for previews and search
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = field(repr=False, compare=False)  # decoded, in order

    def header(self, name: str) -> str | None:
        """First decoded value of header `name` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "from": self.from_.to_json() if self.from_ else None,
            "to": [a.to_json() for a in self.to],
            "cc": [a.to_json() for a in self.cc],
            "reply_to": [a.to_json() for a in self.reply_to],
            "date": self.date.isoformat() if self.date else None,
            "message_id": self.message_id,
            "in_reply_to": list(self.in_reply_to),
            "references": list(self.references),
            "auto_submitted": self.auto_submitted,
            "text": self.text,
            "html": self.html,
            "reply_text": self.reply_text,
            "attachments": [a.to_json() for a in self.attachments],
            "defects": list(self.defects),
        }

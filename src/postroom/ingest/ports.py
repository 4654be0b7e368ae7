"""Ports the transports (SMTP, IMAP, import) use to hand mail to the spool.

Protocols only: the spool implements `IntakeSink`, the store implements
`MailboxCursorStore`. Transports depend on these, never on the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the spool answers once a message is durable."""

    message_pk: int  # the stored message's primary key
    created: bool  # False when `source_ref` was already stored (nothing new written)


class IntakeSink(Protocol):
    async def accept(
        self,
        raw: bytes,
        *,
        source: str,  # "smtp", "imap", "import"
        source_ref: str
        | None = None,  # unique per origin, e.g. "imap:<mailbox>:<uidvalidity>:<uid>"
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
    ) -> Accepted:
        """Make `raw` durable (blob fsynced + database row committed), then return.

        Idempotent on `source_ref`: a second call with the same ref writes nothing
        and returns the first message's key with `created=False`.
        """
        ...


class MailboxCursorStore(Protocol):
    """Remembers, per IMAP mailbox, the UIDVALIDITY and highest UID taken."""

    def load(self, mailbox_key: str) -> tuple[int | None, int]:
        """Return (uidvalidity or None when never seen, last imported uid or 0)."""
        ...

    def save(self, mailbox_key: str, uidvalidity: int, last_uid: int) -> None: ...

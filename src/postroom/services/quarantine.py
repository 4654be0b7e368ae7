"""Quarantine use cases: list, show, retry (release) and discard held messages.

Each function owns its transaction. Retrying marks the message pending again,
released from the loop guard, and leaves running the pipeline to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError
from postroom.services.intake import RELEASED
from postroom.store.blobs import BlobStore
from postroom.store.db import as_utc
from postroom.store.schema import events, messages


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    message_pk: int
    received_at: datetime
    source: str
    sender: str | None
    subject: str | None
    stage: str | None
    error: str | None
    raw_sha256: str
    raw_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.message_pk,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "sender": self.sender,
            "subject": self.subject,
            "stage": self.stage,
            "error": self.error,
            "raw_sha256": self.raw_sha256,
            "raw_size": self.raw_size,
        }


def _entry(row: sa.Row[Any]) -> QuarantineEntry:
    received = as_utc(row.received_at)
    assert received is not None
    return QuarantineEntry(
        row.id,
        received,
        row.source,
        row.sender,
        row.subject,
        row.stage,
        row.error,
        row.raw_sha256,
        row.raw_size,
    )


def list_entries(engine: sa.Engine) -> list[QuarantineEntry]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages).where(messages.c.status == "quarantined").order_by(messages.c.id)
        ).all()
    return [_entry(r) for r in rows]


def get_entry(engine: sa.Engine, pk: int) -> QuarantineEntry:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(messages).where(messages.c.id == pk, messages.c.status == "quarantined")
        ).first()
    if row is None:
        raise NotFoundError(f"message {pk} is not in quarantine; see `postroom quarantine list`")
    return _entry(row)


def _change(
    engine: sa.Engine, pk: int, clock: Callable[[], datetime], kind: str, **values: Any
) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            messages.update()
            .where(messages.c.id == pk, messages.c.status == "quarantined")
            .values(**values)
        ).rowcount
        if not done:
            raise NotFoundError(
                f"message {pk} is not in quarantine; see `postroom quarantine list`"
            )
        conn.execute(
            events.insert().values(at=clock(), kind=kind, message_id=pk, data={"by": "operator"})
        )


def release(engine: sa.Engine, pk: int, clock: Callable[[], datetime]) -> None:
    """Send a quarantined message through the pipeline again (skipping the loop guard)."""
    _change(engine, pk, clock, "message_released", status="pending", stage=RELEASED, error=None)


def discard(engine: sa.Engine, pk: int, clock: Callable[[], datetime], reason: str) -> None:
    _change(
        engine,
        pk,
        clock,
        "message_discarded",
        status="discarded",
        stage="operator",
        error=reason or "discarded by an operator",
    )


def raw_message(engine: sa.Engine, blobs: BlobStore, pk: int) -> bytes:
    """The quarantined message's bytes, wherever they are kept."""
    entry = get_entry(engine, pk)
    if blobs.exists(entry.raw_sha256):
        return blobs.get(entry.raw_sha256)
    with engine.connect() as conn:
        raw = conn.execute(sa.select(messages.c.raw).where(messages.c.id == pk)).scalar()
    if raw is None:
        raise NotFoundError(f"the raw bytes of message {pk} are missing; discard it")
    return bytes(raw)

"""Quarantine use cases: list, show, retry (release), hold and discard messages.

Each function owns its transaction. Retrying marks the message pending again,
released from the loop guard with a fresh attempts count, and leaves running
the pipeline to the caller. Operators may also hold (quarantine) or discard a
message that is still pending, e.g. one the pipeline keeps failing on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError
from postroom.services.intake import RELEASED, RawMissing
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
    status: str = "quarantined"  # or "pending" (not yet through the pipeline)
    attempts: int = 0  # times the pipeline started on it (see intake.md)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.message_pk,
            "status": self.status,
            "attempts": self.attempts,
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
        row.status,
        int(row.attempts),
    )


def list_entries(engine: sa.Engine, *, pending: bool = False) -> list[QuarantineEntry]:
    """Messages in quarantine, or (`pending`) those still waiting for the pipeline."""
    status = "pending" if pending else "quarantined"
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages)
            .where(messages.c.status == status, messages.c.direction == "in")
            .order_by(messages.c.id)
        ).all()
    return [_entry(r) for r in rows]


def _not_found(pk: int, wanted: tuple[str, ...]) -> NotFoundError:
    where = " or ".join("in quarantine" if w == "quarantined" else w for w in wanted)
    lists = "`postroom quarantine list`" + (
        " or `postroom quarantine list --pending`" if "pending" in wanted else ""
    )
    return NotFoundError(f"message {pk} is not {where}; see {lists}")


def get_entry(engine: sa.Engine, pk: int) -> QuarantineEntry:
    """A quarantined or pending inbound message."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(messages).where(
                messages.c.id == pk,
                messages.c.direction == "in",
                messages.c.status.in_(("quarantined", "pending")),
            )
        ).first()
    if row is None:
        raise _not_found(pk, ("quarantined", "pending"))
    return _entry(row)


def _change(
    engine: sa.Engine,
    pk: int,
    clock: Callable[[], datetime],
    kind: str,
    wanted: tuple[str, ...],
    data: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    # On PostgreSQL the UPDATE waits for a pipeline holding the row and then
    # re-checks the status: a message is never both processed and discarded.
    with engine.begin() as conn:
        done = conn.execute(
            messages.update()
            .where(
                messages.c.id == pk,
                messages.c.direction == "in",
                messages.c.status.in_(wanted),
            )
            .values(**values)
        ).rowcount
        if not done:
            raise _not_found(pk, wanted)
        conn.execute(
            events.insert().values(
                at=clock(), kind=kind, message_id=pk, data={"by": "operator", **(data or {})}
            )
        )


def release(engine: sa.Engine, pk: int, clock: Callable[[], datetime]) -> None:
    """Send a quarantined message through the pipeline again (skipping the loop guard)."""
    _change(
        engine,
        pk,
        clock,
        "message_released",
        ("quarantined",),
        status="pending",
        stage=RELEASED,
        error=None,
        attempts=0,
    )


def hold(engine: sa.Engine, pk: int, clock: Callable[[], datetime], reason: str) -> None:
    """Quarantine a pending message so the pipeline leaves it alone."""
    why = reason or "held by an operator"
    _change(
        engine,
        pk,
        clock,
        "message_quarantined",
        ("pending",),
        {"stage": "operator", "reason": why},
        status="quarantined",
        stage="operator",
        error=why,
    )


def discard(engine: sa.Engine, pk: int, clock: Callable[[], datetime], reason: str) -> None:
    """Discard a quarantined or a pending message: it is kept, never processed."""
    _change(
        engine,
        pk,
        clock,
        "message_discarded",
        ("quarantined", "pending"),
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
        raise NotFoundError(str(RawMissing(pk, entry.raw_sha256)))
    return bytes(raw)

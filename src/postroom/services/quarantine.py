"""Quarantine use cases: list, search, show, retry (release), hold and discard
messages, and release a sender's messages from the loop guard.

Each function owns its transaction, and every change writes its audit entry
(services/admin/audit.py) in that transaction. Retrying marks the message
pending again, released from the loop guard with a fresh attempts count, and
leaves running the pipeline to the caller (the CLI runs it at once; the
pipeline role takes it otherwise). Operators may also hold (quarantine) or
discard a message that is still pending, e.g. one the pipeline keeps failing
on. Nothing here decides who may do this: the callers check permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError, PostroomError
from postroom.mail.parse import decode_words
from postroom.services.admin import audit
from postroom.services.admin.audit import Actor
from postroom.services.intake import RELEASED, RawMissing
from postroom.store.blobs import BlobStore
from postroom.store.db import LIKE_ESCAPE, as_utc, like_contains
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


_AUDITED = ("status", "stage", "error", "attempts")

# Who changes quarantine when no one is named: an operator at the command line.
OPERATOR = Actor.cli()


def _change(
    engine: sa.Engine,
    pk: int,
    clock: Callable[[], datetime],
    kind: str,
    wanted: tuple[str, ...],
    data: dict[str, Any] | None = None,
    *,
    actor: Actor,
    action: str,
    **values: Any,
) -> None:
    # On PostgreSQL the UPDATE waits for a pipeline holding the row and then
    # re-checks the status: a message is never both processed and discarded.
    with engine.begin() as conn:
        _change_in(conn, pk, clock, kind, wanted, data, actor=actor, action=action, **values)


def _change_in(
    conn: sa.Connection,
    pk: int,
    clock: Callable[[], datetime],
    kind: str,
    wanted: tuple[str, ...],
    data: dict[str, Any] | None = None,
    *,
    actor: Actor,
    action: str,
    **values: Any,
) -> None:
    at = clock()
    before = conn.execute(
        sa.select(*(messages.c[name] for name in _AUDITED))
        .where(
            messages.c.id == pk,
            messages.c.direction == "in",
            messages.c.status.in_(wanted),
        )
        .with_for_update()
    ).first()
    done = conn.execute(
        messages.update()
        .where(
            messages.c.id == pk,
            messages.c.direction == "in",
            messages.c.status.in_(wanted),
        )
        .values(**values)
    ).rowcount
    if not done or before is None:
        raise _not_found(pk, wanted)
    conn.execute(
        events.insert().values(
            at=at, kind=kind, message_id=pk, data={"by": "operator", **(data or {})}
        )
    )
    old = dict(before._mapping)
    new = old | {k: v for k, v in values.items() if k in _AUDITED}
    audit.record(conn, at, actor, action, "quarantine", str(pk), old, new)


def release(
    engine: sa.Engine, pk: int, clock: Callable[[], datetime], *, actor: Actor = OPERATOR
) -> None:
    """Send a quarantined message through the pipeline again (skipping the loop guard)."""
    _change(
        engine,
        pk,
        clock,
        "message_released",
        ("quarantined",),
        actor=actor,
        action="quarantine.retry",
        status="pending",
        stage=RELEASED,
        error=None,
        attempts=0,
    )


def hold(
    engine: sa.Engine,
    pk: int,
    clock: Callable[[], datetime],
    reason: str,
    *,
    actor: Actor = OPERATOR,
) -> None:
    """Quarantine a pending message so the pipeline leaves it alone."""
    why = reason or "held by an operator"
    _change(
        engine,
        pk,
        clock,
        "message_quarantined",
        ("pending",),
        {"stage": "operator", "reason": why},
        actor=actor,
        action="quarantine.hold",
        status="quarantined",
        stage="operator",
        error=why,
    )


def discard(
    engine: sa.Engine,
    pk: int,
    clock: Callable[[], datetime],
    reason: str,
    *,
    actor: Actor = OPERATOR,
) -> None:
    """Discard a quarantined or a pending message: it is kept, never processed."""
    _change(
        engine,
        pk,
        clock,
        "message_discarded",
        ("quarantined", "pending"),
        actor=actor,
        action="quarantine.discard",
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


# -- the admin API's reads and the loop guard ------------------------------------------

PAGE_MAX = 200
HEADER_BYTES = 64 * 1024  # the most of a message's start read to show its headers


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[QuarantineEntry]
    next_cursor: int | None  # pass as `after` for the next page; None on the last


def search(
    engine: sa.Engine,
    *,
    pending: bool = False,
    stage: str | None = None,
    reason: str | None = None,
    sender: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> Page:
    """Quarantined (or `pending`) inbound messages, oldest first, filtered by stage,
    by text in the reason, by sender; `after` is the last id of the previous page."""
    limit = max(1, min(limit, PAGE_MAX))
    status = "pending" if pending else "quarantined"
    query = (
        sa.select(messages)
        .where(messages.c.status == status, messages.c.direction == "in")
        .order_by(messages.c.id)
        .limit(limit + 1)
    )
    if stage:
        query = query.where(messages.c.stage == stage)
    if reason:
        query = query.where(
            sa.func.lower(messages.c.error).like(like_contains(reason), escape=LIKE_ESCAPE)
        )
    if sender:
        query = query.where(sa.func.lower(messages.c.sender) == sender.strip().lower())
    if after is not None:
        query = query.where(messages.c.id > after)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found = [_entry(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(found, found[-1].message_pk if more and found else None)


def stages(engine: sa.Engine) -> list[str]:
    """The stages quarantined messages wait at now (for a filter's choices)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages.c.stage)
            .where(messages.c.status == "quarantined", messages.c.direction == "in")
            .group_by(messages.c.stage)
            .order_by(messages.c.stage)
        ).scalars()
        return [str(s) for s in rows if s]


def _head_fields(raw: bytes) -> list[tuple[str, str]]:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw[: end if 0 <= end < HEADER_BYTES else HEADER_BYTES]
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head)
    fields: list[tuple[str, str]] = []
    for name, value in parsed.items():
        text = str(value).replace("\r", "").replace("\n", " ")
        fields.append((str(name), decode_words(text)))
    return fields


def detail(engine: sa.Engine, blobs: BlobStore, pk: int) -> dict[str, Any]:
    """One quarantined or pending message for an operator: the entry, its envelope,
    and the header fields read from the raw bytes (decoded, in their order)."""
    entry = get_entry(engine, pk)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(messages.c.envelope_from, messages.c.envelope_to).where(messages.c.id == pk)
        ).one()
    try:
        headers: list[tuple[str, str]] | None = _head_fields(raw_message(engine, blobs, pk))
    except NotFoundError:
        headers = None  # the raw bytes are gone; the entry still says what is known
    return entry.to_json() | {
        "envelope": {"from": row.envelope_from, "to": list(row.envelope_to or [])},
        "headers": [{"name": n, "value": v} for n, v in headers] if headers is not None else None,
    }


class NothingToRelease(NotFoundError):
    """No message from that sender waits at the loop guard."""


def release_loop_guard(
    engine: sa.Engine,
    clock: Callable[[], datetime],
    *,
    sender: str | None = None,
    message_id: int | None = None,
    actor: Actor = OPERATOR,
) -> list[int]:
    """Send every message the loop guard holds from `sender` (or from the sender of
    quarantined message `message_id`) through the pipeline again; each skips the
    guard once. One transaction, one audit entry per message. The ids released."""
    if (sender is None) == (message_id is None):
        raise PostroomError("give either a sender address or a quarantined message id")
    with engine.begin() as conn:
        if message_id is not None:
            found = conn.execute(
                sa.select(messages.c.sender).where(
                    messages.c.id == message_id,
                    messages.c.direction == "in",
                    messages.c.status == "quarantined",
                )
            ).first()
            if found is None:
                raise _not_found(message_id, ("quarantined",))
            if not found.sender:
                raise NothingToRelease(
                    f"message {message_id} has no known sender; retry it on its own instead"
                )
            sender = str(found.sender)
        assert sender is not None
        address = sender.strip().lower()
        ids = list(
            conn.execute(
                sa.select(messages.c.id)
                .where(
                    messages.c.direction == "in",
                    messages.c.status == "quarantined",
                    messages.c.stage == "loop_guard",
                    sa.func.lower(messages.c.sender) == address,
                )
                .order_by(messages.c.id)
            ).scalars()
        )
        if not ids:
            raise NothingToRelease(
                f"the loop guard holds no message from {address}; see GET /api/v1/quarantine"
                "?stage=loop_guard or `postroom quarantine list`"
            )
        for pk in ids:
            _change_in(
                conn,
                pk,
                clock,
                "message_released",
                ("quarantined",),
                {"loop_guard": address},
                actor=actor,
                action="quarantine.release",
                status="pending",
                stage=RELEASED,
                error=None,
                attempts=0,
            )
    return ids

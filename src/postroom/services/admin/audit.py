"""The audit trail: who changed what, when, with the values before and after.

Append-only. `record` is called inside the transaction of the change it
describes, so a change and its entry commit (or roll back) together. It never
decides whether a change is allowed, and nothing here updates or deletes rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from postroom.store.db import as_utc
from postroom.store.schema import audit_log

Via = Literal["session", "token", "cli", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change and how they proved it."""

    id: str  # a user id, or "system" for changes Postroom makes itself
    via: Via

    @classmethod
    def cli(cls, name: str = "cli") -> Actor:
        return cls(name, "cli")


SYSTEM = Actor("system", "system")

_SECRET_KEYS = frozenset({"password", "secret", "token", "password_hash", "token_hash"})


def redact(value: Any) -> Any:
    """A copy of `value` with every secret (passwords, secrets, tokens) replaced by
    "***": the audit log shows that a secret changed, never the secret."""
    if isinstance(value, Mapping):
        return {
            str(k): ("***" if k in _SECRET_KEYS and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def record(
    conn: sa.Connection,
    at: datetime,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one entry (in the caller's transaction); its id."""
    result = conn.execute(
        audit_log.insert().values(
            at=at,
            actor=actor.id,
            via=actor.via,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=redact(before),
            after=redact(after),
        )
    )
    return int(result.inserted_primary_key[0])


def entries(
    conn: sa.Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries newest first, filtered; page with `before_id` (the last id seen)."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    for column, value in (
        (audit_log.c.actor, actor),
        (audit_log.c.action, action),
        (audit_log.c.target_type, target_type),
        (audit_log.c.target_id, target_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return [
        {
            "id": row.id,
            "at": _iso(row.at),
            "actor": row.actor,
            "via": row.via,
            "action": row.action,
            "target_type": row.target_type,
            "target_id": row.target_id,
            "before": row.before,
            "after": row.after,
        }
        for row in conn.execute(query)
    ]


def _iso(value: datetime | None) -> str | None:
    at = as_utc(value)
    return at.isoformat() if at is not None else None

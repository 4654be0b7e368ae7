"""Wrap-up codes checked against the queue, and the agent's wrap-up notes (an event;
the router keeps only the code)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import PostroomError
from postroom.domain.routes import QueueConfig
from postroom.services.conversations.events import event_json as _event_json
from postroom.store.schema import events


def check_wrapup_code(queue: QueueConfig | None, code: str) -> None:
    codes = queue.wrapup_codes if queue is not None else ()
    if codes and code not in codes:
        raise PostroomError(f"wrap-up code {code!r} is not one of: {', '.join(codes)}")


def record_wrapup_notes(
    db: sa.Engine,
    clock: Callable[[], datetime],
    conversation_id: int,
    agent_id: str,
    code: str,
    notes: str,
) -> None:
    """Append the agent's wrap-up notes as an event (the router keeps only the code)."""
    with db.begin() as conn:
        conn.execute(
            events.insert().values(
                at=clock(),
                kind="wrapup_notes",
                conversation_id=conversation_id,
                data={"agent": agent_id, "code": code, "notes": notes},
            )
        )


def wrapup_notes(db: sa.Engine, conversation_id: int) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(events)
            .where(events.c.conversation_id == conversation_id, events.c.kind == "wrapup_notes")
            .order_by(events.c.id)
        ).all()
    return [_event_json(r) for r in rows]

"""Splitting and merging conversations over HTTP, for supervisors (act_on_backlog).

Reads the request, calls services/supervisor/threads.py in a worker thread and
returns what it did; the service's named errors become 400/404/409 in
web/errors.py. No database or routing logic here.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from postroom.services.supervisor import threads as svc
from postroom.web.deps import CanActOnBacklog, Ctx, RowId

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: RowId = Field(description="this message and those after it move out")


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: RowId = Field(description="the conversation that receives the messages")
    force: bool = Field(default=False, description="merge even when the customers differ")


@router.post("/{conversation_id}/split")
async def split(
    conversation_id: RowId, body: SplitIn, ctx: Ctx, user: CanActOnBacklog
) -> dict[str, Any]:
    """Move a message and those after it into a new thread with a new conversation,
    queued in the same queue; the original keeps the earlier messages."""
    result = await anyio.to_thread.run_sync(
        lambda: svc.split(ctx.db, ctx.clock, conversation_id, body.message_id, user.id)
    )
    return result.to_json()


@router.post("/{conversation_id}/merge")
async def merge(
    conversation_id: RowId, body: MergeIn, ctx: Ctx, user: CanActOnBacklog
) -> dict[str, Any]:
    """Move every message of this conversation into conversation `into` and end this
    one (a waiting one leaves its queue); refused while an agent holds it."""
    result = await anyio.to_thread.run_sync(
        lambda: svc.merge(
            ctx.db, ctx.clock, conversation_id, body.into, user.id, force=body.force
        )
    )
    return result.to_json()

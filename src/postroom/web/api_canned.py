"""Canned response endpoints: list, search, render for a conversation, and
(supervisors, admins) add and delete.

Substitution and storage live in services/conversations.py.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from pydantic import BaseModel, Field

from postroom.domain.errors import PostroomError
from postroom.services import conversations as conv_svc
from postroom.web.deps import CanManageCanned, Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1/canned-responses", tags=["canned responses"])


class CannedIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=100_000)
    html: str | None = Field(default=None, max_length=500_000)
    queue: str | None = Field(default=None, description="only for this queue (default: all)")


class RenderIn(BaseModel):
    conversation_id: RowId | None = Field(
        default=None, description="fill in for this conversation (customer, reference, queue)"
    )
    queue: str | None = Field(
        default=None,
        description="without a conversation (a new email): the queue it is sent from",
    )


@router.get("")
async def list_canned(
    ctx: Ctx, _user: CurrentUser, q: str | None = None, queue: str | None = None
) -> dict[str, Any]:
    """Canned responses, optionally searched by name/text and limited to a queue."""
    items = await anyio.to_thread.run_sync(
        lambda: conv_svc.list_canned(ctx.db, search=q, queue=queue)
    )
    return {"canned_responses": items}


@router.post("", status_code=201)
async def add_canned(body: CannedIn, ctx: Ctx, _user: CanManageCanned) -> dict[str, Any]:
    """Add one. Fields: {customer_name}, {agent_name}, {queue_name}, {reference}."""
    if body.queue is not None and ctx.configured.queue(body.queue) is None:
        raise PostroomError(
            f"queue {body.queue!r} is not configured; "
            f"queues: {', '.join(ctx.configured.queue_names)}"
        )
    return await anyio.to_thread.run_sync(
        lambda: conv_svc.add_canned(
            ctx.db, ctx.clock, name=body.name, text=body.text, html=body.html, queue=body.queue
        )
    )


@router.delete("/{canned_id}", status_code=204)
async def delete_canned(canned_id: RowId, ctx: Ctx, _user: CanManageCanned) -> None:
    await anyio.to_thread.run_sync(conv_svc.delete_canned, ctx.db, canned_id)


@router.post("/{canned_id}/render")
async def render(canned_id: RowId, body: RenderIn, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """The text with the fields filled in for one conversation you can see, or for a new
    email from `queue` (no customer name or reference yet)."""
    if body.conversation_id is None and body.queue is None:
        raise PostroomError("give conversation_id, or queue for a new email")
    if body.queue is not None and ctx.configured.queue(body.queue) is None:
        raise PostroomError(
            f"queue {body.queue!r} is not configured; "
            f"queues: {', '.join(ctx.configured.queue_names)}"
        )
    return await anyio.to_thread.run_sync(
        lambda: conv_svc.render_canned(
            ctx.db,
            user,
            canned_id,
            body.conversation_id,
            queue=body.queue or "",
            prefix=ctx.config.reference_prefix,
        )
    )

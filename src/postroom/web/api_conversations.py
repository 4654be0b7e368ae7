"""Conversation endpoints: list, search, read, agent actions and drafts.

Reads go through services/conversations.py (which applies the access rule);
state changes go to the router through web/actions.py. Sending mail is not
here (the outbound endpoints own that).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, model_validator

from postroom.domain.errors import PostroomError
from postroom.domain.routes import QueueConfig
from postroom.services import conversations as conv_svc
from postroom.services import signatures
from postroom.web.actions import conversation_action
from postroom.web.deps import Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


class TransferIn(BaseModel):
    queue: str | None = Field(default=None, description="transfer to this queue")
    agent: str | None = Field(default=None, description="or offer it to this agent")

    @model_validator(mode="after")
    def one_target(self) -> TransferIn:
        if (self.queue is None) == (self.agent is None):
            raise ValueError("give exactly one of queue or agent")
        return self


class WrapupIn(BaseModel):
    code: str = Field(default="", max_length=200)
    notes: str = Field(default="", max_length=10000)


class DraftIn(BaseModel):
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str = Field(default="", max_length=1000)
    text: str = Field(default="", max_length=2_000_000)
    html: str | None = Field(default=None, max_length=5_000_000)
    attachments: list[RowId] = Field(default_factory=list, description="upload ids")
    kind: Literal["reply", "reply_all", "forward", "new"] = "reply"
    quote: bool | None = Field(default=None, description="include the customer's message")
    inline: list[RowId] = Field(default_factory=list, description="upload ids shown in the text")


class ActionOut(BaseModel):
    conversation_id: int
    action: str
    agent: str
    result: Literal["ok"] = "ok"


@router.get("")
async def list_conversations(
    ctx: Ctx,
    user: CurrentUser,
    state: str | None = Query(default=None, description="queued, alerting, connected, ..."),
    queue: str | None = None,
    agent: str | None = None,
    q: str | None = Query(default=None, description="search subject, sender, text or PR-12"),
    mine: bool = Query(default=False, description="only those offered to or held by me"),
    limit: int = Query(default=50, ge=1, le=200),
    before_id: Annotated[RowId | None, Query(description="page: ids below this one")] = None,
) -> dict[str, Any]:
    """Conversations you can see, newest first."""
    flt = conv_svc.ConversationFilter(state, queue, agent, q, mine, limit, before_id)
    items = await anyio.to_thread.run_sync(
        lambda: conv_svc.list_conversations(ctx.db, user, flt, prefix=ctx.config.reference_prefix)
    )
    return {"conversations": items}


@router.get("/{conversation_id}")
async def get_conversation(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """One conversation with its messages and attachments."""
    return await anyio.to_thread.run_sync(
        lambda: conv_svc.get_conversation(
            ctx.db, user, conversation_id, prefix=ctx.config.reference_prefix
        )
    )


async def _act(
    ctx: Ctx, user: CurrentUser, cid: int, kind: str, data: dict[str, Any] | None = None
) -> ActionOut:
    agent = await conversation_action(ctx, user, cid, kind, data)
    return ActionOut(conversation_id=cid, action=kind, agent=agent)


@router.post("/{conversation_id}/accept", response_model=ActionOut)
async def accept(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> ActionOut:
    """Accept the offer: the conversation becomes connected."""
    return await _act(ctx, user, conversation_id, "accept")


@router.post("/{conversation_id}/decline", response_model=ActionOut)
async def decline(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> ActionOut:
    """Decline the offer: it goes to the next agent."""
    return await _act(ctx, user, conversation_id, "decline")


@router.post("/{conversation_id}/transfer", response_model=ActionOut)
async def transfer(
    conversation_id: RowId, body: TransferIn, ctx: Ctx, user: CurrentUser
) -> ActionOut:
    """Transfer to a queue (it waits there) or to an agent (offered to them)."""
    if body.queue is not None:
        if ctx.configured.queue(body.queue) is None:
            raise PostroomError(
                f"queue {body.queue!r} is not configured; queues: "
                + ", ".join(ctx.configured.queue_names)
            )
        return await _act(ctx, user, conversation_id, "transfer_queue", {"queue": body.queue})
    return await _act(ctx, user, conversation_id, "transfer_agent", {"agent": body.agent})


@router.post("/{conversation_id}/park", response_model=ActionOut)
async def park(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> ActionOut:
    """Set it aside; it returns on the customer's reply or the park timer."""
    return await _act(ctx, user, conversation_id, "park")


@router.post("/{conversation_id}/unpark", response_model=ActionOut)
async def unpark(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> ActionOut:
    """Take a parked conversation back: it is connected to its agent again at once,
    even when they already hold as many conversations as their capacity."""
    return await _act(ctx, user, conversation_id, "take_back")


@router.post("/{conversation_id}/disconnect", response_model=ActionOut)
async def disconnect(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> ActionOut:
    """End the interaction (then wrap-up, if the queue asks for it)."""
    return await _act(ctx, user, conversation_id, "end")


@router.post("/{conversation_id}/wrapup", response_model=ActionOut)
async def wrapup(conversation_id: RowId, body: WrapupIn, ctx: Ctx, user: CurrentUser) -> ActionOut:
    """Finish with a wrap-up code (from the queue's list) and notes; ends it first if needed."""
    holder = await anyio.to_thread.run_sync(conv_svc.holder, ctx.db, user, conversation_id)
    conv_svc.check_wrapup_code(ctx.configured.queue(holder.queue), body.code)
    if holder.state in ("connected", "parked"):
        await _act(ctx, user, conversation_id, "end")
    out = await _act(ctx, user, conversation_id, "wrapup", {"code": body.code})
    if body.notes:
        await anyio.to_thread.run_sync(
            conv_svc.record_wrapup_notes,
            ctx.db,
            ctx.clock,
            conversation_id,
            out.agent,
            body.code,
            body.notes,
        )
    return out


@router.get("/{conversation_id}/wrapup-codes")
async def wrapup_codes(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """The wrap-up codes of the conversation's queue."""
    holder = await anyio.to_thread.run_sync(conv_svc.holder, ctx.db, user, conversation_id)
    q = ctx.configured.queue(holder.queue)
    return {
        "queue": holder.queue,
        "codes": list(q.wrapup_codes) if q else [],
        "prompt": q.wrapup_prompt if q else "optional",
    }


@router.get("/{conversation_id}/signature")
async def signature(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """The signature of the conversation's queue, rendered for you and this conversation."""
    holder = await anyio.to_thread.run_sync(conv_svc.holder, ctx.db, user, conversation_id)
    q = ctx.configured.queue(holder.queue)
    if q is None:  # a queue no longer configured has no signature
        q = QueueConfig(name=holder.queue)
    rendered = await anyio.to_thread.run_sync(
        lambda: signatures.render_for(
            ctx.db, user, q, conversation_id, prefix=ctx.config.reference_prefix
        )
    )
    return {"queue": holder.queue, "conversation_id": conversation_id} | rendered.to_json()


@router.get("/{conversation_id}/draft")
async def get_draft(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """Your draft for this conversation (data is null when there is none)."""
    draft = await anyio.to_thread.run_sync(conv_svc.get_draft, ctx.db, user, conversation_id)
    return draft or {"conversation_id": conversation_id, "data": None, "updated_at": None}


@router.put("/{conversation_id}/draft")
async def save_draft(
    conversation_id: RowId, body: DraftIn, ctx: Ctx, user: CurrentUser
) -> dict[str, Any]:
    """Auto-save: replaces your one draft for this conversation."""
    return await anyio.to_thread.run_sync(
        lambda: conv_svc.save_draft(
            ctx.db,
            ctx.clock,
            user,
            conversation_id,
            body.model_dump(),
            max_recipients=ctx.config.max_recipients,
            max_attachments=ctx.config.max_attachments,
        )
    )


@router.delete("/{conversation_id}/draft", status_code=204)
async def delete_draft(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> None:
    """Throw your draft away."""
    await anyio.to_thread.run_sync(conv_svc.delete_draft, ctx.db, user, conversation_id)

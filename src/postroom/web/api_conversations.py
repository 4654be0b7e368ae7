"""Conversation endpoints: list, search, read, agent actions and drafts.

Reads go through services/conversations.py (which applies the access rule);
state changes go to the router through web/actions.py. Sending mail is not
here (the outbound endpoints own that).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

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


Text = Annotated[str | None, Query(max_length=320)]


@router.get("")
async def list_conversations(
    ctx: Ctx,
    user: CurrentUser,
    state: str | None = Query(default=None, description="queued, alerting, connected, ..."),
    queue: Text = None,
    agent: Annotated[
        str | None, Query(max_length=320, description="held by this agent now or last")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=10_000,
            description='full-text search: words, "a phrase", from:, to:, queue:, state:, '
            "ref:PR-12 (docs/api.md)",
        ),
    ] = None,
    mine: bool = Query(default=False, description="only those offered to or held by me"),
    wrapup_code: Text = None,
    tag: Text = None,
    sender: Annotated[
        str | None, Query(max_length=320, description="an address, or a domain")
    ] = None,
    direction: Literal["in", "out"] | None = Query(
        default=None, description="in: the customer wrote first; out: an agent did"
    ),
    created_from: Annotated[
        AwareDatetime | None, Query(description="created at or after (ISO 8601 with offset)")
    ] = None,
    created_to: Annotated[
        AwareDatetime | None, Query(description="created before (ISO 8601 with offset)")
    ] = None,
    sort: Literal["newest", "oldest", "activity", "relevance"] | None = Query(
        default=None, description="default: relevance with words to search, else newest"
    ),
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor of the previous page")
    ] = None,
    limit: int = Query(default=50, ge=1, le=200),
    before_id: Annotated[RowId | None, Query(description="page: ids below this one")] = None,
) -> dict[str, Any]:
    """Conversations you can see: filtered, searched (`q`), sorted and paged. Pages
    are keyset: follow `next_cursor` (null on the last page). `before_id` is the
    older paging by id (newest id first; no cursor)."""
    prefix = ctx.config.reference_prefix
    bf = conv_svc.BrowseFilter(
        q=q,
        state=state,
        queue=queue,
        agent=agent,
        wrapup_code=wrapup_code,
        tag=tag,
        sender=sender,
        direction=direction,
        created_from=created_from,
        created_to=created_to,
        mine=mine,
        sort="id" if sort is None and before_id is not None else sort,
        limit=limit,
        cursor=cursor,
        before_id=before_id,
    )
    page = await anyio.to_thread.run_sync(
        lambda: conv_svc.browse(ctx.db, user, bf, prefix=prefix)
    )
    return {"conversations": page.conversations, "next_cursor": page.next_cursor,
            "sort": page.sort}  # fmt: skip


@router.get("/{conversation_id}/customer")
async def customer(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """The customer of a conversation: their other conversations and their domain's
    (open and closed), as far as you may see them."""
    return await anyio.to_thread.run_sync(
        lambda: conv_svc.customer_panel(
            ctx.db, user, conversation_id, prefix=ctx.config.reference_prefix
        )
    )


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

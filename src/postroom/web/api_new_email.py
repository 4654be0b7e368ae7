"""Starting a conversation by email: ``POST /api/v1/conversations``.

An agent (or a supervisor or admin, for any queue and for any agent) writes to
a customer from a queue's address; services/new_email.py creates the
conversation, connected to the agent, and queues the message. This module only
turns JSON into that call and its result into JSON.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from postroom.services import new_email
from postroom.services.outbound import OutboundService
from postroom.services.users import User
from postroom.web.api_workspace import outbound_config
from postroom.web.deps import AppContext, Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1", tags=["conversations"])


class NewEmailIn(BaseModel):
    queue: str = Field(description="the queue it is sent from (and belongs to)")
    agent: str | None = Field(
        default=None, description="supervisors and admins: the agent who holds it (default: you)"
    )
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list, description="envelope only, never in headers")
    subject: str = Field(min_length=1, max_length=1000)
    text: str = Field(default="", max_length=2_000_000)
    html: str | None = Field(default=None, max_length=5_000_000, description="sanitized")
    attachments: list[RowId] = Field(default_factory=list, description="upload ids")
    inline: list[RowId] = Field(
        default_factory=list,
        description='upload ids shown in the HTML as <img src="/api/v1/uploads/ID">',
    )


class NewEmailOut(BaseModel):
    conversation_id: int
    thread_id: int
    reference: str
    queue: str
    agent: str
    state: str
    message_id: str
    outbox_id: int
    recipients: list[str]


def _start(ctx: AppContext, service: OutboundService, user: User, body: NewEmailIn) -> NewEmailOut:
    email = new_email.NewEmail(
        queue=body.queue,
        subject=body.subject,
        to=tuple(body.to),
        cc=tuple(body.cc),
        bcc=tuple(body.bcc),
        text=body.text,
        html=body.html,
        attachments=tuple(body.attachments),
        inline=tuple(body.inline),
        agent=body.agent,
    )
    started = new_email.start(
        ctx.db,
        service,
        ctx.clock,
        user,
        email,
        queues=ctx.configured.queues,
        routes=ctx.configured.routes,
        max_recipients=ctx.config.max_recipients,
        max_attachments=ctx.config.max_attachments,
    )
    return NewEmailOut(**started.to_json())


@router.post("/conversations", response_model=NewEmailOut, status_code=201)
async def start_email(
    body: NewEmailIn, request: Request, response: Response, ctx: Ctx, user: CurrentUser
) -> NewEmailOut:
    """Write a new email to a customer from a queue's address: a new conversation in that
    queue, connected to you (it takes one of your capacity), with the message queued."""
    service = OutboundService(ctx.db, ctx.blobs, outbound_config(request, ctx), ctx.clock)
    out = await anyio.to_thread.run_sync(_start, ctx, service, user, body)
    response.headers["Location"] = f"/api/v1/conversations/{out.conversation_id}"
    return out

"""Endpoints the agent workspace needs beyond the core API: send a reply,
reply-all or forward (with the customer's message quoted or forwarded, and
pictures from the text sent inline), preview what would be quoted, and serve a
message's inline (``cid:``) images.

Sending hands the composed draft to services/outbound.py (which builds, stores
and queues the message; the sender role delivers it). Inline images follow
the conversation access rule of services/conversations.py. No MIME, no SMTP
and no routing decisions here.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from postroom.domain.errors import NotFoundError, PostroomError
from postroom.mail import compose as mc
from postroom.mail.sanitize import sanitize_html
from postroom.services import conversations as conv_svc
from postroom.services.new_email import inline_content_id, link_inline_images
from postroom.services.outbound import (
    Include,
    OutboundConfig,
    OutboundService,
    from_names,
    route_from_names,
)
from postroom.services.users import Forbidden, User
from postroom.store.schema import attachments, messages
from postroom.web.api_files import _file_response
from postroom.web.deps import AppContext, Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1", tags=["workspace"])

SENDABLE = ("connected", "parked", "wrapup")


class SendIn(BaseModel):
    kind: Literal["reply", "reply_all", "forward"] = "reply"
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str | None = Field(default=None, max_length=1000)
    text: str = Field(default="", max_length=2_000_000)
    html: str | None = Field(default=None, max_length=5_000_000)
    attachments: list[RowId] = Field(default_factory=list, description="upload ids")
    inline: list[RowId] = Field(
        default_factory=list,
        description='upload ids of pictures the HTML shows (<img src="/api/v1/uploads/ID">); '
        "they travel inline (cid:)",
    )
    reply_to_message: RowId | None = Field(default=None, description="default: the newest inbound")
    quote: bool | None = Field(
        default=None,
        description="include the message answered: quoted below a reply (default: the "
        "queue's quote_original), forwarded with its attachments in a forward (default: yes)",
    )


class SendOut(BaseModel):
    conversation_id: int
    message_id: str
    outbox_id: int
    recipients: list[str]


def outbound_config(request: Request, ctx: AppContext) -> OutboundConfig:
    """Built from the app's settings (kept by the workspace mount), else defaults."""
    settings = getattr(request.app.state, "settings", None)
    intake = getattr(settings, "intake", None)
    return OutboundConfig(
        message_id_domain=str(getattr(intake, "message_id_domain", ctx.config.message_id_domain)),
        thread_token_prefix=ctx.config.reference_prefix,
        from_names=from_names(ctx.configured.queues),
        route_from_names=route_from_names(ctx.configured.routes),
        limits=mc.Limits(
            max_recipients=ctx.config.max_recipients,
            max_attachments=ctx.config.max_attachments,
            max_message_size=ctx.config.max_message_size,
        ),
    )


def _send(ctx: AppContext, config: OutboundConfig, user: User, cid: int, body: SendIn) -> SendOut:
    holder = conv_svc.holder(ctx.db, user, cid)
    if not user.sees_everything and holder.agent_id != user.id:
        raise Forbidden(
            f"conversation {cid} is not held by you; accept it before you answer the customer"
        )
    if holder.state not in SENDABLE:
        raise PostroomError(
            f"conversation {cid} is {holder.state}; you can send while it is connected, "
            "parked or in wrap-up"
        )
    if body.kind == "forward" and not (body.to or body.cc or body.bcc):
        raise PostroomError("a forward needs at least one recipient in To, Cc or Bcc")
    if body.inline and not body.html:
        raise PostroomError("inline pictures need an HTML body that shows them (<img src=...>)")
    service = OutboundService(ctx.db, ctx.blobs, config, ctx.clock)
    wanted = list(dict.fromkeys([*body.attachments, *body.inline]))
    rows = {r.id: r for r in conv_svc.owned_uploads(ctx.db, user, wanted)}
    content_ids = {
        uid: inline_content_id(uid, service.unique(), config.message_id_domain)
        for uid in dict.fromkeys(body.inline)
    }
    files = [
        mc.OutboundAttachment(
            filename=rows[uid].filename,
            content_type=rows[uid].content_type,
            data=ctx.blobs.get(rows[uid].sha256),
            content_id=content_ids.get(uid),
        )
        for uid in wanted
    ]
    html = (
        sanitize_html(link_inline_images(body.html, content_ids), cid_url=None)
        if body.html
        else None
    )
    # A reply without recipients goes to the customer; a forward names its own.
    to = body.to if (body.to or body.kind == "forward") else None
    queue = ctx.configured.queue(holder.queue)
    include: Include | None = None
    if body.kind == "forward":
        include = "forward" if body.quote is not False else None
    elif body.quote if body.quote is not None else (queue is None or queue.quote_original):
        include = "quote"
    queued = service.queue_reply(
        cid,
        text=body.text,
        html=html,
        attachments=files,
        to=to,
        cc=body.cc,
        bcc=body.bcc,
        subject=body.subject or None,
        reply_to_message=body.reply_to_message,
        agent_id=user.id,
        include=include,
    )
    conv_svc.delete_draft(ctx.db, user, cid)
    return SendOut(
        conversation_id=cid,
        message_id=queued.message_id,
        outbox_id=queued.outbox_id,
        recipients=list(queued.recipients),
    )


@router.post("/conversations/{conversation_id}/send", response_model=SendOut, status_code=201)
async def send(
    conversation_id: RowId, body: SendIn, request: Request, ctx: Ctx, user: CurrentUser
) -> SendOut:
    """Send a reply, reply-all or forward from the conversation's address; your draft is
    removed. The message is queued for the sender and shows up in the conversation."""
    config = outbound_config(request, ctx)
    return await anyio.to_thread.run_sync(_send, ctx, config, user, conversation_id, body)


def _quote(
    ctx: AppContext, config: OutboundConfig, user: User, cid: int, kind: str, message: int | None
) -> dict[str, Any]:
    holder = conv_svc.holder(ctx.db, user, cid)
    queue = ctx.configured.queue(holder.queue)
    service = OutboundService(ctx.db, ctx.blobs, config, ctx.clock)
    include: Include = "forward" if kind == "forward" else "quote"
    found = service.quote_preview(cid, include, message)
    default = include == "forward" or queue is None or queue.quote_original
    return {"conversation_id": cid, "kind": kind, "default": default, "quote": found}


@router.get("/conversations/{conversation_id}/quote")
async def quote_preview(
    conversation_id: RowId,
    request: Request,
    ctx: Ctx,
    user: CurrentUser,
    kind: Literal["reply", "reply_all", "forward"] = "reply",
    reply_to_message: RowId | None = None,
) -> dict[str, Any]:
    """What sending would add below your text: the customer's message quoted (a reply;
    `default` is the queue's quote_original) or forwarded with its attachments (a
    forward). `quote` is null when there is no message to include."""
    config = outbound_config(request, ctx)
    return await anyio.to_thread.run_sync(
        _quote, ctx, config, user, conversation_id, kind, reply_to_message
    )


def _cid_attachment(ctx: AppContext, user: User, message_id: int, content_id: str) -> int:
    # Access first: whether a message carries a Content-ID is itself not for
    # someone who cannot see the message.
    visible_message(ctx, user, message_id)
    wanted = content_id.strip("<>")
    with ctx.db.connect() as conn:
        row = conn.execute(
            sa.select(attachments.c.id).where(
                attachments.c.message_id == message_id,
                attachments.c.content_id.in_([wanted, f"<{wanted}>"]),
            )
        ).first()
    if row is None:
        raise NotFoundError(f"no inline image {content_id!r} in message {message_id}")
    return int(row.id)


@router.get("/messages/{message_id}/cid/{content_id:path}")
async def inline_image(message_id: RowId, content_id: str, ctx: Ctx, user: CurrentUser) -> Response:
    """An inline image of a message you can see, by its Content-ID."""
    att = await anyio.to_thread.run_sync(_cid_attachment, ctx, user, message_id, content_id)
    key, name, ctype = await anyio.to_thread.run_sync(
        conv_svc.attachment_for_download, ctx.db, user, att
    )
    return await anyio.to_thread.run_sync(_file_response, ctx, key, name, ctype)


def visible_message(ctx: AppContext, user: User, message_id: int) -> dict[str, Any]:
    """A message's html/text for the body frame, when its conversation is visible."""
    with ctx.db.connect() as conn:
        row = conn.execute(
            sa.select(messages.c.conversation_id, messages.c.html, messages.c.text).where(
                messages.c.id == message_id
            )
        ).first()
    if row is None or row.conversation_id is None:
        raise NotFoundError(f"no message {message_id} that you can see")
    conv_svc.ensure_visible(ctx.db, user, int(row.conversation_id))
    return {"html": row.html, "text": row.text}

"""Canned response endpoints: the library (list, search, folders, one item), its
changes (supervisors and admins: create, replace, change, delete), rendering
for a conversation, and the editor's substitution preview.

Translation to HTTP only: the library, its checks, its audit entries and the
substitution live in services/canned.py.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from postroom.domain.errors import PostroomError
from postroom.services import canned as canned_svc
from postroom.services.users import InvalidField
from postroom.web.admin.pages import actor_of
from postroom.web.deps import AppContext, Auth, CanManageCanned, Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1/canned-responses", tags=["canned responses"])

QueueName = Annotated[str, Field(max_length=200)]


class CannedIn(BaseModel):
    name: str = Field(min_length=1, max_length=canned_svc.NAME_MAX)
    folder: str = Field(
        default="",
        max_length=canned_svc.FOLDER_MAX,
        description='library folder, e.g. "Billing/Refunds" ("" : the top level)',
    )
    text: str = Field(min_length=1, max_length=canned_svc.TEXT_MAX)
    html: str | None = Field(default=None, max_length=canned_svc.HTML_MAX)
    queue: QueueName | None = Field(default=None, description="only for this queue (default: all)")


class CannedPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=canned_svc.NAME_MAX)
    folder: str | None = Field(default=None, max_length=canned_svc.FOLDER_MAX)
    text: str | None = Field(default=None, min_length=1, max_length=canned_svc.TEXT_MAX)
    html: str | None = Field(default=None, max_length=canned_svc.HTML_MAX)
    queue: QueueName | None = None


class RenderIn(BaseModel):
    conversation_id: RowId | None = Field(
        default=None, description="fill in for this conversation (customer, reference, queue)"
    )
    queue: QueueName | None = Field(
        default=None,
        description="without a conversation (a new email): the queue it is sent from",
    )


class PreviewIn(BaseModel):
    text: str = Field(default="", max_length=canned_svc.TEXT_MAX)
    html: str | None = Field(default=None, max_length=canned_svc.HTML_MAX)
    conversation_id: RowId | None = Field(
        default=None, description="fill in for this conversation; else sample values"
    )
    queue: QueueName | None = None


def check_queue(ctx: AppContext, queue: str | None) -> None:
    if queue and ctx.configured.queue(queue) is None:
        raise InvalidField(
            "queue",
            f"queue {queue!r} does not exist; queues: {', '.join(ctx.configured.queue_names)}",
        )


@router.get("")
async def list_canned(
    ctx: Ctx,
    _user: CurrentUser,
    q: Annotated[
        str | None, Query(max_length=200, description="text in name, text or folder")
    ] = None,
    queue: Annotated[str | None, Query(max_length=200)] = None,
    folder: Annotated[
        str | None, Query(max_length=canned_svc.FOLDER_MAX, description="this folder and below")
    ] = None,
) -> dict[str, Any]:
    """The library by folder and name, optionally searched and limited to a queue
    (those for every queue stay) or a folder."""
    items = await anyio.to_thread.run_sync(
        lambda: canned_svc.list_canned(ctx.db, search=q, queue=queue, folder=folder)
    )
    return {"canned_responses": items}


@router.get("/folders")
async def list_folders(ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    """Every folder in use, with the folders above them ("Billing", "Billing/Refunds")."""
    return {"folders": await anyio.to_thread.run_sync(canned_svc.folders, ctx.db)}


@router.post("", status_code=201)
async def add_canned(
    body: CannedIn, ctx: Ctx, principal: Auth, _user: CanManageCanned
) -> dict[str, Any]:
    """Add one. Fields: {customer_name}, {agent_name}, {queue_name}, {reference}."""
    actor = actor_of(principal)
    return await anyio.to_thread.run_sync(
        lambda: canned_svc.create(
            ctx.db, ctx.clock, actor, body.model_dump(), known_queues=ctx.configured.queue_names
        )
    )


@router.post("/preview")
async def preview(body: PreviewIn, ctx: Ctx, user: CanManageCanned) -> dict[str, Any]:
    """An unsaved text and HTML filled in as the composer would: for a conversation
    you can see, or with sample values. Values are escaped in the HTML."""
    check_queue(ctx, body.queue)
    return await anyio.to_thread.run_sync(
        lambda: canned_svc.preview(
            ctx.db,
            user,
            body.text,
            body.html,
            body.conversation_id,
            queue=body.queue or "",
            prefix=ctx.config.reference_prefix,
        )
    )


@router.get("/{canned_id}")
async def get_canned(canned_id: RowId, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(canned_svc.get_canned, ctx.db, canned_id)


@router.put("/{canned_id}")
async def replace_canned(
    canned_id: RowId, body: CannedIn, ctx: Ctx, principal: Auth, _user: CanManageCanned
) -> dict[str, Any]:
    """Replace every field (those left out get their defaults)."""
    actor = actor_of(principal)
    return await anyio.to_thread.run_sync(
        lambda: canned_svc.update(
            ctx.db,
            ctx.clock,
            actor,
            canned_id,
            body.model_dump(),
            known_queues=ctx.configured.queue_names,
        )
    )


@router.patch("/{canned_id}")
async def change_canned(
    canned_id: RowId, body: CannedPatch, ctx: Ctx, principal: Auth, _user: CanManageCanned
) -> dict[str, Any]:
    """Change the fields given; `null` clears html or queue."""
    actor = actor_of(principal)
    changes = body.model_dump(include=body.model_fields_set)
    for required in ("name", "text"):
        if required in changes and changes[required] is None:
            raise InvalidField(required, "may not be null; leave it out to keep it")
    if changes.get("folder", "") is None:
        changes["folder"] = ""
    return await anyio.to_thread.run_sync(
        lambda: canned_svc.update(
            ctx.db, ctx.clock, actor, canned_id, changes, known_queues=ctx.configured.queue_names
        )
    )


@router.delete("/{canned_id}", status_code=204)
async def delete_canned(
    canned_id: RowId, ctx: Ctx, principal: Auth, _user: CanManageCanned
) -> None:
    actor = actor_of(principal)
    await anyio.to_thread.run_sync(lambda: canned_svc.delete(ctx.db, ctx.clock, actor, canned_id))


@router.post("/{canned_id}/render")
async def render(canned_id: RowId, body: RenderIn, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """The text with the fields filled in for one conversation you can see, or for a new
    email from `queue` (no customer name or reference yet)."""
    if body.conversation_id is None and body.queue is None:
        raise PostroomError("give conversation_id, or queue for a new email")
    check_queue(ctx, body.queue)
    return await anyio.to_thread.run_sync(
        lambda: canned_svc.render(
            ctx.db,
            user,
            canned_id,
            body.conversation_id,
            queue=body.queue or "",
            prefix=ctx.config.reference_prefix,
        )
    )

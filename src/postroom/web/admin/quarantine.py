"""Quarantine over HTTP: the API (`/api/v1/quarantine`) and the admin page
(`/admin/quarantine`): list with filters, one message with its headers, retry,
hold, discard, and the loop guard's release of one sender.

Translation to HTTP only: the rules and the audit entries live in
services/quarantine.py. A retry here marks the message pending; the pipeline
role takes it (the CLI runs it at once instead).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from postroom.domain.errors import NotFoundError, PostroomError
from postroom.domain.permissions import Permission
from postroom.services import quarantine as q_svc
from postroom.web.admin import pages as shell
from postroom.web.deps import Auth, CanManageQuarantine, Ctx, RowId, get_ctx, needs

api = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"])
pages = APIRouter(include_in_schema=False)


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=1000, description="why (kept with the message)")


class RetryManyIn(BaseModel):
    ids: list[RowId] = Field(min_length=1, max_length=100, description="message ids, up to 100")


class ReleaseIn(BaseModel):
    sender: str | None = Field(
        default=None, min_length=3, max_length=320, description="the sender's address"
    )
    message_id: RowId | None = Field(
        default=None, description="a quarantined message: release its sender"
    )


@api.get("")
async def list_quarantine(
    ctx: Ctx,
    _user: CanManageQuarantine,
    pending: bool = False,
    stage: Annotated[str | None, Query(max_length=20)] = None,
    reason: Annotated[str | None, Query(max_length=200, description="text in the reason")] = None,
    sender: Annotated[str | None, Query(max_length=320)] = None,
    after: Annotated[RowId | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=q_svc.PAGE_MAX)] = 50,
) -> dict[str, Any]:
    """Quarantined messages (or, with `pending`, those waiting for the pipeline),
    oldest first; page on with `after` = `next_cursor`."""
    found = await anyio.to_thread.run_sync(
        lambda: q_svc.search(
            ctx.db,
            pending=pending,
            stage=stage,
            reason=reason,
            sender=sender,
            after=after,
            limit=limit,
        )
    )
    return {"messages": [e.to_json() for e in found.entries], "next_cursor": found.next_cursor}


@api.post("/retry")
async def retry_many(
    body: RetryManyIn, ctx: Ctx, principal: Auth, _user: CanManageQuarantine
) -> dict[str, Any]:
    """Retry several quarantined messages (as `postroom quarantine retry ID ...`), each
    in its own transaction: `{"retried": [ids], "refused": {"id": "why"}}`."""
    actor = shell.actor_of(principal)

    def run() -> dict[str, Any]:
        retried: list[int] = []
        refused: dict[str, str] = {}
        for pk in dict.fromkeys(body.ids):
            try:
                q_svc.release(ctx.db, pk, ctx.clock, actor=actor)
                retried.append(pk)
            except NotFoundError as exc:
                refused[str(pk)] = str(exc)
        return {"retried": retried, "refused": refused}

    return await anyio.to_thread.run_sync(run)


@api.get("/{message_id}")
async def show(message_id: RowId, ctx: Ctx, _user: CanManageQuarantine) -> dict[str, Any]:
    """One quarantined or pending message: stage, reason, size, envelope, arrival,
    attempts and its header fields."""
    return await anyio.to_thread.run_sync(q_svc.detail, ctx.db, ctx.blobs, message_id)


@api.get("/{message_id}/raw", response_class=Response)
async def raw(message_id: RowId, ctx: Ctx, _user: CanManageQuarantine) -> Response:
    """The message's bytes as received, as a download (never shown inline)."""
    data = await anyio.to_thread.run_sync(q_svc.raw_message, ctx.db, ctx.blobs, message_id)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="message-{message_id}.eml"'},
    )


@api.post("/{message_id}/retry")
async def retry(
    message_id: RowId, ctx: Ctx, principal: Auth, _user: CanManageQuarantine
) -> dict[str, Any]:
    """Send a quarantined message through the pipeline again (it skips the loop guard
    once); it is `pending` until the pipeline has taken it."""
    actor = shell.actor_of(principal)
    await anyio.to_thread.run_sync(
        lambda: q_svc.release(ctx.db, message_id, ctx.clock, actor=actor)
    )
    return {"id": message_id, "status": "pending"}


@api.post("/{message_id}/hold")
async def hold(
    message_id: RowId, body: ReasonIn, ctx: Ctx, principal: Auth, _user: CanManageQuarantine
) -> dict[str, Any]:
    """Quarantine a pending message so the pipeline leaves it alone."""
    actor = shell.actor_of(principal)
    await anyio.to_thread.run_sync(
        lambda: q_svc.hold(ctx.db, message_id, ctx.clock, body.reason, actor=actor)
    )
    return {"id": message_id, "status": "quarantined"}


@api.post("/{message_id}/discard")
async def discard(
    message_id: RowId, body: ReasonIn, ctx: Ctx, principal: Auth, _user: CanManageQuarantine
) -> dict[str, Any]:
    """Discard a quarantined or pending message: kept, never processed."""
    actor = shell.actor_of(principal)
    await anyio.to_thread.run_sync(
        lambda: q_svc.discard(ctx.db, message_id, ctx.clock, body.reason, actor=actor)
    )
    return {"id": message_id, "status": "discarded"}


@api.post("/loop-guard/release")
async def release_loop_guard(
    body: ReleaseIn, ctx: Ctx, principal: Auth, _user: CanManageQuarantine
) -> dict[str, Any]:
    """Retry every message the loop guard holds from one sender: give `sender`, or
    `message_id` of one of them. Each skips the guard once."""
    if (body.sender is None) == (body.message_id is None):
        raise PostroomError("give either sender (an address) or message_id")
    actor = shell.actor_of(principal)
    ids = await anyio.to_thread.run_sync(
        lambda: q_svc.release_loop_guard(
            ctx.db, ctx.clock, sender=body.sender, message_id=body.message_id, actor=actor
        )
    )
    return {"released": ids}


# -- the page --------------------------------------------------------------------------

SECTION = "/admin/quarantine"
NOTICES = {
    "retried": "Message {id} is pending again; the pipeline takes it within a few seconds.",
    "held": "Message {id} is held in quarantine.",
    "discarded": "Message {id} is discarded.",
    "released": "The loop guard released {count} message(s) from that sender.",
    "retried_many": "{count} message(s) are pending again; the pipeline takes them within a "
    "few seconds.",
}


def _notice(request: Request) -> str:
    template = NOTICES.get(request.query_params.get("done", ""))
    if template is None:
        return ""
    ident = request.query_params.get("id", "")
    count = request.query_params.get("count", "")
    return template.format(
        id=ident if ident.isdigit() else "", count=count if count.isdigit() else ""
    )


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.MANAGE_QUARANTINE))
async def quarantine_page(
    request: Request,
    pending: bool = False,
    stage: Annotated[str | None, Query(max_length=20)] = None,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    after: RowId | None = None,
) -> Response:
    found = await shell.guard(request, Permission.MANAGE_QUARANTINE)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)

    def read() -> tuple[q_svc.Page, list[str]]:
        return (
            q_svc.search(ctx.db, pending=pending, stage=stage or None, reason=reason, after=after),
            q_svc.stages(ctx.db),
        )

    result, known = await anyio.to_thread.run_sync(read)
    filters = {"pending": "true" if pending else "", "stage": stage or "", "reason": reason or ""}
    next_url = None
    if result.next_cursor is not None:
        query = {k: v for k, v in filters.items() if v} | {"after": str(result.next_cursor)}
        next_url = f"{SECTION}?{urlencode(query)}"
    return shell.page(
        request,
        found,
        "admin/quarantine.html",
        section=SECTION,
        title="Quarantine",
        entries=result.entries,
        stages=known,
        filters=filters,
        pending=pending,
        next_url=next_url,
        notice=_notice(request),
    )


async def _detail_page(
    request: Request, message_id: int, *, errors: dict[str, str] | None = None, status: int = 200
) -> Response:
    found = await shell.guard(request, Permission.MANAGE_QUARANTINE)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    try:
        item = await anyio.to_thread.run_sync(q_svc.detail, ctx.db, ctx.blobs, message_id)
    except NotFoundError as exc:
        return shell.page(
            request,
            found,
            "admin/quarantine_gone.html",
            section=SECTION,
            status_code=404,
            title=f"Message {message_id}",
            reason=str(exc),
        )
    return shell.page(
        request,
        found,
        "admin/quarantine_detail.html",
        section=SECTION,
        status_code=status,
        title=f"Message {message_id}",
        item=item,
        errors=errors or {},
        notice=_notice(request),
    )


@pages.get(
    SECTION + "/{message_id}",
    response_model=None,
    openapi_extra=needs(Permission.MANAGE_QUARANTINE),
)
async def quarantine_detail(message_id: RowId, request: Request) -> Response:
    return await _detail_page(request, message_id)


def _done(what: str, **values: Any) -> Response:
    target = SECTION + "?" + urlencode({"done": what, **values})
    return RedirectResponse(target, status_code=303)


@pages.post(
    SECTION + "/retry", response_model=None, openapi_extra=needs(Permission.MANAGE_QUARANTINE)
)
async def quarantine_retry_shown(request: Request) -> Response:
    """The list's "Retry all shown" button: the ids of the page's rows."""
    found = await shell.guard(request, Permission.MANAGE_QUARANTINE)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    actor = shell.actor_of(found)
    form = await request.form()
    ids = [int(v) for v in form.getlist("id") if isinstance(v, str) and v.isdigit() and len(v) < 10]

    def run() -> int:
        done = 0
        for pk in dict.fromkeys(ids[: q_svc.PAGE_MAX]):
            try:
                q_svc.release(ctx.db, pk, ctx.clock, actor=actor)
                done += 1
            except NotFoundError:
                pass  # taken or changed meanwhile
        return done

    return _done("retried_many", count=await anyio.to_thread.run_sync(run))


@pages.post(
    SECTION + "/{message_id}/{action}",
    response_model=None,
    openapi_extra=needs(Permission.MANAGE_QUARANTINE),
)
async def quarantine_act(message_id: RowId, action: str, request: Request) -> Response:
    """The detail page's buttons: retry, hold, discard (confirmed) and release."""
    found = await shell.guard(request, Permission.MANAGE_QUARANTINE)
    if isinstance(found, Response):
        return found
    if action not in ("retry", "hold", "discard", "release"):
        return Response("unknown action", status_code=404, media_type="text/plain")
    ctx = get_ctx(request)
    actor = shell.actor_of(found)
    form = await shell.form_values(request)
    reason = (form.get(f"{action}.reason") or form.get("reason") or "").strip()
    if len(reason) > 1000:
        return await _detail_page(
            request,
            message_id,
            errors={f"{action}.reason": "Keep the reason under 1000 characters."},
            status=422,
        )
    if action == "discard" and "true" not in (form.get("discard.confirm"), form.get("confirm")):
        return await _detail_page(
            request,
            message_id,
            errors={
                "discard.confirm": "Tick the box to confirm: a discarded message is "
                "never processed."
            },
            status=422,
        )
    try:
        if action == "retry":
            await anyio.to_thread.run_sync(
                lambda: q_svc.release(ctx.db, message_id, ctx.clock, actor=actor)
            )
            return _done("retried", id=message_id)
        if action == "hold":
            await anyio.to_thread.run_sync(
                lambda: q_svc.hold(ctx.db, message_id, ctx.clock, reason, actor=actor)
            )
            return _done("held", id=message_id)
        if action == "discard":
            await anyio.to_thread.run_sync(
                lambda: q_svc.discard(ctx.db, message_id, ctx.clock, reason, actor=actor)
            )
            return _done("discarded", id=message_id)
        ids = await anyio.to_thread.run_sync(
            lambda: q_svc.release_loop_guard(ctx.db, ctx.clock, message_id=message_id, actor=actor)
        )
        return _done("released", count=len(ids))
    except PostroomError as exc:
        return await _detail_page(request, message_id, errors={action: str(exc)}, status=409)

"""The canned response library's admin page (`/admin/canned`): folders, search,
the editor with a live substitution preview (htmx), delete with confirmation.

The API is web/api_canned.py; both validate with its models and call
services/canned.py, which checks values and writes the audit entries. Forms
keep what was typed on an error and show each message beside its field.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from postroom.domain.errors import NotFoundError
from postroom.domain.permissions import Permission
from postroom.services import canned as canned_svc
from postroom.services.users import InvalidField
from postroom.web.admin import pages as shell
from postroom.web.api_canned import CannedIn, PreviewIn
from postroom.web.deps import RowId, get_ctx, needs

pages = APIRouter(include_in_schema=False)

SECTION = "/admin/canned"
FIELDS = ("name", "folder", "queue", "text", "html")


def _tree(folders: list[str], current: str) -> list[dict[str, Any]]:
    return [
        {
            "path": path,
            "label": path.rsplit("/", 1)[-1],
            "depth": path.count("/"),
            "current": path == current,
        }
        for path in folders
    ]


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.MANAGE_CANNED))
async def library(
    request: Request,
    q: Annotated[str | None, Query(max_length=200)] = None,
    folder: Annotated[str | None, Query(max_length=canned_svc.FOLDER_MAX)] = None,
) -> Response:
    found = await shell.guard(request, Permission.MANAGE_CANNED)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    try:
        current = canned_svc.normalize_folder(folder) if folder else ""
    except InvalidField:
        current = ""  # not a folder anyone could have made: show the whole library

    def read() -> tuple[list[dict[str, Any]], list[str]]:
        return (
            canned_svc.list_canned(ctx.db, search=q, folder=current or None),
            canned_svc.folders(ctx.db),
        )

    items, folders = await anyio.to_thread.run_sync(read)
    done = request.query_params.get("done")
    return shell.page(
        request,
        found,
        "admin/canned.html",
        section=SECTION,
        title="Canned responses",
        items=items,
        tree=_tree(folders, current),
        folder=current,
        q=q or "",
        notice="The canned response is deleted." if done == "deleted" else "",
        new_url=SECTION + "/new" + (f"?{urlencode({'folder': current})}" if current else ""),
    )


async def _editor(
    request: Request,
    *,
    item_id: int | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice: str = "",
) -> Response:
    found = await shell.guard(request, Permission.MANAGE_CANNED)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    folders = await anyio.to_thread.run_sync(canned_svc.folders, ctx.db)
    return shell.page(
        request,
        found,
        "admin/canned_edit.html",
        section=SECTION,
        status_code=status,
        title="New canned response" if item_id is None else f"Edit “{values.get('name', '')}”",
        item_id=item_id,
        values=values,
        errors=errors or {},
        folders=folders,
        queues=ctx.configured.queue_names,
        fields=canned_svc.FIELDS,
        notice=notice,
        action=SECTION + ("/new" if item_id is None else f"/{item_id}"),
    )


@pages.get(SECTION + "/new", response_model=None, openapi_extra=needs(Permission.MANAGE_CANNED))
async def new(
    request: Request, folder: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    blank = {"name": "", "folder": folder or "", "queue": "", "text": "", "html": ""}
    return await _editor(request, item_id=None, values=blank)


@pages.get(
    SECTION + "/{canned_id}", response_model=None, openapi_extra=needs(Permission.MANAGE_CANNED)
)
async def edit(canned_id: RowId, request: Request) -> Response:
    found = await shell.guard(request, Permission.MANAGE_CANNED)
    if isinstance(found, Response):
        return found
    try:
        item = await anyio.to_thread.run_sync(canned_svc.get_canned, get_ctx(request).db, canned_id)
    except NotFoundError as exc:
        return shell.page(
            request,
            found,
            "admin/forbidden.html",
            section=SECTION,
            status_code=404,
            title="Not found",
            reason=str(exc) + ".",
        )
    values = {k: item.get(k) or "" for k in FIELDS}
    notice = "Saved." if request.query_params.get("done") == "saved" else ""
    return await _editor(request, item_id=canned_id, values=values, notice=notice)


async def _save(request: Request, canned_id: int | None) -> Response:
    found = await shell.guard(request, Permission.MANAGE_CANNED)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    form = await shell.form_values(request)
    values: dict[str, Any] = {k: form.get(k, "") for k in FIELDS}
    try:
        body = CannedIn.model_validate(
            values | {"html": values["html"] or None, "queue": values["queue"] or None}
        )
    except ValidationError as exc:
        return await _editor(
            request, item_id=canned_id, values=values, errors=shell.form_errors(exc), status=422
        )
    actor = shell.actor_of(found)
    try:
        if canned_id is None:
            saved = await anyio.to_thread.run_sync(
                lambda: canned_svc.create(
                    ctx.db,
                    ctx.clock,
                    actor,
                    body.model_dump(),
                    known_queues=ctx.configured.queue_names,
                )
            )
        else:
            saved = await anyio.to_thread.run_sync(
                lambda: canned_svc.update(
                    ctx.db,
                    ctx.clock,
                    actor,
                    canned_id,
                    body.model_dump(),
                    known_queues=ctx.configured.queue_names,
                )
            )
    except InvalidField as exc:
        return await _editor(
            request, item_id=canned_id, values=values, errors={exc.field: str(exc)}, status=422
        )
    return RedirectResponse(f"{SECTION}/{saved['id']}?done=saved", status_code=303)


@pages.post(SECTION + "/new", response_model=None, openapi_extra=needs(Permission.MANAGE_CANNED))
async def create(request: Request) -> Response:
    return await _save(request, None)


@pages.post(
    SECTION + "/preview", response_model=None, openapi_extra=needs(Permission.MANAGE_CANNED)
)
async def preview(request: Request) -> Response:
    """The editor's live preview (an htmx fragment): the text and HTML as typed,
    filled in with sample values (or the queue chosen)."""
    found = await shell.guard(request, Permission.MANAGE_CANNED)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    form = await shell.form_values(request)
    queue = form.get("queue") or None
    if queue is not None and ctx.configured.queue(queue) is None:
        queue = None
    try:
        body = PreviewIn.model_validate(
            {"text": form.get("text", ""), "html": form.get("html") or None, "queue": queue}
        )
    except ValidationError as exc:
        return shell.templates.TemplateResponse(
            request,
            "admin/_canned_preview.html",
            {"result": None, "errors": shell.form_errors(exc)},
            status_code=422,
        )
    user = found.user
    result = await anyio.to_thread.run_sync(
        lambda: canned_svc.preview(
            ctx.db,
            user,
            body.text,
            body.html,
            None,
            queue=body.queue or "",
            prefix=ctx.config.reference_prefix,
        )
    )
    return shell.templates.TemplateResponse(
        request, "admin/_canned_preview.html", {"result": result, "errors": {}}
    )


@pages.post(
    SECTION + "/{canned_id}", response_model=None, openapi_extra=needs(Permission.MANAGE_CANNED)
)
async def save(canned_id: RowId, request: Request) -> Response:
    return await _save(request, canned_id)


@pages.post(
    SECTION + "/{canned_id}/delete",
    response_model=None,
    openapi_extra=needs(Permission.MANAGE_CANNED),
)
async def delete(canned_id: RowId, request: Request) -> Response:
    found = await shell.guard(request, Permission.MANAGE_CANNED)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    form = await shell.form_values(request)
    if form.get("delete.confirm") != "true":
        item = await anyio.to_thread.run_sync(canned_svc.get_canned, ctx.db, canned_id)
        return await _editor(
            request,
            item_id=canned_id,
            values={k: item.get(k) or "" for k in FIELDS},
            errors={"delete.confirm": "Tick the box to confirm: agents can no longer use it."},
            status=422,
        )
    actor = shell.actor_of(found)
    await anyio.to_thread.run_sync(lambda: canned_svc.delete(ctx.db, ctx.clock, actor, canned_id))
    return RedirectResponse(f"{SECTION}?done=deleted", status_code=303)

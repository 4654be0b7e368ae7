"""Routes over HTTP: the admin API (`/api/v1/routing/routes`) and the admin page
`/admin/routes`, which also shows the rules (web/admin/rules.py) and the dry-run
box (web/admin/dryrun.py) beside them.

Translation to HTTP only: validation is the shared schema's, the checks
against what is stored (the queue exists, the address is free) are
services/admin/routes.py's. Reads need `view_config`, changes `configure`.
After a change this process re-reads the configuration at once
(`ctx.live.refresh()`); other processes within half a second.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError

from postroom.domain.errors import ConflictError, InvalidConfigField, NotFoundError
from postroom.domain.permissions import Permission
from postroom.services.admin import routes as svc
from postroom.services.admin import rules as rule_svc
from postroom.services.admin.ordered import MAX_ITEMS
from postroom.services.admin.schema import RouteChange
from postroom.web.admin import forms
from postroom.web.admin import pages as shell
from postroom.web.deps import (
    Auth,
    CanConfigure,
    CanViewConfig,
    Ctx,
    Principal,
    RowId,
    get_ctx,
    needs,
)

api = APIRouter(prefix="/api/v1/routing/routes", tags=["routing"])
pages = APIRouter(include_in_schema=False)
SECTION = "/admin/routes"


class Order(BaseModel):
    ids: list[RowId] = Field(max_length=MAX_ITEMS, description="every id once, in the new order")


class Move(BaseModel):
    direction: Literal["up", "down"]


# -- the API ---------------------------------------------------------------------------


@api.get("")
async def list_routes(
    ctx: Ctx,
    _user: CanViewConfig,
    address: Annotated[str | None, Query(max_length=320)] = None,
) -> dict[str, Any]:
    """Every route in order (exact addresses are matched before `*@domain` ones
    anyway); with `address`, only the route with that address. IMAP passwords are
    never shown (`imap.password_set` says whether one is stored)."""
    if address is not None:
        found = await anyio.to_thread.run_sync(svc.find_route, ctx.db, address)
        return {"routes": [found]}
    return {"routes": await anyio.to_thread.run_sync(svc.list_routes, ctx.db)}


@api.post("", status_code=201)
async def create_route(
    body: RouteChange,
    ctx: Ctx,
    _user: CanConfigure,
    principal: Auth,
    position: Annotated[int | None, Query(ge=0, le=MAX_ITEMS)] = None,
) -> dict[str, Any]:
    """Add a route (last, or at `position` from 0). Its queue must exist. Mail to
    its address is accepted and routed from the next message on, on every node."""
    out = await anyio.to_thread.run_sync(
        lambda: svc.create_route(
            ctx.db, ctx.clock(), shell.actor_of(principal), body, position=position
        )
    )
    shell.refreshed(ctx)
    return out


@api.post("/order")
async def reorder_routes(
    body: Order, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Put the routes in this order (every route id once)."""
    out = await anyio.to_thread.run_sync(
        lambda: svc.reorder_routes(ctx.db, ctx.clock(), shell.actor_of(principal), body.ids)
    )
    shell.refreshed(ctx)
    return {"routes": out}


@api.get("/{route_id}")
async def get_route(route_id: RowId, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(svc.get_route, ctx.db, route_id)


@api.put("/{route_id}")
async def update_route(
    route_id: RowId, body: RouteChange, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Replace the route's settings. Leave out `imap.password` (or send null) to
    keep the stored password."""
    out = await anyio.to_thread.run_sync(
        lambda: svc.update_route(ctx.db, ctx.clock(), shell.actor_of(principal), route_id, body)
    )
    shell.refreshed(ctx)
    return out


@api.delete("/{route_id}", status_code=204)
async def delete_route(route_id: RowId, ctx: Ctx, _user: CanConfigure, principal: Auth) -> None:
    await anyio.to_thread.run_sync(
        lambda: svc.delete_route(ctx.db, ctx.clock(), shell.actor_of(principal), route_id)
    )
    shell.refreshed(ctx)


@api.post("/{route_id}/move")
async def move_route(
    route_id: RowId, body: Move, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Move one route up or down one place."""
    delta = -1 if body.direction == "up" else 1
    out = await anyio.to_thread.run_sync(
        lambda: svc.move_route(ctx.db, ctx.clock(), shell.actor_of(principal), route_id, delta)
    )
    shell.refreshed(ctx)
    return {"routes": out}


# -- the page (routes, rules and the dry run) -------------------------------------------


def render(
    request: Request,
    principal: Principal,
    *,
    status_code: int = 200,
    **values: Any,
) -> Response:
    """The routes and rules page; `values` replace the defaults (forms, errors, ...)."""
    ctx = get_ctx(request)
    defaults: dict[str, Any] = {
        "routes": svc.list_routes(ctx.db),
        "rules": rule_svc.list_rules(ctx.db),
        "queue_names": ctx.configured.queue_names,
        "editing_route": None,
        "route_form": forms.route_values(None),
        "route_errors": {},
        "editing_rule": None,
        "rule_form": forms.rule_values(None),
        "rule_errors": {},
        "dry": None,
        "dry_form": {"raw": "", "envelope_to": ""},
        "dry_error": None,
        "notice": None,
    }
    return shell.page(
        request,
        principal,
        "admin/routes.html",
        section=SECTION,
        status_code=status_code,
        title="Routes and rules",
        **(defaults | values),
    )


def route_problem(
    exc: ValidationError | InvalidConfigField | ConflictError | forms.FormProblem,
) -> dict[str, str]:
    if isinstance(exc, ValidationError):
        raw = shell.form_errors(exc)
    else:
        raw = {exc.field or "": str(exc)}
    return forms.place(raw, forms.ROUTE_FORM_FIELDS)


async def _view(request: Request) -> Principal | Response:
    return await shell.guard(request, Permission.VIEW_CONFIG)


async def _change(request: Request) -> Principal | Response:
    return await shell.guard(request, Permission.CONFIGURE)


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def routes_page(request: Request) -> Response:
    found = await _view(request)
    if isinstance(found, Response):
        return found
    notice = request.query_params.get("saved")
    message = {"route": "Route saved.", "rule": "Rule saved.", "deleted": "Deleted."}.get(
        notice or ""
    )
    return await anyio.to_thread.run_sync(lambda: render(request, found, notice=message))


def _save_route(
    request: Request, principal: Principal, route_id: int | None, values: dict[str, Any]
) -> Response:
    ctx = get_ctx(request)
    editing = None
    if route_id is not None:
        try:
            editing = svc.get_route(ctx.db, route_id)
        except NotFoundError as exc:
            return render(request, principal, status_code=404, notice=str(exc))
        values["imap.password_set"] = bool((editing.get("imap") or {}).get("password_set"))

    def again(errors: dict[str, str]) -> Response:
        return render(
            request,
            principal,
            status_code=422,
            editing_route=editing,
            route_form=values,
            route_errors=errors,
        )

    try:
        change = RouteChange.model_validate(forms.route_data(values), strict=False)
        if route_id is None:
            svc.create_route(ctx.db, ctx.clock(), shell.actor_of(principal), change)
        else:
            svc.update_route(ctx.db, ctx.clock(), shell.actor_of(principal), route_id, change)
    except (ValidationError, InvalidConfigField, ConflictError, forms.FormProblem) as exc:
        return again(route_problem(exc))
    shell.refreshed(ctx)
    return RedirectResponse(f"{SECTION}?saved=route", status_code=303)


@pages.post(SECTION, response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def create_from_page(request: Request) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    values = forms.route_form(await request.form())
    return await anyio.to_thread.run_sync(lambda: _save_route(request, found, None, values))


@pages.get(
    SECTION + "/{route_id}", response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG)
)
async def edit_page(request: Request, route_id: RowId) -> Response:
    found = await _view(request)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            route = svc.get_route(ctx.db, route_id)
        except NotFoundError as exc:
            return render(request, found, status_code=404, notice=str(exc))
        return render(request, found, editing_route=route, route_form=forms.route_values(route))

    return await anyio.to_thread.run_sync(run)


@pages.post(SECTION + "/{route_id}", response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def update_from_page(request: Request, route_id: RowId) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    values = forms.route_form(await request.form())
    return await anyio.to_thread.run_sync(lambda: _save_route(request, found, route_id, values))


@pages.post(
    SECTION + "/{route_id}/move", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def move_from_page(request: Request, route_id: RowId) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    form = await request.form()
    delta = -1 if forms.text(form, "direction") == "up" else 1
    ctx = get_ctx(request)
    with contextlib.suppress(NotFoundError):
        await anyio.to_thread.run_sync(
            lambda: svc.move_route(ctx.db, ctx.clock(), shell.actor_of(found), route_id, delta)
        )
        shell.refreshed(ctx)
    return RedirectResponse(f"{SECTION}#routes-title", status_code=303)


@pages.post(
    SECTION + "/{route_id}/delete", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def delete_from_page(request: Request, route_id: RowId) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    with contextlib.suppress(NotFoundError):  # already gone: the list says so
        await anyio.to_thread.run_sync(
            lambda: svc.delete_route(ctx.db, ctx.clock(), shell.actor_of(found), route_id)
        )
        shell.refreshed(ctx)
    return RedirectResponse(f"{SECTION}?saved=deleted", status_code=303)

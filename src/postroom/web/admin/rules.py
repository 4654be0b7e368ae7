"""Rules over HTTP: the admin API (`/api/v1/routing/rules`) and the rule forms of
the routes page (`/admin/rules/...`, shown on `/admin/routes`).

Translation to HTTP only: validation is the shared schema's (RuleModel), the
checks against what is stored are services/admin/rules.py's. Reads need
`view_config`, changes `configure`.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from postroom.domain.errors import ConflictError, InvalidConfigField, NotFoundError
from postroom.domain.permissions import Permission
from postroom.services.admin import rules as svc
from postroom.services.admin.ordered import MAX_ITEMS
from postroom.services.admin.schema import RuleModel
from postroom.web.admin import forms
from postroom.web.admin import pages as shell
from postroom.web.admin.routes import Move, Order, render
from postroom.web.deps import (
    AppContext,
    Auth,
    CanConfigure,
    CanViewConfig,
    Ctx,
    Principal,
    RowId,
    get_ctx,
    needs,
)

api = APIRouter(prefix="/api/v1/routing/rules", tags=["routing"])
pages = APIRouter(include_in_schema=False)
PAGE = "/admin/rules"
BACK = "/admin/routes"


@api.get("")
async def list_rules(ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    """Every rule in evaluation order, disabled ones included (`enabled: false`)."""
    return {"rules": await anyio.to_thread.run_sync(svc.list_rules, ctx.db)}


@api.post("", status_code=201)
async def create_rule(
    body: RuleModel,
    ctx: Ctx,
    _user: CanConfigure,
    principal: Auth,
    position: Annotated[int | None, Query(ge=0, le=MAX_ITEMS)] = None,
) -> dict[str, Any]:
    """Add a rule, evaluated last (or at `position` from 0). Conditions and actions:
    docs/intake.md "Rules". A queue action must name an existing queue."""
    out = await anyio.to_thread.run_sync(
        lambda: svc.create_rule(
            ctx.db, ctx.clock(), shell.actor_of(principal), body, position=position
        )
    )
    shell.refreshed(ctx)
    return out


@api.post("/order")
async def reorder_rules(
    body: Order, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Evaluate the rules in this order (every rule id once)."""
    out = await anyio.to_thread.run_sync(
        lambda: svc.reorder_rules(ctx.db, ctx.clock(), shell.actor_of(principal), body.ids)
    )
    shell.refreshed(ctx)
    return {"rules": out}


@api.get("/{rule_id}")
async def get_rule(rule_id: RowId, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(svc.get_rule, ctx.db, rule_id)


@api.put("/{rule_id}")
async def update_rule(
    rule_id: RowId, body: RuleModel, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Replace the rule (name, conditions, actions, enabled); its place stays."""
    out = await anyio.to_thread.run_sync(
        lambda: svc.update_rule(ctx.db, ctx.clock(), shell.actor_of(principal), rule_id, body)
    )
    shell.refreshed(ctx)
    return out


@api.delete("/{rule_id}", status_code=204)
async def delete_rule(rule_id: RowId, ctx: Ctx, _user: CanConfigure, principal: Auth) -> None:
    await anyio.to_thread.run_sync(
        lambda: svc.delete_rule(ctx.db, ctx.clock(), shell.actor_of(principal), rule_id)
    )
    shell.refreshed(ctx)


async def _enabled(ctx: AppContext, principal: Principal, rule_id: int, on: bool) -> Any:
    out = await anyio.to_thread.run_sync(
        lambda: svc.set_enabled(ctx.db, ctx.clock(), shell.actor_of(principal), rule_id, on)
    )
    shell.refreshed(ctx)
    return out


@api.post("/{rule_id}/enable")
async def enable_rule(
    rule_id: RowId, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Evaluate the rule again (in its place)."""
    out: dict[str, Any] = await _enabled(ctx, principal, rule_id, True)
    return out


@api.post("/{rule_id}/disable")
async def disable_rule(
    rule_id: RowId, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Stop evaluating the rule; it keeps its place and settings."""
    out: dict[str, Any] = await _enabled(ctx, principal, rule_id, False)
    return out


@api.post("/{rule_id}/move")
async def move_rule(
    rule_id: RowId, body: Move, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Move one rule up (evaluated earlier) or down one place."""
    delta = -1 if body.direction == "up" else 1
    out = await anyio.to_thread.run_sync(
        lambda: svc.move_rule(ctx.db, ctx.clock(), shell.actor_of(principal), rule_id, delta)
    )
    shell.refreshed(ctx)
    return {"rules": out}


# -- the rule forms on the routes page --------------------------------------------------


def _save(
    request: Request,
    principal: Principal,
    rule_id: int | None,
    values: dict[str, Any],
    *,
    only_show: bool,
) -> Response:
    ctx = get_ctx(request)
    editing = None
    if rule_id is not None:
        try:
            editing = svc.get_rule(ctx.db, rule_id)
        except NotFoundError as exc:
            return render(request, principal, status_code=404, notice=str(exc))
    if only_show:  # a condition row added or removed: show the form again, nothing saved
        return render(request, principal, editing_rule=editing, rule_form=values)
    fields = forms.rule_fields(len(values["when"]))
    try:
        model = RuleModel.model_validate(forms.rule_data(values), strict=False)
        if rule_id is None:
            svc.create_rule(ctx.db, ctx.clock(), shell.actor_of(principal), model)
        else:
            svc.update_rule(ctx.db, ctx.clock(), shell.actor_of(principal), rule_id, model)
    except (ValidationError, InvalidConfigField, ConflictError, forms.FormProblem) as exc:
        raw = (
            shell.form_errors(exc)
            if isinstance(exc, ValidationError)
            else {exc.field or "": str(exc)}
        )
        return render(
            request,
            principal,
            status_code=422,
            editing_rule=editing,
            rule_form=values,
            rule_errors=forms.place(raw, fields),
        )
    shell.refreshed(ctx)
    return RedirectResponse(f"{BACK}?saved=rule#rules-title", status_code=303)


async def _form(request: Request) -> tuple[dict[str, Any], bool]:
    """The typed values, and whether a condition row was only added or removed (then
    the form is shown again, nothing saved)."""
    form = await request.form()
    add = forms.text(form, "add_condition") == "1"
    remove = forms.text(form, "remove_condition")
    row = int(remove) if remove.isdigit() and len(remove) < 4 else None
    return forms.rule_form(form, add_row=add, remove_row=row), add or row is not None


async def _change(request: Request) -> Principal | Response:
    return await shell.guard(request, Permission.CONFIGURE)


@pages.post(PAGE, response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def create_from_page(request: Request) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    values, only_show = await _form(request)
    return await anyio.to_thread.run_sync(
        lambda: _save(request, found, None, values, only_show=only_show)
    )


@pages.get(PAGE + "/{rule_id}", response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def edit_page(request: Request, rule_id: RowId) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            rule = svc.get_rule(ctx.db, rule_id)
        except NotFoundError as exc:
            return render(request, found, status_code=404, notice=str(exc))
        return render(request, found, editing_rule=rule, rule_form=forms.rule_values(rule))

    return await anyio.to_thread.run_sync(run)


@pages.post(PAGE + "/{rule_id}", response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def update_from_page(request: Request, rule_id: RowId) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    values, only_show = await _form(request)
    return await anyio.to_thread.run_sync(
        lambda: _save(request, found, rule_id, values, only_show=only_show)
    )


@pages.post(
    PAGE + "/{rule_id}/move", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def move_from_page(request: Request, rule_id: RowId) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    form = await request.form()
    delta = -1 if forms.text(form, "direction") == "up" else 1
    ctx = get_ctx(request)
    with contextlib.suppress(NotFoundError):
        await anyio.to_thread.run_sync(
            lambda: svc.move_rule(ctx.db, ctx.clock(), shell.actor_of(found), rule_id, delta)
        )
        shell.refreshed(ctx)
    return RedirectResponse(f"{BACK}#rules-title", status_code=303)


@pages.post(
    PAGE + "/{rule_id}/enabled", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def toggle_from_page(request: Request, rule_id: RowId) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    form = await request.form()
    on = forms.text(form, "enabled") == "true"
    ctx = get_ctx(request)
    with contextlib.suppress(NotFoundError):
        await anyio.to_thread.run_sync(
            lambda: svc.set_enabled(ctx.db, ctx.clock(), shell.actor_of(found), rule_id, on)
        )
        shell.refreshed(ctx)
    return RedirectResponse(f"{BACK}#rules-title", status_code=303)


@pages.post(
    PAGE + "/{rule_id}/delete", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def delete_from_page(request: Request, rule_id: RowId) -> Response:
    found = await _change(request)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    with contextlib.suppress(NotFoundError):
        await anyio.to_thread.run_sync(
            lambda: svc.delete_rule(ctx.db, ctx.clock(), shell.actor_of(found), rule_id)
        )
        shell.refreshed(ctx)
    return RedirectResponse(f"{BACK}?saved=deleted#rules-title", status_code=303)

"""Webhooks over HTTP: the admin API (`/api/v1/webhooks`) and the admin page
(`/admin/webhooks`) — subscriptions, their deliveries, redelivery and a test ping.

Translation to HTTP only: the rules (URL, event types, secret) live in
services/admin/webhooks.py and are called from the schema below, so the API
and the page refuse the same things with the same words. Needs the
`configure` permission (admins).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError, field_validator

from postroom.domain.errors import NotFoundError
from postroom.domain.permissions import Permission
from postroom.services.admin import webhooks as svc
from postroom.web.admin import pages as shell
from postroom.web.deps import Auth, CanConfigure, Ctx, Principal, RowId, get_ctx, needs

api = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
pages = APIRouter(include_in_schema=False)
SECTION = "/admin/webhooks"

EventKind = Annotated[str, Field(min_length=1, max_length=60)]


class WebhookIn(BaseModel):
    name: str = Field(min_length=1, max_length=svc.NAME_MAX)
    url: str = Field(max_length=svc.URL_MAX, description="http:// or https:// URL to POST to")
    event_types: list[EventKind] = Field(
        min_length=1,
        max_length=svc.TYPES_MAX,
        description='event kinds (see docs/admin-guide.md), or ["*"] for every event',
    )
    secret: str | None = Field(
        default=None,
        max_length=svc.SECRET_MAX,
        description="the signing secret; generated when not given (shown once)",
    )
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return svc.check_name(v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return svc.check_url(v)

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        return svc.check_event_types(v)

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        return svc.check_secret(v) if v else None


class WebhookChange(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=svc.NAME_MAX)
    url: str | None = Field(default=None, max_length=svc.URL_MAX)
    event_types: list[EventKind] | None = Field(
        default=None, min_length=1, max_length=svc.TYPES_MAX
    )
    enabled: bool | None = None
    secret: str | None = Field(default=None, max_length=svc.SECRET_MAX)
    rotate_secret: bool = Field(
        default=False, description="generate a new secret (returned once in the answer)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else svc.check_name(v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else svc.check_url(v)

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else svc.check_event_types(v)

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        return svc.check_secret(v) if v else None


# -- the API ---------------------------------------------------------------------------


@api.get("")
async def list_webhooks(ctx: Ctx, _user: CanConfigure) -> dict[str, Any]:
    """Every webhook (without secrets) with its delivery counts per status."""
    return {"webhooks": await anyio.to_thread.run_sync(svc.list_webhooks, ctx.db)}


@api.post("", status_code=201)
async def create_webhook(
    body: WebhookIn, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Subscribe a URL to event kinds. The answer's `secret` is shown only now."""
    return await anyio.to_thread.run_sync(
        lambda: svc.create_webhook(
            ctx.db,
            ctx.clock,
            shell.actor_of(principal),
            name=body.name,
            url=body.url,
            event_types=body.event_types,
            secret=body.secret,
            enabled=body.enabled,
        )
    )


@api.get("/{webhook_id}")
async def get_webhook(webhook_id: RowId, ctx: Ctx, _user: CanConfigure) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(svc.get_webhook, ctx.db, webhook_id)


@api.put("/{webhook_id}")
async def update_webhook(
    webhook_id: RowId, body: WebhookChange, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Change the fields given; a new secret (given or `rotate_secret`) is returned once."""
    return await anyio.to_thread.run_sync(
        lambda: svc.update_webhook(
            ctx.db,
            ctx.clock,
            shell.actor_of(principal),
            webhook_id,
            name=body.name,
            url=body.url,
            event_types=body.event_types,
            enabled=body.enabled,
            secret=body.secret,
            rotate_secret=body.rotate_secret,
        )
    )


@api.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: RowId, ctx: Ctx, _user: CanConfigure, principal: Auth) -> None:
    """Remove the webhook and its delivery history."""
    await anyio.to_thread.run_sync(
        svc.delete_webhook, ctx.db, ctx.clock, shell.actor_of(principal), webhook_id
    )


@api.get("/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: RowId,
    ctx: Ctx,
    _user: CanConfigure,
    status: Literal["pending", "delivered", "failed"] | None = None,
    before_id: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Deliveries newest first: attempts, last status code and error, times."""
    items = await anyio.to_thread.run_sync(
        lambda: svc.list_deliveries(
            ctx.db, webhook_id, status=status, before_id=before_id, limit=limit
        )
    )
    return {"deliveries": items}


@api.post("/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    webhook_id: RowId, delivery_id: RowId, ctx: Ctx, _user: CanConfigure
) -> dict[str, Any]:
    """Send a delivery again, from now, with a fresh set of attempts."""
    return await anyio.to_thread.run_sync(svc.redeliver, ctx.db, ctx.clock, webhook_id, delivery_id)


@api.post("/{webhook_id}/test", status_code=202)
async def test_webhook(webhook_id: RowId, ctx: Ctx, _user: CanConfigure) -> dict[str, Any]:
    """Queue a `ping` delivery; watch its result in the deliveries."""
    return await anyio.to_thread.run_sync(svc.ping, ctx.db, ctx.clock, webhook_id)


# -- the admin page --------------------------------------------------------------------

# What the edit page says after an action redirected back to it (Post/Redirect/Get,
# so a reload does not repeat the action).
DONE = {
    "ping": "A test delivery (ping) is queued; reload to see its result.",
    "redeliver": "The delivery will be sent again; reload to see its result.",
}


def _form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    def text(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    return {
        "name": text("name"),
        "url": text("url"),
        "event_types": text("event_types"),
        "secret": text("secret"),
        "enabled": text("enabled") == "true",
    }


def _kinds(text: str) -> list[str]:
    return [k for k in text.replace(",", " ").split() if k]


def _render(
    request: Request,
    principal: Principal,
    *,
    status_code: int = 200,
    **values: Any,
) -> Response:
    ctx = get_ctx(request)
    hooks = svc.list_webhooks(ctx.db)
    defaults: dict[str, Any] = {
        "hooks": hooks,
        "editing": None,
        "form": {"name": "", "url": "", "event_types": "*", "secret": "", "enabled": True},
        "errors": {},
        "deliveries": [],
        "new_secret": None,
        "notice": None,
        "kinds": svc.EVENT_KINDS,
    }
    return shell.page(
        request,
        principal,
        "admin/webhooks.html",
        section=SECTION,
        status_code=status_code,
        title="Webhooks",
        **(defaults | values),
    )


def _edit_values(ctx: Any, webhook_id: int) -> dict[str, Any]:
    hook = svc.get_webhook(ctx.db, webhook_id)
    return {
        "editing": hook,
        "form": {
            "name": hook["name"],
            "url": hook["url"],
            "event_types": ", ".join(hook["event_types"]),
            "secret": "",
            "enabled": hook["enabled"],
        },
        "deliveries": svc.list_deliveries(ctx.db, webhook_id, limit=50),
    }


async def _guard(request: Request) -> Principal | Response:
    return await shell.guard(request, Permission.CONFIGURE)


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def webhooks_page(request: Request) -> Response:
    found = await _guard(request)
    if isinstance(found, Response):
        return found
    return await anyio.to_thread.run_sync(lambda: _render(request, found))


@pages.post(SECTION, response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def create_from_page(request: Request) -> Response:
    found = await _guard(request)
    if isinstance(found, Response):
        return found
    form = _form_values(await request.form())
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            body = WebhookIn(
                name=form["name"],
                url=form["url"],
                event_types=_kinds(form["event_types"]),
                secret=form["secret"] or None,
                enabled=form["enabled"],
            )
        except ValidationError as exc:
            return _render(
                request, found, status_code=422, form=form, errors=shell.form_errors(exc)
            )
        made = svc.create_webhook(
            ctx.db,
            ctx.clock,
            shell.actor_of(found),
            name=body.name,
            url=body.url,
            event_types=body.event_types,
            secret=body.secret,
            enabled=body.enabled,
        )
        return _render(
            request,
            found,
            status_code=201,
            new_secret=made["secret"],
            notice=f"Webhook {made['name']!r} created.",
            **_edit_values(ctx, made["id"]),
        )

    return await anyio.to_thread.run_sync(run)


@pages.get(
    SECTION + "/{webhook_id}", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def edit_page(request: Request, webhook_id: RowId) -> Response:
    found = await _guard(request)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)

    notice = DONE.get(request.query_params.get("done", ""))

    def run() -> Response:
        try:
            values = _edit_values(ctx, webhook_id)
        except NotFoundError as exc:
            return _render(request, found, status_code=404, notice=str(exc))
        return _render(request, found, notice=notice, **values)

    return await anyio.to_thread.run_sync(run)


@pages.post(
    SECTION + "/{webhook_id}", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def update_from_page(request: Request, webhook_id: RowId) -> Response:
    found = await _guard(request)
    if isinstance(found, Response):
        return found
    raw = await request.form()
    form = _form_values(raw)
    rotate = raw.get("rotate_secret") == "true"
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            current = _edit_values(ctx, webhook_id)
        except NotFoundError as exc:
            return _render(request, found, status_code=404, notice=str(exc))
        try:
            body = WebhookChange(
                name=form["name"],
                url=form["url"],
                event_types=_kinds(form["event_types"]),
                enabled=form["enabled"],
                secret=form["secret"] or None,
                rotate_secret=rotate,
            )
        except ValidationError as exc:
            return _render(
                request,
                found,
                status_code=422,
                **(current | {"form": form, "errors": shell.form_errors(exc)}),
            )
        changed = svc.update_webhook(
            ctx.db,
            ctx.clock,
            shell.actor_of(found),
            webhook_id,
            name=body.name,
            url=body.url,
            event_types=body.event_types,
            enabled=body.enabled,
            secret=body.secret,
            rotate_secret=body.rotate_secret,
        )
        return _render(
            request,
            found,
            new_secret=changed.get("secret"),
            notice="Saved.",
            **_edit_values(ctx, webhook_id),
        )

    return await anyio.to_thread.run_sync(run)


@pages.post(
    SECTION + "/{webhook_id}/delete", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def delete_from_page(request: Request, webhook_id: RowId) -> Response:
    found = await _guard(request)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    with contextlib.suppress(NotFoundError):  # already gone: the list says so
        await anyio.to_thread.run_sync(
            svc.delete_webhook, ctx.db, ctx.clock, shell.actor_of(found), webhook_id
        )
    return RedirectResponse(SECTION, status_code=303)


@pages.post(
    SECTION + "/{webhook_id}/test", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def test_from_page(request: Request, webhook_id: RowId) -> Response:
    found = await _guard(request)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    try:
        await anyio.to_thread.run_sync(svc.ping, ctx.db, ctx.clock, webhook_id)
    except NotFoundError:
        return RedirectResponse(SECTION, status_code=303)
    return RedirectResponse(f"{SECTION}/{webhook_id}?done=ping", status_code=303)


@pages.post(
    SECTION + "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=None,
    openapi_extra=needs(Permission.CONFIGURE),
)
async def redeliver_from_page(request: Request, webhook_id: RowId, delivery_id: RowId) -> Response:
    found = await _guard(request)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    try:
        await anyio.to_thread.run_sync(svc.redeliver, ctx.db, ctx.clock, webhook_id, delivery_id)
    except NotFoundError:
        return RedirectResponse(f"{SECTION}/{webhook_id}", status_code=303)
    return RedirectResponse(f"{SECTION}/{webhook_id}?done=redeliver", status_code=303)

"""What every admin page shares: templates, the signed-in check against the
permission table, form errors from the shared schema, and the admin home page.

Area pages (web/admin/<area>.py) render with `page()` and read form posts with
`form_errors()`; they call the same services as the API. Nothing here knows
about any one area, and nothing here writes to the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from pydantic import ValidationError

from postroom.domain import permissions
from postroom.domain.permissions import Permission
from postroom.services.admin.audit import Actor
from postroom.services.users import NotAuthenticated
from postroom.web.deps import AppContext, Principal, authenticate, get_ctx, needs
from postroom.web.workspace import pages as workspace_pages

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

templates = Jinja2Templates(directory=str(HERE / "templates"))
# Admin templates extend the workspace's base.html and share its header.
templates.env.loader = ChoiceLoader(
    [
        FileSystemLoader(str(HERE / "templates")),
        FileSystemLoader(str(Path(workspace_pages.__file__).parent / "templates")),
    ]
)
for _name, _filter in workspace_pages.templates.env.filters.items():
    templates.env.filters.setdefault(_name, _filter)

router = APIRouter(include_in_schema=False)

T = TypeVar("T")

# The admin navigation: (path, label, permission needed to see the link).
NAV: tuple[tuple[str, str, Permission], ...] = (
    ("/admin/queues", "Queues", Permission.VIEW_CONFIG),
    ("/admin/calendars", "Calendars", Permission.VIEW_CONFIG),
    ("/admin/members", "Members and skills", Permission.VIEW_CONFIG),
    ("/admin/routes", "Routes and rules", Permission.VIEW_CONFIG),
    ("/admin/wrapup-codes", "Wrap-up codes", Permission.VIEW_CONFIG),
    ("/admin/canned", "Canned responses", Permission.MANAGE_CANNED),
    ("/admin/users", "Users and tokens", Permission.MANAGE_USERS),
    ("/admin/webhooks", "Webhooks", Permission.CONFIGURE),
    ("/admin/quarantine", "Quarantine", Permission.MANAGE_QUARANTINE),
    ("/admin/audit", "Audit log", Permission.VIEW_AUDIT),
)


async def principal_for(request: Request) -> Principal | None:
    """The signed-in user, or None (then the page redirects to the login)."""
    try:
        return await authenticate(request, get_ctx(request))
    except NotAuthenticated:
        return None


def can(principal: Principal, permission: Permission) -> bool:
    return permissions.allows(principal.user.role, permission)


def page(
    request: Request,
    principal: Principal,
    name: str,
    *,
    section: str,
    status_code: int = 200,
    **values: Any,
) -> Response:
    """A full admin page (`name` extends admin/layout.html); `section` is the
    admin navigation entry to mark as current (its path)."""
    nonce = secrets.token_urlsafe(18)
    nav = [
        {"path": path, "label": label, "current": path == section}
        for path, label, needed in NAV
        if can(principal, needed)
    ]
    context = {
        "csp_nonce": nonce,
        "user": principal.user,
        "csrf": principal.csrf_token or "",
        "presences": workspace_pages.PRESENCES,
        "nav": workspace_pages._nav(get_ctx(request), principal),
        "page": "admin",
        "admin_nav": nav,
        "can_configure": can(principal, Permission.CONFIGURE),
        **values,
    }
    return templates.TemplateResponse(
        request,
        name,
        context,
        status_code=status_code,
        headers=workspace_pages._headers(workspace_pages.PAGE_CSP.format(nonce=nonce))
        # With "no-referrer" browsers send `Origin: null` on a plain form post, which the
        # CSRF check refuses as another site; "same-origin" still sends no referrer out.
        | {"Referrer-Policy": "same-origin"},
    )


def to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


def forbidden(request: Request, principal: Principal, permission: Permission) -> Response:
    roles = " or ".join(permissions.roles_with(permission))
    reason = f"This page needs the {permission.value} permission, which the {roles} role has."
    if request.headers.get("hx-request"):
        return Response(reason, status_code=403, media_type="text/plain")
    return page(
        request,
        principal,
        "admin/forbidden.html",
        section="",
        status_code=403,
        title="Not allowed",
        reason=reason,
    )


async def guard(request: Request, permission: Permission) -> Principal | Response:
    """The principal if they may see this page; otherwise the response to send
    (the login redirect, or a 403 page that says which role is needed)."""
    principal = await principal_for(request)
    if principal is None:
        return to_login(request)
    if not can(principal, permission):
        return forbidden(request, principal, permission)
    return principal


def form_errors(exc: ValidationError, aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    """Field name -> message from the shared schema's validation error, for showing
    each message beside its field. Nested locations join with "." ("rings.0.
    expansion_timeout_s"); errors about the whole object are under "" ."""
    found: dict[str, str] = {}
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        where = (aliases or {}).get(where, where)
        message = str(error["msg"]).removeprefix("Value error, ")
        found.setdefault(where, message)
    return found


@router.get("/admin", response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def admin_home(request: Request) -> Response:
    """The admin home: links to each area this user may open."""
    found = await guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    return page(request, found, "admin/index.html", section="/admin")


def actor_of(principal: Principal) -> Actor:
    """The audit trail's actor for a signed-in principal."""
    return Actor(principal.user.id, "token" if principal.via == "token" else "session")


async def change(
    ctx: AppContext, principal: Principal, do: Callable[[sa.Engine, datetime, Actor], T]
) -> T:
    """Run one admin change as `principal` off the event loop (`do(db, at, actor)`,
    a service call that owns its transaction), then make this process see it."""
    out = await anyio.to_thread.run_sync(lambda: do(ctx.db, ctx.clock(), actor_of(principal)))
    refreshed(ctx)
    return out


def refreshed(ctx: AppContext) -> None:
    """After a configuration change: this process sees it at once (others within
    half a second, services/configuration.py LiveConfig)."""
    if ctx.live is not None:
        ctx.live.refresh()


async def form_values(request: Request) -> dict[str, str]:
    """A posted form's text fields (files and the CSRF token left out)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}

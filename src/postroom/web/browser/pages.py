"""The conversation browser page `/conversations` and the customer panel fragment
`/conversations/parts/customer/{id}` (lazy-loaded by the thread view's
workspace/templates/_customer.html).

Reads the page's address into a services/conversations `BrowseFilter` (a value it
cannot read is dropped and said so; a cursor it did not hand out is a 400 page),
and renders what services/conversations `browse` and `customer_panel` return. The
access rule is theirs; nothing here queries the database or changes anything.
Templates resolve here first, then in web/supervisor (the bulk-action bar
partial) and web/workspace (base.html, the header).
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from markupsafe import Markup

from postroom.domain import permissions
from postroom.domain.errors import NotFoundError
from postroom.domain.permissions import Permission
from postroom.services import agents as agent_svc
from postroom.services import conversations as conv_svc
from postroom.services.conversations.browse import DIRECTIONS, SORTS
from postroom.web.deps import AppContext, Principal, RowId, get_ctx, needs
from postroom.web.supervisor import pages as supervisor_pages
from postroom.web.workspace import pages as workspace_pages

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.loader = ChoiceLoader(
    [
        FileSystemLoader(str(HERE / "templates")),
        FileSystemLoader(str(Path(supervisor_pages.__file__).parent / "templates")),
        FileSystemLoader(str(Path(workspace_pages.__file__).parent / "templates")),
    ]
)
for _name, _filter in workspace_pages.templates.env.filters.items():
    templates.env.filters.setdefault(_name, _filter)

router = APIRouter(include_in_schema=False)
OWN = needs(Permission.OWN_WORK)
MAX_FIELD = 320
MAX_Q = 2000
PAGE_SIZE = 50
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)
TEXT_FIELDS = ("q", "state", "queue", "agent", "wrapup_code", "tag", "sender", "direction")


def _value(params: Any, name: str, limit: int = MAX_FIELD) -> str:
    raw = params.get(name) or ""
    if not isinstance(raw, str) or "\x00" in raw or len(raw) > limit:
        return ""
    return raw.strip()


def read_filter(params: Any) -> tuple[conv_svc.BrowseFilter, dict[str, str], list[str]]:
    """The filter from the page's address, the values to show in the form, and what
    was wrong (each wrong value is left out)."""
    problems: list[str] = []
    form = {name: _value(params, name, MAX_Q if name == "q" else MAX_FIELD) for name in TEXT_FIELDS}
    if form["state"] and form["state"] not in conv_svc.STATES:
        problems.append("No such state: showing every state.")
        form["state"] = ""
    if form["direction"] and form["direction"] not in DIRECTIONS:
        problems.append("Direction is in or out: showing both.")
        form["direction"] = ""
    sort = _value(params, "sort")
    if sort and sort not in SORTS:
        problems.append("No such order: using the default.")
        sort = ""
    form["sort"] = sort
    days: dict[str, date | None] = {}
    for name in ("from", "to"):
        raw = _value(params, name, 10)
        form[name] = raw
        try:
            day = date.fromisoformat(raw) if raw else None
        except ValueError:
            day = None
            problems.append(f"The {name!r} date is not a date like 2026-03-29.")
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            problems.append(f"The {name!r} date is out of range.")
            day = None
        if day is None:
            form[name] = ""
        days[name] = day
    start = days["from"]
    end = days["to"]
    flt = conv_svc.BrowseFilter(
        q=form["q"] or None,
        state=form["state"] or None,
        queue=form["queue"] or None,
        agent=form["agent"] or None,
        wrapup_code=form["wrapup_code"] or None,
        tag=form["tag"] or None,
        sender=form["sender"] or None,
        direction=form["direction"] or None,
        created_from=datetime.combine(start, time.min, tzinfo=UTC) if start else None,
        created_to=(
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) if end else None
        ),
        sort=sort or None,  # type: ignore[arg-type]
        limit=PAGE_SIZE,
        cursor=_value(params, "cursor", 500) or None,
    )
    return flt, form, problems


def _view(ctx: AppContext, principal: Principal, params: Any) -> dict[str, Any]:
    flt, form, problems = read_filter(params)
    page = conv_svc.browse(ctx.db, principal.user, flt, prefix=ctx.config.reference_prefix)
    for item in page.conversations:
        if "snippet" in item:  # built escaped, with <mark> only (browse.snippet_html)
            item["snippet"] = Markup(item["snippet"])
    everyone = agent_svc.list_agents(ctx.db) if principal.user.sees_everything else []
    names = {a["id"]: a["name"] or a["id"] for a in everyone}
    kept = {k: v for k, v in form.items() if v}
    return {
        "form": form,
        "problems": problems,
        "result": page,
        "rows": page.conversations,
        "names": names,
        "agents": [{"id": a["id"], "name": names[a["id"]]} for a in everyone],
        "queues": ctx.configured.queue_names,
        "states": conv_svc.STATES,
        "sorts": SORTS,
        "next_query": kept | {"cursor": page.next_cursor} if page.next_cursor else None,
        "can_act": permissions.allows(principal.user.role, Permission.ACT_ON_BACKLOG),
    }


def _render(request: Request, name: str, status_code: int = 200, **values: Any) -> Response:
    nonce = secrets.token_urlsafe(18)
    return templates.TemplateResponse(
        request,
        name,
        {"csp_nonce": nonce, **values},
        status_code=status_code,
        headers=workspace_pages._headers(workspace_pages.PAGE_CSP.format(nonce=nonce)),
    )


@router.get("/conversations", openapi_extra=OWN)
async def browser(request: Request) -> Response:
    """Find conversations: search, filters, order and pages (agents: those they may see)."""
    principal = await workspace_pages._principal(request)
    if principal is None:
        return workspace_pages._to_login(request)
    ctx = get_ctx(request)
    try:
        view = await anyio.to_thread.run_sync(_view, ctx, principal, request.query_params)
    except conv_svc.InvalidCursor as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    nav = await anyio.to_thread.run_sync(workspace_pages._nav, ctx, principal)
    htmx = request.headers.get("hx-request")
    template = "browser/_results.html" if htmx else "browser/browser.html"
    return _render(
        request,
        template,
        user=principal.user,
        csrf=principal.csrf_token or "",
        presences=workspace_pages.PRESENCES,
        nav=nav,
        page="conversations",
        **view,
    )


@router.get("/conversations/parts/customer/{conversation_id}", openapi_extra=OWN)
async def customer_part(conversation_id: RowId, request: Request) -> Response:
    """The customer panel beside the thread: the sender's and their domain's other
    conversations (as far as the user may see)."""
    principal = await workspace_pages._principal(request)
    if principal is None:
        return workspace_pages._to_login(request)
    ctx = get_ctx(request)
    try:
        panel = await anyio.to_thread.run_sync(
            lambda: conv_svc.customer_panel(
                ctx.db, principal.user, conversation_id, prefix=ctx.config.reference_prefix
            )
        )
    except NotFoundError:
        return Response("", status_code=200, media_type="text/html")
    return _render(request, "browser/_customer_panel.html", panel=panel, cid=conversation_id)

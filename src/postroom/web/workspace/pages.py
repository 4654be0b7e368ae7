"""Workspace pages and the fragments htmx swaps into them.

Pages: the login form, the workspace ("/", "/c/{id}"); fragments under
/workspace/parts (routing status, offers, my conversations, one
conversation); and the message body frame under /workspace/messages, served
with its own strict Content-Security-Policy for a sandboxed iframe. Reads go
through the services (which apply the access rule); every change is made by
the browser through the JSON API, so CSRF and the router's answers stay there.

Page CSP: scripts and styles from this origin only, with one exception: each
response carries a fresh nonce that admits `<style>` elements bearing it. The
composer's editor (Trix, static/vendor/VENDORED.md) inserts two such elements
with its core rules and reads the nonce from `<meta name="trix-csp-nonce">`
(templates/_editor_head.html). Inline `style` attributes and inline scripts
stay blocked.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from postroom.domain.errors import NotFoundError
from postroom.services import agents as agent_svc
from postroom.services import conversations as conv_svc
from postroom.services.users import NotAuthenticated
from postroom.store.schema import conversations
from postroom.web.api_workspace import visible_message
from postroom.web.deps import AppContext, Principal, authenticate, get_ctx

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

PRESENCES = (
    "available",
    "away",
    "break",
    "meal",
    "meeting",
    "training",
    "busy",
    "offline",
)

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; "
    "img-src 'self' data:; "
    "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
BODY_CSP = (
    "default-src 'none'; img-src 'self' data:{remote}; style-src 'unsafe-inline'; "
    "script-src 'none'; object-src 'none'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'self'"
)
_IMG_TAG = re.compile(r'<img((?:\s+[^\s=>"]+(?:="[^"]*")?)*)\s*/?>')


def _headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def when(value: str | None) -> str:
    """ISO time -> "2026-01-31 14:05 UTC" for people."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return value


def size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


templates.env.filters["when"] = when
templates.env.filters["size"] = size


async def _principal(request: Request) -> Principal | None:
    ctx = get_ctx(request)
    try:
        return await authenticate(request, ctx)
    except NotAuthenticated:
        return None


def _render(request: Request, name: str, status_code: int = 200, **values: Any) -> Response:
    nonce = secrets.token_urlsafe(18)
    return templates.TemplateResponse(
        request,
        name,
        {"csp_nonce": nonce, **values},
        status_code=status_code,
        headers=_headers(PAGE_CSP.format(nonce=nonce)),
    )


def _to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


# -- data for the templates --------------------------------------------------------------


def _my_agent(ctx: AppContext, user_id: str) -> dict[str, Any] | None:
    return next((a for a in agent_svc.list_agents(ctx.db) if a["id"] == user_id), None)


def _mine(ctx: AppContext, principal: Principal) -> dict[str, list[dict[str, Any]]]:
    flt = conv_svc.ConversationFilter(mine=True, limit=200)
    items = conv_svc.list_conversations(
        ctx.db, principal.user, flt, prefix=ctx.config.reference_prefix
    )
    groups: dict[str, list[dict[str, Any]]] = {
        "alerting": [],
        "connected": [],
        "parked": [],
        "wrapup": [],
    }
    for c in items:
        if c["state"] in groups:
            groups[c["state"]].append(c)
    return groups


def _addresses(*values: str | None) -> list[str]:
    return [addr.lower() for _, addr in getaddresses([v for v in values if v]) if addr]


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for i in items:
        seen.setdefault(i, None)
    return list(seen)


def _own_addresses(ctx: AppContext, conversation_id: int) -> set[str]:
    with ctx.db.connect() as conn:
        row = conn.execute(
            sa.select(conversations.c.reply_from, conversations.c.route_address).where(
                conversations.c.id == conversation_id
            )
        ).one()
    return {a.lower() for a in (row.reply_from, row.route_address) if a and "*" not in a}


def _conversation(ctx: AppContext, principal: Principal, cid: int) -> dict[str, Any]:
    user = principal.user
    prefix = ctx.config.reference_prefix
    conv = conv_svc.get_conversation(ctx.db, user, cid, prefix=prefix)
    msgs: list[dict[str, Any]] = []
    for other in conv["thread"]:
        if other["id"] == cid:
            msgs += [m | {"conversation_id": cid} for m in conv["messages"]]
            continue
        try:
            older = conv_svc.get_conversation(ctx.db, user, other["id"], prefix=prefix)
        except NotFoundError:
            continue
        msgs += [m | {"conversation_id": other["id"]} for m in older["messages"]]
    msgs.sort(key=lambda m: (m["sent_at"] or m["received_at"] or "", m["id"]), reverse=True)
    own = _own_addresses(ctx, cid)
    participants = _unique(
        a for m in msgs for a in _addresses(m["from"], m["to"], m["cc"], m["sender"])
    )
    inbound = [m for m in msgs if m["direction"] == "in"]
    last_in = inbound[0] if inbound else None
    customer = _addresses(last_in["from"] if last_in else None) or (
        [last_in["sender"]] if last_in and last_in["sender"] else []
    )
    everyone_else = [
        a
        for a in _addresses(last_in["to"] if last_in else None)
        if a not in own and a not in customer
    ]
    cc = [a for a in _addresses(last_in["cc"] if last_in else None) if a not in own]
    subject = conv["subject"] or ""
    queue = ctx.config.queue(conv["queue"])
    defaults = {
        "reply": {"to": customer, "cc": [], "subject": ""},
        "reply_all": {"to": _unique(customer + everyone_else), "cc": cc, "subject": ""},
        "forward": {
            "to": [],
            "cc": [],
            "subject": "Fwd: " + re.sub(r"^(fwd?|re):\s*", "", subject, flags=re.I),
        },
    }
    limits = {
        "max_attachments": ctx.config.max_attachments,
        "max_size": ctx.config.max_message_size,
        "max_recipients": ctx.config.max_recipients,
    }
    known = participants + sorted(own)
    agents = [
        {"id": a["id"], "name": a["name"], "presence": a["presence"]}
        for a in agent_svc.list_agents(ctx.db)
        if a["id"] != user.id
    ]
    return {
        "conv": conv,
        "messages": msgs,
        "composer": _composer(cid, conv["queue"], defaults, known, limits),
        "participants": known,
        "codes": list(queue.wrapup_codes) if queue else [],
        "wrapup_prompt": queue.wrapup_prompt if queue else "optional",
        "queues": ctx.config.queue_names,
        "agents": agents,
        "mine": conv["agent"] == user.id or user.sees_everything,
        "limits": limits,
    }


def _composer(
    cid: int,
    queue: str,
    defaults: dict[str, dict[str, Any]],
    participants: list[str],
    limits: dict[str, int],
) -> dict[str, Any]:
    """What templates/_composer.html (and static/composer.js) need for one composer:
    where its draft lives and where it sends, the recipients each kind starts with,
    the addresses the "not in this thread" check knows, limits, and the context
    canned responses are filled in with. A page for a new email passes its own."""
    return {
        "title": "Reply",
        "kind": "reply",
        "draft_url": f"/api/v1/conversations/{cid}/draft",
        "send_url": f"/api/v1/conversations/{cid}/send",
        "defaults": defaults,
        "participants": participants,
        "limits": limits,
        "queue": queue,
        "canned_context": {"conversation_id": cid},
        "restore": True,
    }


# -- pages -------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await _principal(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _render(request, "login.html")


async def _workspace(request: Request, cid: int | None) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    ctx = get_ctx(request)
    view = None
    if cid is not None:
        try:
            view = await anyio.to_thread.run_sync(_conversation, ctx, principal, cid)
        except NotFoundError:
            view = None
    return _render(
        request,
        "workspace.html",
        user=principal.user,
        csrf=principal.csrf_token or "",
        presences=PRESENCES,
        cid=cid,
        view=view,
    )


@router.get("/")
async def workspace(request: Request) -> Response:
    return await _workspace(request, None)


@router.get("/c/{conversation_id}")
async def workspace_conversation(conversation_id: int, request: Request) -> Response:
    return await _workspace(request, conversation_id)


# -- fragments ---------------------------------------------------------------------------


@router.get("/workspace/parts/status")
async def part_status(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    ctx = get_ctx(request)
    agent = await anyio.to_thread.run_sync(_my_agent, ctx, principal.user.id)
    return _render(request, "_status.html", agent=agent, presences=PRESENCES)


@router.get("/workspace/parts/offers")
async def part_offers(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    groups = await anyio.to_thread.run_sync(_mine, get_ctx(request), principal)
    return _render(request, "_offers.html", offers=groups["alerting"])


@router.get("/workspace/parts/mine")
async def part_mine(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    groups = await anyio.to_thread.run_sync(_mine, get_ctx(request), principal)
    return _render(request, "_mine.html", groups=groups)


@router.get("/workspace/parts/conversation/{conversation_id}")
async def part_conversation(conversation_id: int, request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    try:
        view = await anyio.to_thread.run_sync(
            _conversation, get_ctx(request), principal, conversation_id
        )
    except NotFoundError:
        return _render(request, "_gone.html", status_code=200, cid=conversation_id)
    return _render(request, "_conversation.html", view=view)


@router.get("/workspace/parts/thread/{conversation_id}")
async def part_thread(conversation_id: int, request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    try:
        view = await anyio.to_thread.run_sync(
            _conversation, get_ctx(request), principal, conversation_id
        )
    except NotFoundError:
        return _render(request, "_gone.html", status_code=200, cid=conversation_id)
    return _render(request, "_thread.html", view=view)


@router.get("/workspace/messages/{message_id}/body")
async def message_body(message_id: int, request: Request, images: int = 0) -> Response:
    """The sanitized HTML of one message, for a sandboxed iframe (no scripts run)."""
    principal = await _principal(request)
    if principal is None:
        return Response(status_code=401)
    ctx = get_ctx(request)
    try:
        msg = await anyio.to_thread.run_sync(visible_message, ctx, principal.user, message_id)
    except NotFoundError:
        return Response("not found", status_code=404, media_type="text/plain")
    html = msg["html"] or ""
    if images:
        html = _IMG_TAG.sub(
            lambda m: "<img" + m.group(1).replace(' data-remote-src="', ' src="') + ">", html
        )
    csp = BODY_CSP.format(remote=" https: http:" if images else "")
    page = templates.get_template("_body.html").render(html=html, text=msg["text"] or "")
    return HTMLResponse(page, headers=_headers(csp))

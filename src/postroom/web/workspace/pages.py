"""Workspace pages and the fragments htmx swaps into them.

Pages: the login form, the workspace ("/", "/c/{id}"), a new email ("/new":
the composer with a queue picker) and, for supervisors and admins, the queues
("/queues": live figures and agents); fragments under /workspace/parts
(routing status, offers, my conversations, one conversation, one message's
delivery status, the queue figures); and the message body frame under
/workspace/messages, served with its own strict Content-Security-Policy for a
sandboxed iframe. Reads go through the services (which apply the access rule);
every change is made by the browser through the JSON API, so CSRF and the
router's answers stay there.

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

from postroom.domain import permissions
from postroom.domain.errors import NotFoundError
from postroom.domain.permissions import Permission
from postroom.domain.routes import send_address
from postroom.mail.threading import thread_token
from postroom.services import agents as agent_svc
from postroom.services import conversations as conv_svc
from postroom.services.conversations import timeline as timeline_svc
from postroom.services.users import NotAuthenticated
from postroom.store.schema import conversations
from postroom.web.api_workspace import visible_message
from postroom.web.deps import (
    PUBLIC,
    AppContext,
    Principal,
    RowId,
    authenticate,
    get_ctx,
    needs,
    refusal,
)

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
    "img-src 'self' data: blob:; "
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


def duration(seconds: float | None) -> str:
    """Seconds -> "45 s", "3 min 05 s", "2 h 07 min", "3 d 4 h" ("—" for none)."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def percent(value: float) -> str:
    return f"{value:g} %"


def span(seconds: float) -> str:
    """A configured time span: "24 h", "30 min", "90 s"."""
    s = int(seconds)
    if s and s % 3600 == 0:
        return f"{s // 3600} h"
    if s and s % 60 == 0:
        return f"{s // 60} min"
    return f"{seconds:g} s"


templates.env.filters["when"] = when
templates.env.filters["size"] = size
templates.env.filters["duration"] = duration
templates.env.filters["percent"] = percent
templates.env.filters["span"] = span


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


def _forbidden(request: Request, principal: Principal, title: str, reason: str) -> Response:
    """A full page (or, for htmx, a fragment) saying what the user may not do and why."""
    if request.headers.get("hx-request"):
        return Response(reason, status_code=403, media_type="text/plain")
    return _page(request, principal, "forbidden.html", status_code=403, title=title, reason=reason)


def _to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


OWN = needs(Permission.OWN_WORK)  # pages for anyone signed in

# -- data for the templates --------------------------------------------------------------


def _my_agent(ctx: AppContext, user_id: str) -> dict[str, Any] | None:
    return next((a for a in agent_svc.list_agents(ctx.db) if a["id"] == user_id), None)


def _new_email_options(ctx: AppContext, principal: Principal) -> dict[str, Any]:
    """What the new-email page offers `principal`: the queues they may send from (each
    with its From address, None when no route gives one), for supervisors and admins
    the agents who may hold it (only agents hold conversations), and why they cannot
    send, if they cannot (then the header hides the button)."""
    user = principal.user
    everyone = agent_svc.list_agents(ctx.db)
    me = next((a for a in everyone if a["id"] == user.id), None)
    if user.sees_everything:
        names = ctx.configured.queue_names
    else:
        mine = set(me["queues"] or []) if me else set()
        names = [q for q in ctx.configured.queue_names if q in mine]
    routes = tuple(ctx.configured.routes)
    queues = []
    for name in names:
        found = send_address(routes, name)
        queues.append({"name": name, "from": found[1] if found else None})
    sendable = [q for q in queues if q["from"]]
    holders = None
    if user.sees_everything:
        holders = [
            {
                "id": a["id"],
                "name": a["name"] or a["id"],
                "queues": list(a["queues"] or []),
                "routing_status": a["routing_status"],
            }
            for a in everyone
        ]
    reason = ""
    if not names and user.sees_everything:
        reason = "No queue is configured: add one ([[queues]] in the configuration)."
    elif not names:
        reason = (
            "You are not a member of any queue, and a new email is sent from one of "
            "your queues: ask a supervisor to add you to one."
        )
    elif not sendable:
        reason = (
            "None of your queues has an address to send from (a route with reply_from "
            "or an exact address): ask an administrator to add one."
        )
    elif me is None and not holders:
        reason = (
            "Only agents hold conversations, and there is no agent yet: add one with "
            "`postroom user add NAME --role agent --queues QUEUE`."
        )
    return {
        "queues": queues,
        "queue": sendable[0]["name"] if sendable else None,
        "holders": holders,
        "me": me is not None,
        "reason": reason,
    }


def _nav(ctx: AppContext, principal: Principal) -> dict[str, Any]:
    """The header's page links: New email (for whoever can send one), Queues and the
    Dashboard (supervisors and admins)."""
    return {
        "can_send": not _new_email_options(ctx, principal)["reason"],
        "queues": principal.user.sees_everything,
        "dashboard": permissions.allows(principal.user.role, Permission.SEE_ALL_WORK),
        "admin": permissions.allows(principal.user.role, Permission.VIEW_CONFIG),
    }


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
    seen = [conv]
    for other in conv["thread"]:
        if other["id"] == cid:
            msgs += [m | {"conversation_id": cid} for m in conv["messages"]]
            continue
        try:
            older = conv_svc.get_conversation(ctx.db, user, other["id"], prefix=prefix)
        except NotFoundError:
            continue
        seen.append(older)
        msgs += [m | {"conversation_id": other["id"]} for m in older["messages"]]
    msgs.sort(key=lambda m: (m["sent_at"] or m["received_at"] or "", m["id"]), reverse=True)
    opened = _opening_message(msgs)
    for m in msgs:
        m["automatic"] = automatic_label(m["direction"], m["auto_kind"])
        m["open"] = m["id"] == opened
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
    if last_in is None:
        # An agent started it (a new email) and the customer has not answered yet:
        # write again to whom the last message went.
        sent = next((m for m in msgs if m["direction"] == "out"), None)
        if sent is not None:
            customer = [a for a in _addresses(sent["to"]) if a not in own]
            cc = [a for a in _addresses(sent["cc"]) if a not in own and a not in customer]
    subject = conv["subject"] or ""
    queue = ctx.configured.queue(conv["queue"])
    defaults = {
        "reply": {"to": customer, "cc": [], "subject": ""},
        "reply_all": {"to": _unique(customer + everyone_else), "cc": cc, "subject": ""},
        "forward": {
            "to": [],
            "cc": [],
            "subject": "Fwd: " + re.sub(r"^(fwd?|re):\s*", "", subject, flags=re.I),
        },
    }
    limits = _limits(ctx)
    known = participants + sorted(own)
    everyone = agent_svc.list_agents(ctx.db)
    names = {a["id"]: a["name"] or a["id"] for a in everyone}
    return {
        "conv": conv,
        "messages": msgs,
        "wrapups": _wrapups(ctx, seen, names),
        "composer": _composer(cid, conv["queue"], defaults, known, limits),
        "participants": known,
        "codes": list(queue.wrapup_codes) if queue else [],
        "wrapup_prompt": queue.wrapup_prompt if queue else "optional",
        "queues": ctx.configured.queue_names,
        "agents": transfer_targets(everyone, user.id),
        "mine": conv["agent"] == user.id or user.sees_everything,
        "limits": limits,
        "can_rethread": permissions.allows(user.role, Permission.ACT_ON_BACKLOG),
        "backlog": permissions.allows(user.role, Permission.ACT_ON_BACKLOG),
        "timeline": timeline_svc.timeline(ctx.db, user, cid),
    }


def automatic_label(direction: str, auto_kind: str | None) -> str | None:
    """What to call a machine-made message in the thread (None for a person's)."""
    if auto_kind is None:
        return None
    if direction == "out":
        return "auto-acknowledgement"  # the only automatic mail Postroom sends
    if auto_kind == "bounce":
        return "bounce"
    if auto_kind == "list" or auto_kind.startswith("precedence:"):
        return "bulk mail"
    if auto_kind == "null-sender":
        return "automatic notification"
    return "automatic reply"


def _opening_message(msgs: list[dict[str, Any]]) -> int | None:
    """The message the thread opens on (`msgs` newest first): the customer's latest
    own message; without one, the latest message a person wrote (an agent's new
    email); when every message is automatic (a lone bounce), the newest."""
    people = [m for m in msgs if m["auto_kind"] is None]
    for m in people:
        if m["direction"] == "in":
            return int(m["id"])
    if people:
        return int(people[0]["id"])
    return int(msgs[0]["id"]) if msgs else None


def _wrapups(
    ctx: AppContext, seen: list[dict[str, Any]], names: dict[str, str]
) -> list[dict[str, Any]]:
    """Every wrap-up of the thread's conversations the user can see (`seen`, read
    through the access rule), newest first: code, notes, agent and time. A wrap-up
    given without notes has no notes event; its code and agent come from the
    conversation itself."""
    out: list[dict[str, Any]] = []
    for c in seen:
        found = [
            {
                "conversation_id": c["id"],
                "code": e["data"].get("code") or "",
                "notes": e["data"].get("notes") or "",
                "agent": e["data"].get("agent"),
                "at": e["at"],
            }
            for e in conv_svc.wrapup_notes(ctx.db, int(c["id"]))
        ]
        if not found and c.get("wrapup_code"):
            found = [
                {
                    "conversation_id": c["id"],
                    "code": c["wrapup_code"],
                    "notes": "",
                    "agent": c.get("last_agent"),
                    "at": c.get("closed_at"),
                }
            ]
        out += found
    for w in out:
        w["agent_name"] = names.get(w["agent"] or "", w["agent"] or "")
    out.sort(key=lambda w: (w["at"] or "", w["conversation_id"]), reverse=True)
    return out


def transfer_targets(everyone: list[dict[str, Any]], me: str) -> list[dict[str, Any]]:
    """The agents the transfer dialog offers, with what each can do now: those who
    can take it at once (on queue with room) first, then those on queue but full or
    not responding, then the others by presence, offline last. A transfer to an
    agent who cannot take it puts it in the conversation's queue (docs/routing.md),
    so the dialog says so."""
    order = {"ready": 0, "full": 1, "away": 2, "offline": 3}
    out = []
    for a in everyone:
        if a["id"] == me:
            continue
        load = sum(1 for c in a["conversations"] if c["state"] != "parked")
        presence = a["presence"]
        if presence == "on_queue" and a["routing_status"] == "not_responding":
            group, status = "full", "on queue, not responding"
        elif presence == "on_queue" and load < int(a["capacity"] or 0):
            group, status = "ready", "on queue, " + ("idle" if not load else "has room")
        elif presence == "on_queue":
            group, status = "full", "on queue, at capacity"
        elif presence == "offline":
            group, status = "offline", "offline"
        else:
            group, status = "away", presence.replace("_", " ")
        out.append(
            {"id": a["id"], "name": a["name"] or a["id"], "status": status, "group": group}
        )
    out.sort(key=lambda a: (order[a["group"]], a["name"].lower(), a["id"]))
    return out


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
    canned responses are filled in with, the signature the composer inserts when
    it opens (not into a restored draft, which has it already), and where it asks
    what sending adds below the text (the customer's message, quoted or
    forwarded). The new-email page builds its own (_new_composer)."""
    return {
        "title": "Reply",
        "kind": "reply",
        "draft_url": f"/api/v1/conversations/{cid}/draft",
        "send_url": f"/api/v1/conversations/{cid}/send",
        "signature_url": f"/api/v1/conversations/{cid}/signature",
        "quote_url": f"/api/v1/conversations/{cid}/quote",
        "defaults": defaults,
        "participants": participants,
        "limits": limits,
        "queue": queue,
        "canned_context": {"conversation_id": cid},
        "restore": True,
    }


def _limits(ctx: AppContext) -> dict[str, int]:
    return {
        "max_attachments": ctx.config.max_attachments,
        "max_size": ctx.config.max_message_size,
        "max_recipients": ctx.config.max_recipients,
    }


def _new_composer(queue: str | None, limits: dict[str, int]) -> dict[str, Any]:
    """The composer of the new-email page: no draft (drafts belong to a conversation),
    no thread to check recipients against; static/new.js starts it (data-manual) and
    adds the queue and the holding agent to what it sends."""
    return {
        "title": "New email",
        "kind": "new",
        "draft_url": "",
        "send_url": "/api/v1/conversations",
        "signature_url": "",
        "defaults": {"new": {"to": [], "cc": [], "bcc": [], "subject": ""}},
        "participants": None,
        "limits": limits,
        "queue": queue or "",
        "canned_context": {"queue": queue or ""},
        "restore": False,
        "manual": True,
        "subject_placeholder": "Subject (the reference [#…] is added)",
        "fields_template": "_new_fields.html",
    }


def offer_title(origin: dict[str, Any] | None, prefix: str, me: str) -> str:
    """The offer banner's first words (services/conversations.offer_origins) for
    the agent `me`."""
    o = origin or {}
    kind = o.get("kind")
    if kind == "reply":
        return f"Customer replied in thread {thread_token(prefix, int(o['thread_id']))}"
    if kind == "transfer":
        who, queue = o.get("agent_name"), o.get("queue")
        if who and queue:
            return f"Transferred from {who} ({queue})"
        if who:
            return f"Transferred from {who}"
        return f"Transferred from queue {queue}" if queue else "Transferred"
    if kind == "park":
        if o.get("agent") and o["agent"] != me:
            return f"Returned from park (parked by {o.get('agent_name') or o['agent']})"
        return "Returned from park"
    return "New conversation"


# -- pages -------------------------------------------------------------------------------


@router.get("/login", openapi_extra=PUBLIC)
async def login_page(request: Request) -> Response:
    if await _principal(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _render(request, "login.html")


def _page(
    request: Request, principal: Principal, name: str, status_code: int = 200, **values: Any
) -> Response:
    """A full page with the shared header (templates/_header.html)."""
    nav = _nav(get_ctx(request), principal)
    return _render(
        request,
        name,
        status_code=status_code,
        user=principal.user,
        csrf=principal.csrf_token or "",
        presences=PRESENCES,
        nav=nav,
        **values,
    )


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
    return await anyio.to_thread.run_sync(
        lambda: _page(
            request,
            principal,
            "workspace.html",
            page="workspace",
            cid=cid,
            view=view,
            is_agent=_my_agent(ctx, principal.user.id) is not None,
        )
    )


@router.get("/", openapi_extra=OWN)
async def workspace(request: Request) -> Response:
    return await _workspace(request, None)


@router.get("/c/{conversation_id}", openapi_extra=OWN)
async def workspace_conversation(conversation_id: RowId, request: Request) -> Response:
    return await _workspace(request, conversation_id)


@router.get("/new", openapi_extra=OWN)
async def new_email(request: Request, queue: str | None = None) -> Response:
    """Write a new email to a customer from one of your queues (any queue for
    supervisors and admins, who also choose the agent who will hold it)."""
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    ctx = get_ctx(request)
    options = await anyio.to_thread.run_sync(_new_email_options, ctx, principal)
    if options["reason"]:
        return await anyio.to_thread.run_sync(
            lambda: _forbidden(request, principal, "New email", options["reason"])
        )
    if queue and any(q["name"] == queue and q["from"] for q in options["queues"]):
        options["queue"] = queue
    return await anyio.to_thread.run_sync(
        lambda: _page(
            request,
            principal,
            "new.html",
            page="new",
            new=options,
            composer=_new_composer(options["queue"], _limits(ctx)),
            limits=_limits(ctx),
        )
    )


def _queues_view(ctx: AppContext) -> dict[str, Any]:
    """Each queue's live figures (as GET /api/v1/queues gives them, with today's
    achieved service level) with its service level target, and every agent with
    presence, routing status and held work."""
    now = ctx.clock()
    targets = agent_svc.service_level_targets(ctx.configured.queues, ctx.configured.calendars)
    figures = agent_svc.queue_figures(ctx.db, ctx.configured.queue_names, now, targets)
    queues = []
    for fig in figures:
        conf = ctx.configured.queue(fig.name)
        target = None
        if conf is not None:
            first = conf.targets[0]
            target = {"percent": first.percent, "seconds": first.seconds,
                      "calendar": first.calendar}  # fmt: skip
        queues.append(fig.to_json() | {"service_level_target": target})
    agents = [
        # Parked conversations free capacity (docs/routing.md), so they are not
        # counted against it here either.
        a | {"held": sum(1 for c in a["conversations"] if c["state"] != "parked")}
        for a in agent_svc.list_agents(ctx.db)
    ]
    return {"queues": queues, "agents": agents, "at": now}


@router.get("/queues", openapi_extra=needs(Permission.SEE_ALL_WORK))
async def queues_page(request: Request) -> Response:
    """Supervisors and admins: every queue's live figures and the agents."""
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    if not permissions.allows(principal.user.role, Permission.SEE_ALL_WORK):
        return await anyio.to_thread.run_sync(
            lambda: _forbidden(
                request,
                principal,
                "Queues",
                "The queues page is for supervisors and administrators: "
                + str(refusal(Permission.SEE_ALL_WORK))
                + ".",
            )
        )
    view = await anyio.to_thread.run_sync(_queues_view, get_ctx(request))
    return await anyio.to_thread.run_sync(
        lambda: _page(request, principal, "queues.html", page="queues", view=view)
    )


# -- fragments ---------------------------------------------------------------------------


@router.get("/workspace/parts/queues", openapi_extra=needs(Permission.SEE_ALL_WORK))
async def part_queues(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    if not permissions.allows(principal.user.role, Permission.SEE_ALL_WORK):
        return Response(
            "the queues are for supervisors and administrators: "
            + str(refusal(Permission.SEE_ALL_WORK)),
            status_code=403,
            media_type="text/plain",
        )
    view = await anyio.to_thread.run_sync(_queues_view, get_ctx(request))
    return _render(request, "_queues.html", view=view)


@router.get("/workspace/parts/delivery/{message_id}", openapi_extra=OWN)
async def part_delivery(message_id: RowId, request: Request) -> Response:
    """One outbound message's delivery status (queued, sent, failed, bounced)."""
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    try:
        found = await anyio.to_thread.run_sync(
            conv_svc.message_delivery, get_ctx(request).db, principal.user, message_id
        )
    except NotFoundError:
        return Response("not found", status_code=404, media_type="text/plain")
    return _render(request, "_delivery.html", mid=message_id, d=found["delivery"])


@router.get("/workspace/parts/status", openapi_extra=OWN)
async def part_status(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    ctx = get_ctx(request)
    agent = await anyio.to_thread.run_sync(_my_agent, ctx, principal.user.id)
    return _render(
        request, "_status.html", agent=agent, presences=PRESENCES, user=principal.user
    )


@router.get("/workspace/parts/offers", openapi_extra=OWN)
async def part_offers(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    ctx = get_ctx(request)
    groups = await anyio.to_thread.run_sync(_mine, ctx, principal)
    offers = groups["alerting"]
    origins = await anyio.to_thread.run_sync(
        conv_svc.offer_origins, ctx.db, [c["id"] for c in offers]
    )
    prefix, me = ctx.config.reference_prefix, principal.user.id
    titled = [c | {"origin": offer_title(origins.get(c["id"]), prefix, me)} for c in offers]
    return _render(request, "_offers.html", offers=titled)


@router.get("/workspace/parts/mine", openapi_extra=OWN)
async def part_mine(request: Request) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    groups = await anyio.to_thread.run_sync(_mine, get_ctx(request), principal)
    return _render(request, "_mine.html", groups=groups)


async def _conversation_part(request: Request, conversation_id: int, template: str) -> Response:
    principal = await _principal(request)
    if principal is None:
        return _to_login(request)
    try:
        view = await anyio.to_thread.run_sync(
            _conversation, get_ctx(request), principal, conversation_id
        )
    except NotFoundError:
        return _render(request, "_gone.html", status_code=200, cid=conversation_id)
    return _render(request, template, view=view)


@router.get("/workspace/parts/conversation/{conversation_id}", openapi_extra=OWN)
async def part_conversation(conversation_id: RowId, request: Request) -> Response:
    return await _conversation_part(request, conversation_id, "_conversation.html")


@router.get("/workspace/parts/thread/{conversation_id}", openapi_extra=OWN)
async def part_thread(conversation_id: RowId, request: Request) -> Response:
    return await _conversation_part(request, conversation_id, "_thread.html")


@router.get("/workspace/messages/{message_id}/body", openapi_extra=OWN)
async def message_body(message_id: RowId, request: Request, images: int = 0) -> Response:
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
    # No DNS prefetch of the links in a message: a lookup would tell the sender it was read.
    return HTMLResponse(page, headers=_headers(csp) | {"X-DNS-Prefetch-Control": "off"})

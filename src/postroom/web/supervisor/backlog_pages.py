"""Supervisors' backlog pages: a queue's waiting conversations
(`/supervisor/queues/{name}`, with per-row actions and the bulk bar) and the agent
board (`/supervisor/agents`, live over the event stream), each with its htmx
fragment. The actions are the API's (web/supervisor/backlog.py), called by
static/backlog.js. Reads only (services/supervisor/board.py)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from postroom.domain import permissions
from postroom.domain.permissions import Permission
from postroom.services.supervisor import board
from postroom.web.deps import AppContext, get_ctx, needs, refusal
from postroom.web.supervisor.pages import _render
from postroom.web.workspace import pages as workspace_pages

router = APIRouter(include_in_schema=False)

QueueName = Annotated[str, Path(min_length=1, max_length=200)]
BACKLOG = needs(Permission.ACT_ON_BACKLOG)
SEE_ALL = needs(Permission.SEE_ALL_WORK)


def _backlog_view(ctx: AppContext, queue: str) -> dict[str, Any]:
    now = ctx.clock()
    return {
        "queue": queue,
        "rows": board.backlog(ctx.db, queue, now),
        "queues": ctx.configured.queue_names,
        "agents": board.agent_board(ctx.db, now),
        "at": now,
    }


def _agents_view(ctx: AppContext) -> dict[str, Any]:
    now = ctx.clock()
    return {"agents": board.agent_board(ctx.db, now), "at": now}


async def _guarded(
    request: Request, permission: Permission, title: str
) -> tuple[Any, Response | None]:
    principal = await workspace_pages._principal(request)
    if principal is None:
        return None, workspace_pages._to_login(request)
    if not permissions.allows(principal.user.role, permission):
        reason = f"{title} is for supervisors and administrators: {refusal(permission)}."
        if request.headers.get("hx-request"):
            return None, Response(reason, status_code=403, media_type="text/plain")
        return None, await anyio.to_thread.run_sync(
            lambda: workspace_pages._page(
                request, principal, "forbidden.html", status_code=403, title=title, reason=reason
            )
        )
    return principal, None


def _page(request: Request, principal: Any, name: str, **values: Any) -> Response:
    ctx = get_ctx(request)
    return _render(
        request,
        name,
        user=principal.user,
        csrf=principal.csrf_token or "",
        presences=workspace_pages.PRESENCES,
        nav=workspace_pages._nav(ctx, principal),
        **values,
    )


@router.get("/supervisor/queues/{queue}", openapi_extra=BACKLOG)
async def queue_backlog(queue: QueueName, request: Request) -> Response:
    """A queue's waiting conversations, oldest first, with actions and the bulk bar."""
    principal, refused = await _guarded(request, Permission.ACT_ON_BACKLOG, "The backlog")
    if refused is not None:
        return refused
    ctx = get_ctx(request)
    if ctx.configured.queue(queue) is None:
        return await anyio.to_thread.run_sync(
            lambda: workspace_pages._page(
                request, principal, "forbidden.html", status_code=404, title="Backlog",
                reason=f"There is no queue {queue!r}; the Queues page lists them.",
            )
        )
    view = await anyio.to_thread.run_sync(_backlog_view, ctx, queue)
    return await anyio.to_thread.run_sync(
        lambda: _page(request, principal, "supervisor/backlog.html", page="queues", view=view)
    )


@router.get("/supervisor/parts/queues/{queue}", openapi_extra=BACKLOG)
async def part_backlog(queue: QueueName, request: Request) -> Response:
    """The backlog rows (htmx swaps them in after an action)."""
    _principal, refused = await _guarded(request, Permission.ACT_ON_BACKLOG, "The backlog")
    if refused is not None:
        return refused
    view = await anyio.to_thread.run_sync(_backlog_view, get_ctx(request), queue)
    return _render(request, "supervisor/_backlog_rows.html", view=view)


@router.get("/supervisor/agents", openapi_extra=SEE_ALL)
async def agents_page(request: Request) -> Response:
    """The agent board: every agent's presence, status, time in it, load and queues."""
    principal, refused = await _guarded(request, Permission.SEE_ALL_WORK, "The agent board")
    if refused is not None:
        return refused
    view = await anyio.to_thread.run_sync(_agents_view, get_ctx(request))
    can_manage = permissions.allows(principal.user.role, Permission.MANAGE_AGENT_STATUS)
    return await anyio.to_thread.run_sync(
        lambda: _page(
            request, principal, "supervisor/agents.html", page="agents",
            view=view, can_manage=can_manage,
        )
    )


@router.get("/supervisor/parts/agents", openapi_extra=SEE_ALL)
async def part_agents(request: Request) -> Response:
    """The board's rows (refreshed over the event stream)."""
    principal, refused = await _guarded(request, Permission.SEE_ALL_WORK, "The agent board")
    if refused is not None:
        return refused
    view = await anyio.to_thread.run_sync(_agents_view, get_ctx(request))
    can_manage = permissions.allows(principal.user.role, Permission.MANAGE_AGENT_STATUS)
    return _render(request, "supervisor/_agents.html", view=view, can_manage=can_manage)

"""Agents' routing settings over HTTP: the API (`/api/v1/agents`, `/api/v1/agents/{id}`)
and the members page (`/admin/members`: the agents × queues matrix, and per
agent the skills with proficiency, languages and email capacity).

Translation to HTTP only: the rules are services/admin/agents.py. Reading
needs `view_config` (supervisors too), changing needs `configure` (admins).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from postroom.domain.errors import NotFoundError
from postroom.domain.permissions import Permission
from postroom.services.admin import agents as svc
from postroom.services.admin import catalog
from postroom.services.admin import queues as queue_svc
from postroom.services.users import InvalidField
from postroom.web.admin import pages as shell
from postroom.web.deps import Auth, CanConfigure, CanViewConfig, Ctx, Principal, get_ctx, needs

api = APIRouter(prefix="/api/v1/agents", tags=["agents"])
pages = APIRouter(include_in_schema=False)
SECTION = "/admin/members"

AgentId = Annotated[str, Path(min_length=1, max_length=200, description="the agent's user id")]


@api.get("")
async def list_agents(ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    """Every agent with queues, skills, languages and capacity."""

    def run() -> list[dict[str, Any]]:
        with ctx.db.connect() as conn:
            return svc.list_agents(conn)

    return {"agents": await anyio.to_thread.run_sync(run)}


@api.get("/{agent_id}")
async def get_agent(agent_id: AgentId, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with ctx.db.connect() as conn:
            return svc.get_agent(conn, agent_id)

    return await anyio.to_thread.run_sync(run)


@api.put("/{agent_id}")
async def configure_agent(
    agent_id: AgentId, body: svc.AgentRouting, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Replace the agent's queues, skills (name: proficiency 1–5), languages and
    capacity (1–25). Skills and languages must be in the catalogs. The router
    takes the change at once; an offer of a queue the agent left is withdrawn."""
    return await anyio.to_thread.run_sync(
        svc.configure, ctx.db, ctx.clock(), shell.actor_of(principal), agent_id, body
    )


# -- the members page ------------------------------------------------------------------


def _render(
    request: Request, principal: Principal, *, status_code: int = 200, **values: Any
) -> Response:
    ctx = get_ctx(request)
    with ctx.db.connect() as conn:
        agents = svc.list_agents(conn)
        queue_names = [q.name for q in queue_svc.list_queues(conn)]
        skills = [s["name"] for s in catalog.entries(conn, "skill")]
        languages = catalog.entries(conn, "language")
    defaults: dict[str, Any] = {
        "agents": agents,
        "queue_names": queue_names,
        "skills": skills,
        "languages": languages,
        "errors": {},
        "editing": None,
        "form": None,
        "notice": None,
    }
    return shell.page(
        request,
        principal,
        "admin/members.html",
        section=SECTION,
        status_code=status_code,
        title="Members and skills",
        **(defaults | values),
    )


DONE = {"matrix": "Memberships saved.", "agent": "Agent saved."}


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def members_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    notice = DONE.get(request.query_params.get("done", ""))
    return await anyio.to_thread.run_sync(lambda: _render(request, found, notice=notice))


@pages.post(SECTION, response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def save_matrix(request: Request) -> Response:
    """The matrix: one checkbox `member` = "AGENT\\tQUEUE" per membership; `agent`
    lists the agents shown (an agent with no box ticked leaves every queue)."""
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    form = await request.form()
    ctx = get_ctx(request)
    shown = [a for a in form.getlist("agent") if isinstance(a, str)][:1000]
    wanted: dict[str, set[str]] = {a: set() for a in shown}
    for item in form.getlist("member"):
        if isinstance(item, str) and "\t" in item:
            agent_id, _, queue = item.partition("\t")
            if agent_id in wanted:
                wanted[agent_id].add(queue)

    def run() -> Response:
        try:
            svc.save_matrix(ctx.db, ctx.clock(), shell.actor_of(found), wanted)
        except InvalidField as exc:
            return _render(request, found, status_code=422, errors={"matrix": str(exc)})
        return RedirectResponse(f"{SECTION}?done=matrix", status_code=303)

    return await anyio.to_thread.run_sync(run)


@pages.get(
    SECTION + "/{agent_id}", response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG)
)
async def agent_page(request: Request, agent_id: AgentId) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            with ctx.db.connect() as conn:
                agent = svc.get_agent(conn, agent_id)
        except NotFoundError as exc:
            return _render(request, found, status_code=404, notice=str(exc))
        form = {
            "skills": {k: str(v) for k, v in agent["skills"].items()},
            "languages": agent["languages"],
            "capacity": str(agent["capacity"]),
        }
        return _render(request, found, editing=agent, form=form)

    return await anyio.to_thread.run_sync(run)


@pages.post(SECTION + "/{agent_id}", response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def save_agent(request: Request, agent_id: AgentId) -> Response:
    """One agent's skills (`skill:NAME` = 1–5 or empty), languages and capacity."""
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    raw = await request.form()
    ctx = get_ctx(request)
    skill_levels = {
        key[len("skill:") :]: value.strip()
        for key, value in raw.multi_items()
        if key.startswith("skill:") and isinstance(value, str) and value.strip()
    }
    capacity = raw.get("capacity")
    form = {
        "skills": skill_levels,
        "languages": [v for v in raw.getlist("languages") if isinstance(v, str)],
        "capacity": capacity if isinstance(capacity, str) else "",
    }

    def run() -> Response:
        try:
            with ctx.db.connect() as conn:
                agent = svc.get_agent(conn, agent_id)
        except NotFoundError as exc:
            return _render(request, found, status_code=404, notice=str(exc))
        try:
            body = svc.AgentRouting.model_validate(
                {
                    "queues": agent["queues"],
                    "skills": skill_levels,
                    "languages": form["languages"],
                    "capacity": form["capacity"],
                },
                strict=False,
            )
            svc.configure(ctx.db, ctx.clock(), shell.actor_of(found), agent_id, body)
        except ValidationError as exc:
            errors = {k.split(".")[0]: v for k, v in reversed(shell.form_errors(exc).items())}
            return _render(request, found, status_code=422, editing=agent, form=form, errors=errors)
        except InvalidField as exc:
            return _render(
                request,
                found,
                status_code=422,
                editing=agent,
                form=form,
                errors={exc.field: str(exc)},
            )
        return RedirectResponse(f"{SECTION}?done=agent", status_code=303)

    return await anyio.to_thread.run_sync(run)

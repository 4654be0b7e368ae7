"""Queues over HTTP: the configuration API (`/api/v1/routing/queues`, Genesys-like
names, beside the live figures of `/api/v1/queues`), queue members, and the
admin page (`/admin/queues`: the list, a new queue, the edit form with every
routing setting explained, its service-level targets with their calendars, and
delete with a target queue).

Translation to HTTP only: validation is the shared schema (QueueModel is the
request body), the rules are services/admin/queues.py and agents.py. Reading
needs `view_config` (supervisors too), changing needs `configure` (admins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from postroom.domain.errors import ConflictError, NotFoundError
from postroom.domain.permissions import Permission
from postroom.routing.model import MAX_RINGS
from postroom.services.admin import agents as agent_admin
from postroom.services.admin import calendars, catalog
from postroom.services.admin import queues as svc
from postroom.services.admin.schema import MAX_TARGETS, QueueModel
from postroom.services.users import InvalidField
from postroom.web.admin import pages as shell
from postroom.web.deps import Auth, CanConfigure, CanViewConfig, Ctx, Principal, get_ctx, needs

api = APIRouter(prefix="/api/v1/routing/queues", tags=["queue configuration"])
pages = APIRouter(include_in_schema=False)
SECTION = "/admin/queues"

QueueName = Annotated[str, Path(min_length=1, max_length=200, description="the queue's name")]
Target = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description="queue to move the deleted queue's open conversations to",
    ),
]


# -- the API ---------------------------------------------------------------------------


@api.get("")
async def list_queues(ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    """Every queue with all its routing settings."""

    def run() -> list[dict[str, Any]]:
        with ctx.db.connect() as conn:
            return [q.model_dump(mode="json") for q in svc.list_queues(conn)]

    return {"queues": await anyio.to_thread.run_sync(run)}


@api.post("", status_code=201)
async def create_queue(
    body: QueueModel, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Create a queue; it takes work at once (routes and rules may name it now)."""
    made = await anyio.to_thread.run_sync(
        svc.create_queue, ctx.db, ctx.clock(), shell.actor_of(principal), body
    )
    shell.refreshed(ctx)
    return made.model_dump(mode="json")


@api.get("/{name}")
async def get_queue(name: QueueName, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with ctx.db.connect() as conn:
            return svc.get_queue(conn, name).model_dump(mode="json")

    return await anyio.to_thread.run_sync(run)


@api.put("/{name}")
async def update_queue(
    name: QueueName, body: QueueModel, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Replace the queue's settings (the body's `name` must be the queue's: no renames).
    Waiting conversations keep their place and their requirements."""
    done = await anyio.to_thread.run_sync(
        svc.update_queue, ctx.db, ctx.clock(), shell.actor_of(principal), name, body
    )
    shell.refreshed(ctx)
    return done.model_dump(mode="json")


@api.delete("/{name}")
async def delete_queue(
    name: QueueName, ctx: Ctx, _user: CanConfigure, principal: Auth, target: Target = None
) -> dict[str, Any]:
    """Delete a queue. 409 while routes or rules name it, or while it holds open
    conversations and no `target` is given; with `target` the router moves them there."""
    done = await anyio.to_thread.run_sync(
        svc.delete_queue, ctx.db, ctx.clock(), shell.actor_of(principal), name, target
    )
    shell.refreshed(ctx)
    return done


@api.get("/{name}/members")
async def list_members(name: QueueName, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    """The agents of the queue with their routing settings."""

    def run() -> list[dict[str, Any]]:
        with ctx.db.connect() as conn:
            return agent_admin.members(conn, name)

    return {"members": await anyio.to_thread.run_sync(run)}


@api.post("/{name}/members")
async def add_members(
    name: QueueName, body: agent_admin.Members, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Add up to 100 agents to the queue (agents already in it are left as they are)."""
    return await anyio.to_thread.run_sync(
        lambda: agent_admin.change_members(
            ctx.db, ctx.clock(), shell.actor_of(principal), name, body.agents, member=True
        )
    )


@api.post("/{name}/members/remove")
async def remove_members(
    name: QueueName, body: agent_admin.Members, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Remove up to 100 agents from the queue; an offer of this queue alerting one of
    them is withdrawn and goes to the next agent."""
    return await anyio.to_thread.run_sync(
        lambda: agent_admin.change_members(
            ctx.db, ctx.clock(), shell.actor_of(principal), name, body.agents, member=False
        )
    )


# -- the admin page --------------------------------------------------------------------

FIELDS = (
    "name",
    "display_name",
    "alert_timeout_s",
    "service_level_percent",
    "service_level_seconds",
    "evaluation",
    "scoring_method",
    "wrapup_prompt",
    "wrapup_timeout_s",
    "last_agent_routing_mode",
    "last_agent_window_s",
    "park_timeout_s",
    "short_abandon_s",
    "signature_text",
    "signature_html",
)
TARGET_FIELDS = ("name", "percent", "seconds", "calendar")
CHECKBOXES = ("auto_answer", "quote_original")
OPTIONS = {
    "evaluation": ("all_skills", "best_skills", "any_agent"),
    "scoring_method": ("timestamp_and_priority", "priority_only", "deadline"),
    "wrapup_prompt": ("optional", "mandatory", "mandatory_timeout"),
    "last_agent_routing_mode": ("disabled", "queue_members_only", "any_agent"),
}


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _form_values(form: Any) -> dict[str, Any]:
    """What was typed, as strings (shown again on an error)."""
    values: dict[str, Any] = {name: _text(form, name) for name in FIELDS}
    for name in CHECKBOXES:
        values[name] = _text(form, name) == "true"
    values["wrapup_codes"] = [v for v in form.getlist("wrapup_codes") if isinstance(v, str)]
    values["rings"] = [
        {
            "expansion_timeout_s": _text(form, f"rings.{i}.expansion_timeout_s"),
            "skills_to_remove": _text(form, f"rings.{i}.skills_to_remove"),
            "remove_language": _text(form, f"rings.{i}.remove_language") == "true",
        }
        for i in range(MAX_RINGS)
    ]
    values["service_targets"] = [
        {f: _text(form, f"service_targets.{i}.{f}").strip() for f in TARGET_FIELDS}
        for i in range(MAX_TARGETS)
    ]
    return values


def _targets_data(values: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The filled-in target rows as the schema's input, and where the errors of each go
    on the page (its row may have moved up past empty rows)."""
    rows: list[dict[str, Any]] = []
    aliases: dict[str, str] = {}
    for i, t in enumerate(values["service_targets"]):
        if not any(t[f] for f in ("name", "percent", "seconds")):
            continue
        n = len(rows)
        aliases |= {f"service_targets.{n}.{f}": f"service_targets.{i}.{f}" for f in TARGET_FIELDS}
        aliases[f"service_targets.{n}"] = f"service_targets.{i}.name"
        rows.append(
            {"name": t["name"], "percent": t["percent"] or None,
             "seconds": t["seconds"] or None, "calendar": t["calendar"] or None}
        )  # fmt: skip
    return rows, aliases


def _model_data(values: Mapping[str, Any]) -> dict[str, Any]:
    """The typed values as the schema's input (validated with strict=False)."""
    data: dict[str, Any] = {}
    for name in FIELDS:
        value = values[name]
        if name in ("display_name", "signature_text", "signature_html"):
            data[name] = value if value.strip() else None
        elif value != "":
            data[name] = value
    for name in CHECKBOXES:
        data[name] = values[name]
    data["wrapup_codes"] = values["wrapup_codes"]
    data["rings"] = [
        {
            "expansion_timeout_s": r["expansion_timeout_s"],
            "skills_to_remove": [s.strip() for s in r["skills_to_remove"].split(",") if s.strip()],
            "remove_language": r["remove_language"],
        }
        for r in values["rings"]
        if r["expansion_timeout_s"].strip()
    ]
    targets, _ = _targets_data(values)
    data["service_targets"] = targets or None  # none: one from service_level_*
    return data


def _shown(value: Any) -> str:
    """A stored value as the form shows it (60.0 as "60")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values_of(q: QueueModel) -> dict[str, Any]:
    data = q.model_dump(mode="json")
    values: dict[str, Any] = {name: _shown(data.get(name)) for name in FIELDS}
    for name in CHECKBOXES:
        values[name] = bool(data[name])
    values["wrapup_codes"] = list(q.wrapup_codes)
    rings = [
        {
            "expansion_timeout_s": _shown(r.expansion_timeout_s),
            "skills_to_remove": ", ".join(r.skills_to_remove),
            "remove_language": r.remove_language,
        }
        for r in q.rings
    ]
    empty = {"expansion_timeout_s": "", "skills_to_remove": "", "remove_language": False}
    values["rings"] = rings + [dict(empty) for _ in range(MAX_RINGS - len(rings))]
    targets = [
        {"name": t.name, "percent": _shown(t.percent), "seconds": _shown(t.seconds),
         "calendar": t.calendar or ""}
        for t in q.service_targets or ()
    ]  # fmt: skip
    blank = dict.fromkeys(TARGET_FIELDS, "")
    values["service_targets"] = targets + [dict(blank) for _ in range(MAX_TARGETS - len(targets))]
    return values


def _render(
    request: Request, principal: Principal, *, status_code: int = 200, **values: Any
) -> Response:
    ctx = get_ctx(request)
    with ctx.db.connect() as conn:
        queue_list = svc.list_queues(conn)
        counts = {q.name: svc.open_counts(conn, q.name) for q in queue_list}
        codes = [c["name"] for c in catalog.entries(conn, "wrapup_code")]
        calendar_names = sorted(calendars.names(conn))
    defaults: dict[str, Any] = {
        "queues": queue_list,
        "counts": counts,
        "codes": codes,
        "calendars": calendar_names,
        "editing": None,
        "creating": False,
        "form": _values_of(QueueModel(name="new")) | {"name": ""},
        "errors": {},
        "notice": None,
        "options": OPTIONS,
    }
    return shell.page(
        request,
        principal,
        "admin/queues.html",
        section=SECTION,
        status_code=status_code,
        title="Queues",
        **(defaults | values),
    )


def _errors(exc: ValidationError | InvalidField, form: Mapping[str, Any]) -> dict[str, str]:
    _, aliases = _targets_data(form)
    if isinstance(exc, InvalidField):
        return {aliases.get(exc.field, exc.field): str(exc)}
    return shell.form_errors(exc, aliases)


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def queues_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    creating = request.query_params.get("new") == "1"
    return await anyio.to_thread.run_sync(lambda: _render(request, found, creating=creating))


@pages.post(SECTION, response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def create_from_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    form = _form_values(await request.form())
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            q = QueueModel.model_validate(_model_data(form), strict=False)
            svc.create_queue(ctx.db, ctx.clock(), shell.actor_of(found), q)
        except (ValidationError, InvalidField) as exc:
            return _render(
                request, found, status_code=422, creating=True, form=form, errors=_errors(exc, form)
            )
        shell.refreshed(ctx)
        return RedirectResponse(f"{SECTION}/{quote(q.name, safe='')}?done=created", status_code=303)

    return await anyio.to_thread.run_sync(run)


DONE = {"created": "Queue created.", "saved": "Saved."}


@pages.get(SECTION + "/{name}", response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def edit_page(request: Request, name: QueueName) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    notice = DONE.get(request.query_params.get("done", ""))

    def run() -> Response:
        try:
            with ctx.db.connect() as conn:
                q = svc.get_queue(conn, name)
        except NotFoundError as exc:
            return _render(request, found, status_code=404, notice=str(exc))
        return _render(request, found, editing=q.name, form=_values_of(q), notice=notice)

    return await anyio.to_thread.run_sync(run)


@pages.post(SECTION + "/{name}", response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def update_from_page(request: Request, name: QueueName) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    form = _form_values(await request.form())
    form["name"] = name
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            q = QueueModel.model_validate(_model_data(form), strict=False)
            svc.update_queue(ctx.db, ctx.clock(), shell.actor_of(found), name, q)
        except (ValidationError, InvalidField) as exc:
            return _render(
                request, found, status_code=422, editing=name, form=form, errors=_errors(exc, form)
            )
        except NotFoundError as exc:
            return _render(request, found, status_code=404, notice=str(exc))
        shell.refreshed(ctx)
        return RedirectResponse(f"{SECTION}/{quote(name, safe='')}?done=saved", status_code=303)

    return await anyio.to_thread.run_sync(run)


@pages.post(
    SECTION + "/{name}/delete", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def delete_from_page(request: Request, name: QueueName) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    raw = await request.form()
    target = _text(raw, "target").strip() or None
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            svc.delete_queue(ctx.db, ctx.clock(), shell.actor_of(found), name, target)
        except NotFoundError:
            return RedirectResponse(SECTION, status_code=303)
        except (ConflictError, InvalidField) as exc:
            with ctx.db.connect() as conn:
                q = svc.get_queue(conn, name)
            errors = {"target": str(exc)}
            return _render(
                request, found, status_code=409, editing=name, form=_values_of(q), errors=errors
            )
        shell.refreshed(ctx)
        return RedirectResponse(SECTION, status_code=303)

    return await anyio.to_thread.run_sync(run)

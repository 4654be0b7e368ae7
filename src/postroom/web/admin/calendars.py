"""Business-hours calendars over HTTP: the API (`/api/v1/routing/calendars`) and the
admin page (`/admin/calendars`: the list with the queues using each, a new calendar,
the edit form with open hours per weekday, holidays and the time zone, and delete).

Translation to HTTP only: validation is the shared schema (CalendarModel is the
request body), the rules are services/admin/calendars.py. Reading needs
`view_config` (supervisors too), changing needs `configure` (admins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from postroom.domain.calendars import WEEKDAYS
from postroom.domain.errors import ConflictError, NotFoundError
from postroom.domain.permissions import Permission
from postroom.services.admin import calendars as svc
from postroom.services.admin.schema import CalendarModel
from postroom.services.users import InvalidField
from postroom.web.admin import pages as shell
from postroom.web.deps import Auth, CanConfigure, CanViewConfig, Ctx, Principal, get_ctx, needs

api = APIRouter(prefix="/api/v1/routing/calendars", tags=["queue configuration"])
pages = APIRouter(include_in_schema=False)
SECTION = "/admin/calendars"

CalendarName = Annotated[
    str, Path(min_length=1, max_length=200, description="the calendar's name")
]


def _public(conn: Any, c: CalendarModel) -> dict[str, Any]:
    return c.model_dump(mode="json") | {"queues": svc.queues_using(conn, c.name)}


# -- the API ---------------------------------------------------------------------------


@api.get("")
async def list_calendars(ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    """Every calendar, with the queues whose service-level targets count in it."""

    def run() -> list[dict[str, Any]]:
        with ctx.db.connect() as conn:
            return [_public(conn, c) for c in svc.list_calendars(conn)]

    return {"calendars": await anyio.to_thread.run_sync(run)}


@api.get("/{name}")
async def get_calendar(name: CalendarName, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with ctx.db.connect() as conn:
            return _public(conn, svc.get_calendar(conn, name))

    return await anyio.to_thread.run_sync(run)


@api.put("/{name}", responses={201: {"description": "created"}})
async def put_calendar(
    name: CalendarName, body: CalendarModel, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> Response:
    """Create the calendar or replace it (the body's `name` must be the path's). Queues
    whose first target counts in it get their deadlines from the new hours."""
    saved, created = await anyio.to_thread.run_sync(
        svc.put_calendar, ctx.db, ctx.clock(), shell.actor_of(principal), name, body
    )
    shell.refreshed(ctx)
    return JSONResponse(saved.model_dump(mode="json"), status_code=201 if created else 200)


@api.delete("/{name}")
async def delete_calendar(
    name: CalendarName, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    """Delete a calendar; 409, naming the queues, while a queue's target counts in it."""
    await anyio.to_thread.run_sync(
        svc.delete_calendar, ctx.db, ctx.clock(), shell.actor_of(principal), name
    )
    shell.refreshed(ctx)
    return {"deleted": name}


# -- the admin page --------------------------------------------------------------------

SPANS_PER_DAY = 2  # open spans per weekday on the page (the API takes up to 50 in all)
DAY_LABELS = dict(zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                 "Saturday", "Sunday"), strict=True))  # fmt: skip


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """What was typed, as strings (shown again on an error)."""
    return {
        "name": _text(form, "name").strip(),
        "time_zone": _text(form, "time_zone").strip(),
        "hours": {
            day: [
                {
                    "start": _text(form, f"hours.{day}.{i}.start").strip(),
                    "end": _text(form, f"hours.{day}.{i}.end").strip(),
                }
                for i in range(SPANS_PER_DAY)
            ]
            for day in WEEKDAYS
        },
        "holidays": _text(form, "holidays"),
    }


def _model_data(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed values as the schema's input, and where each list entry's errors go
    on the page (schema location -> form field)."""
    hours: list[dict[str, str]] = []
    aliases: dict[str, str] = {}
    for day in WEEKDAYS:
        for i, span in enumerate(values["hours"][day]):
            if not span["start"] and not span["end"]:
                continue
            n = len(hours)
            field = f"hours.{day}.{i}"
            aliases |= {f"hours.{n}": f"{field}.end", f"hours.{n}.start": f"{field}.start",
                        f"hours.{n}.end": f"{field}.end"}  # fmt: skip
            hours.append({"day": day, "start": span["start"], "end": span["end"]})
    days = [d.strip() for d in values["holidays"].replace(",", "\n").splitlines() if d.strip()]
    aliases |= {f"holidays.{i}": "holidays" for i in range(len(days))}
    data = {"name": values["name"], "time_zone": values["time_zone"], "hours": hours,
            "holidays": days}  # fmt: skip
    return data, aliases


def _values_of(c: CalendarModel) -> dict[str, Any]:
    hours: dict[str, list[dict[str, str]]] = {day: [] for day in WEEKDAYS}
    for h in sorted(c.hours, key=lambda h: (WEEKDAYS.index(h.day), h.start)):
        hours[h.day].append({"start": h.start, "end": h.end})
    for day in WEEKDAYS:
        hours[day] += [{"start": "", "end": ""}] * max(0, SPANS_PER_DAY - len(hours[day]))
    return {"name": c.name, "time_zone": c.time_zone, "hours": hours,
            "holidays": "\n".join(c.holidays)}  # fmt: skip


def _new_form() -> dict[str, Any]:
    office = CalendarModel(
        name="new",
        time_zone="UTC",
        hours=[{"day": d, "start": "09:00", "end": "17:00"} for d in WEEKDAYS[:5]],  # type: ignore[misc]
    )
    return _values_of(office) | {"name": ""}


def _render(
    request: Request, principal: Principal, *, status_code: int = 200, **values: Any
) -> Response:
    ctx = get_ctx(request)
    with ctx.db.connect() as conn:
        listed = [(c, svc.queues_using(conn, c.name)) for c in svc.list_calendars(conn)]
    defaults: dict[str, Any] = {
        "calendars": listed,
        "editing": None,
        "creating": False,
        "form": _new_form(),
        "errors": {},
        "notice": None,
        "days": DAY_LABELS,
    }
    return shell.page(
        request, principal, "admin/calendars.html", section=SECTION, status_code=status_code,
        title="Calendars", **(defaults | values),
    )  # fmt: skip


def _errors(exc: ValidationError | InvalidField, aliases: Mapping[str, str]) -> dict[str, str]:
    if isinstance(exc, InvalidField):
        return {exc.field: str(exc)}
    return shell.form_errors(exc, aliases)


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def calendars_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    creating = request.query_params.get("new") == "1"
    return await anyio.to_thread.run_sync(lambda: _render(request, found, creating=creating))


def _save(
    request: Request, found: Principal, form: dict[str, Any], editing: str | None
) -> Response:
    ctx = get_ctx(request)
    data, aliases = _model_data(form)
    try:
        c = CalendarModel.model_validate(data, strict=False)
        if editing is None:
            with ctx.db.connect() as conn:
                if c.name in svc.names(conn):
                    raise InvalidField("name", f"there is already a calendar {c.name!r}")
        svc.put_calendar(ctx.db, ctx.clock(), shell.actor_of(found), c.name, c)
    except (ValidationError, InvalidField) as exc:
        return _render(request, found, status_code=422, creating=editing is None,
                       editing=editing, form=form, errors=_errors(exc, aliases))  # fmt: skip
    except ConflictError as exc:
        return _render(request, found, status_code=409, creating=editing is None,
                       editing=editing, form=form, errors={"": str(exc)})  # fmt: skip
    shell.refreshed(ctx)
    done = "created" if editing is None else "saved"
    return RedirectResponse(f"{SECTION}/{quote(c.name, safe='')}?done={done}", status_code=303)


@pages.post(SECTION, response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def create_from_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    form = _form_values(await request.form())
    return await anyio.to_thread.run_sync(lambda: _save(request, found, form, None))


DONE = {"created": "Calendar created.", "saved": "Saved."}


@pages.get(SECTION + "/{name}", response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def edit_page(request: Request, name: CalendarName) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    notice = DONE.get(request.query_params.get("done", ""))

    def run() -> Response:
        try:
            with ctx.db.connect() as conn:
                c = svc.get_calendar(conn, name)
        except NotFoundError as exc:
            return _render(request, found, status_code=404, notice=str(exc))
        return _render(request, found, editing=c.name, form=_values_of(c), notice=notice)

    return await anyio.to_thread.run_sync(run)


@pages.post(SECTION + "/{name}", response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def update_from_page(request: Request, name: CalendarName) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    form = _form_values(await request.form())
    form["name"] = name
    return await anyio.to_thread.run_sync(lambda: _save(request, found, form, name))


@pages.post(
    SECTION + "/{name}/delete", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def delete_from_page(request: Request, name: CalendarName) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            svc.delete_calendar(ctx.db, ctx.clock(), shell.actor_of(found), name)
        except NotFoundError:
            return RedirectResponse(SECTION, status_code=303)
        except ConflictError as exc:
            with ctx.db.connect() as conn:
                c = svc.get_calendar(conn, name)
            return _render(request, found, status_code=409, editing=name, form=_values_of(c),
                           errors={"delete": str(exc)})  # fmt: skip
        shell.refreshed(ctx)
        return RedirectResponse(SECTION, status_code=303)

    return await anyio.to_thread.run_sync(run)

"""The catalogs over HTTP: skills, languages and wrap-up codes
(`/api/v1/routing/skills`, `/api/v1/routing/languages`, `/api/v1/routing/wrapupcodes`)
and their admin page (`/admin/wrapup-codes`, all three catalogs).

Translation to HTTP only: the rules (an entry in use cannot be deleted) are
services/admin/catalog.py. Reading needs `view_config`, changing `configure`.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from postroom.domain.errors import ConflictError, NotFoundError
from postroom.domain.permissions import Permission
from postroom.services.admin import catalog as svc
from postroom.services.admin.catalog import Kind, LanguageIn, SkillIn, Text, WrapupCodeIn
from postroom.web.admin import pages as shell
from postroom.web.deps import Auth, CanConfigure, CanViewConfig, Ctx, Principal, get_ctx, needs

api = APIRouter(prefix="/api/v1/routing", tags=["catalogs"])
pages = APIRouter(include_in_schema=False)
SECTION = "/admin/wrapup-codes"

Key = Annotated[str, Path(min_length=1, max_length=200)]


class DescriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Text = ""


class LanguageNameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=100)] = ""


# -- the API: the same five endpoints for each catalog ---------------------------------


def _list(ctx: Any, kind: Kind) -> list[dict[str, Any]]:
    with ctx.db.connect() as conn:
        return svc.entries(conn, kind)


def _get(ctx: Any, kind: Kind, key: str) -> dict[str, Any]:
    with ctx.db.connect() as conn:
        return svc.get(conn, kind, key)


@api.get("/skills")
async def list_skills(ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return {"skills": await anyio.to_thread.run_sync(_list, ctx, "skill")}


@api.post("/skills", status_code=201)
async def create_skill(
    body: SkillIn, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        svc.create,
        ctx.db,
        ctx.clock(),
        shell.actor_of(principal),
        "skill",
        body.name,
        body.description,
    )


@api.get("/skills/{name}")
async def get_skill(name: Key, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_get, ctx, "skill", name)


@api.put("/skills/{name}")
async def update_skill(
    name: Key, body: DescriptionIn, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        svc.update, ctx.db, ctx.clock(), shell.actor_of(principal), "skill", name, body.description
    )


@api.delete("/skills/{name}", status_code=204)
async def delete_skill(name: Key, ctx: Ctx, _user: CanConfigure, principal: Auth) -> None:
    """409 while agents, queues' rings, routes or rules use the skill (it says which)."""
    await anyio.to_thread.run_sync(
        svc.delete, ctx.db, ctx.clock(), shell.actor_of(principal), "skill", name
    )


@api.get("/languages")
async def list_languages(ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return {"languages": await anyio.to_thread.run_sync(_list, ctx, "language")}


@api.post("/languages", status_code=201)
async def create_language(
    body: LanguageIn, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        svc.create, ctx.db, ctx.clock(), shell.actor_of(principal), "language", body.code, body.name
    )


@api.get("/languages/{code}")
async def get_language(code: Key, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_get, ctx, "language", code)


@api.put("/languages/{code}")
async def update_language(
    code: Key, body: LanguageNameIn, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        svc.update, ctx.db, ctx.clock(), shell.actor_of(principal), "language", code, body.name
    )


@api.delete("/languages/{code}", status_code=204)
async def delete_language(code: Key, ctx: Ctx, _user: CanConfigure, principal: Auth) -> None:
    """409 while agents, routes or rules use the language (it says which)."""
    await anyio.to_thread.run_sync(
        svc.delete, ctx.db, ctx.clock(), shell.actor_of(principal), "language", code
    )


@api.get("/wrapupcodes")
async def list_wrapup_codes(ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return {"wrapup_codes": await anyio.to_thread.run_sync(_list, ctx, "wrapup_code")}


@api.post("/wrapupcodes", status_code=201)
async def create_wrapup_code(
    body: WrapupCodeIn, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        svc.create,
        ctx.db,
        ctx.clock(),
        shell.actor_of(principal),
        "wrapup_code",
        body.name,
        body.description,
    )


@api.get("/wrapupcodes/{name}")
async def get_wrapup_code(name: Key, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(_get, ctx, "wrapup_code", name)


@api.put("/wrapupcodes/{name}")
async def update_wrapup_code(
    name: Key, body: DescriptionIn, ctx: Ctx, _user: CanConfigure, principal: Auth
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        svc.update,
        ctx.db,
        ctx.clock(),
        shell.actor_of(principal),
        "wrapup_code",
        name,
        body.description,
    )


@api.delete("/wrapupcodes/{name}", status_code=204)
async def delete_wrapup_code(name: Key, ctx: Ctx, _user: CanConfigure, principal: Auth) -> None:
    """409 while a queue lists the code (it says which)."""
    await anyio.to_thread.run_sync(
        svc.delete, ctx.db, ctx.clock(), shell.actor_of(principal), "wrapup_code", name
    )


# -- the page ---------------------------------------------------------------------------

MODELS: dict[str, type[BaseModel]] = {
    "wrapup_code": WrapupCodeIn,
    "skill": SkillIn,
    "language": LanguageIn,
}


def _render(
    request: Request, principal: Principal, *, status_code: int = 200, **values: Any
) -> Response:
    ctx = get_ctx(request)
    with ctx.db.connect() as conn:
        lists = {kind: svc.entries(conn, kind) for kind in ("wrapup_code", "skill", "language")}
    defaults: dict[str, Any] = {
        "lists": lists,
        "kind_errors": {},
        "forms": {"wrapup_code": {}, "skill": {}, "language": {}},
        "notice": None,
    }
    return shell.page(
        request,
        principal,
        "admin/catalog.html",
        section=SECTION,
        status_code=status_code,
        title="Wrap-up codes, skills and languages",
        **(defaults | values),
    )


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def catalog_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    return await anyio.to_thread.run_sync(lambda: _render(request, found))


def _kind(value: str) -> Kind | None:
    return value if value in MODELS else None  # type: ignore[return-value]


@pages.post(SECTION + "/{kind}", response_model=None, openapi_extra=needs(Permission.CONFIGURE))
async def add_from_page(request: Request, kind: Key) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    which = _kind(kind)
    if which is None:
        return RedirectResponse(SECTION, status_code=303)
    raw = await request.form()
    fields = ("code", "name") if which == "language" else ("name", "description")
    form = {f: v if isinstance(v := raw.get(f), str) else "" for f in fields}
    ctx = get_ctx(request)

    def run() -> Response:
        forms: dict[str, Any] = {"wrapup_code": {}, "skill": {}, "language": {}, which: form}
        try:
            body = MODELS[which].model_validate(form, strict=False)
            data = body.model_dump()
            key, text = (
                (data["code"], data["name"])
                if which == "language"
                else (
                    data["name"],
                    data["description"],
                )
            )
            svc.create(ctx.db, ctx.clock(), shell.actor_of(found), which, key, text)
        except ValidationError as exc:
            errors = {which: shell.form_errors(exc)}
            return _render(request, found, status_code=422, forms=forms, kind_errors=errors)
        except ConflictError as exc:
            errors = {which: {fields[0]: str(exc)}}
            return _render(request, found, status_code=409, forms=forms, kind_errors=errors)
        return RedirectResponse(SECTION, status_code=303)

    return await anyio.to_thread.run_sync(run)


@pages.post(
    SECTION + "/{kind}/delete", response_model=None, openapi_extra=needs(Permission.CONFIGURE)
)
async def delete_from_page(request: Request, kind: Key) -> Response:
    found = await shell.guard(request, Permission.CONFIGURE)
    if isinstance(found, Response):
        return found
    which = _kind(kind)
    raw = await request.form()
    key = raw.get("key")
    if which is None or not isinstance(key, str):
        return RedirectResponse(SECTION, status_code=303)
    ctx = get_ctx(request)

    def run() -> Response:
        try:
            svc.delete(ctx.db, ctx.clock(), shell.actor_of(found), which, key)
        except NotFoundError:
            pass
        except ConflictError as exc:
            return _render(request, found, status_code=409, notice=str(exc))
        return RedirectResponse(SECTION, status_code=303)

    return await anyio.to_thread.run_sync(run)

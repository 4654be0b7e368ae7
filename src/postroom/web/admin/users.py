"""Users and API tokens over HTTP: the admin API (`/api/v1/users` changes,
`/api/v1/tokens`) and the admin page `/admin/users`.

The read endpoints that every role uses (`GET /api/v1/users`, `/me`, presence)
stay in web/api_users.py; the changes only admins make live here, beside the
page that makes them, so both call the same services with the same input
models. Tokens: admins (manage_tokens) list, create and revoke anyone's; every
signed-in user lists, creates and revokes their own, with a role at most
their own. Translation to HTTP only: the rules (last admin, token roles,
expiry, what disabling does) live in services/users.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from postroom.domain import permissions
from postroom.domain.errors import NotFoundError
from postroom.domain.permissions import ROLES, Permission, Role
from postroom.services import users as user_svc
from postroom.services.users import Forbidden, InvalidField, LastAdmin
from postroom.web.admin.pages import actor_of, form_errors, guard, page
from postroom.web.deps import AppContext, Ctx, Principal, RowId, get_ctx, needs, permitted

api = APIRouter(tags=["users"])
pages = APIRouter(include_in_schema=False)

UserId = Annotated[str, Path(min_length=1, max_length=200, description="a user name")]
ManagesUsers = Annotated[Principal, Depends(permitted(Permission.MANAGE_USERS))]
SignedIn = Annotated[Principal, Depends(permitted(Permission.OWN_WORK))]


# -- input models (API and page) ---------------------------------------------------------------


class UserCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200, description="the sign-in name, no spaces")
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: Role = "agent"
    password: str | None = Field(
        default=None, min_length=8, max_length=1000, description="left out: one is generated"
    )


class UserPatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: Role | None = None


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(
        default=None, min_length=8, max_length=1000, description="left out: one is generated"
    )


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="api", min_length=1, max_length=200)
    user: str | None = Field(
        default=None, min_length=1, max_length=200, description="whose token; left out: yours"
    )
    role: Role | None = Field(default=None, description="at most the user's; left out: theirs")
    expires_at: datetime | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=user_svc.MAX_TOKEN_DAYS)


# -- the operations (shared by API and page) ---------------------------------------------------


def _create_user(ctx: AppContext, who: Principal, body: UserCreateIn) -> dict[str, Any]:
    generated = body.password is None
    password = body.password or user_svc.generate_password()
    user = user_svc.add_user(
        ctx.db,
        ctx.clock,
        body.id,
        role=body.role,
        password=password,
        hasher=ctx.hasher,
        name=body.name or None,
        email=body.email or None,
        known_queues=ctx.configured.queue_names,
        actor=actor_of(who),
        create_only=True,
    )
    return {"user": user.to_json(), "password": password if generated else None}


def _update_user(
    ctx: AppContext, who: Principal, user_id: str, body: UserPatchIn
) -> dict[str, Any]:
    current = user_svc.get_user(ctx.db, user_id)
    user = user_svc.add_user(
        ctx.db,
        ctx.clock,
        user_id,
        role=body.role or current.role,
        password=None,
        hasher=ctx.hasher,
        name=body.name,
        email=body.email,  # "" clears it, None keeps it
        known_queues=ctx.configured.queue_names,
        actor=actor_of(who),
        keep_an_admin=True,
    )
    return user.to_json()


def _set_disabled(ctx: AppContext, who: Principal, user_id: str, disabled: bool) -> dict[str, Any]:
    # Open event streams of the user end at their next heartbeat (Principal.touch).
    user = user_svc.set_disabled(
        ctx.db, ctx.clock, user_id, disabled, actor=actor_of(who), keep_an_admin=True
    )
    return user.to_json()


def _reset_password(
    ctx: AppContext, who: Principal, user_id: str, body: PasswordIn
) -> dict[str, Any]:
    generated = body.password is None
    password = body.password or user_svc.generate_password()
    user_svc.set_password(
        ctx.db, user_id, password, ctx.hasher, clock=ctx.clock, actor=actor_of(who)
    )
    return {
        "user": user_svc.get_user(ctx.db, user_id).to_json(),
        "password": password if generated else None,
    }


def _may_manage_tokens(who: Principal) -> bool:
    return permissions.allows(who.user.role, Permission.MANAGE_TOKENS)


def _list_tokens(ctx: AppContext, who: Principal, user: str | None) -> list[dict[str, Any]]:
    if not _may_manage_tokens(who):
        if user not in (None, who.user.id):
            raise Forbidden("you can only list your own API tokens")
        user = who.user.id
    return user_svc.list_tokens(ctx.db, user)


def _create_token(ctx: AppContext, who: Principal, body: TokenIn) -> dict[str, Any]:
    owner = body.user or who.user.id
    if owner != who.user.id and not _may_manage_tokens(who):
        raise Forbidden(
            "you can only create API tokens for yourself; an administrator creates others'"
        )
    role: str | None = body.role
    if owner == who.user.id:
        # Acting through a token bound to a lower role: new tokens get no more than it.
        if role is None and who.user.role != user_svc.get_user(ctx.db, owner).role:
            role = who.user.role
        if role is not None and not permissions.at_most(role, who.user.role):
            raise InvalidField(
                "role", f"you can create tokens with at most your role ({who.user.role})"
            )
    token, info = user_svc.issue_token(
        ctx.db,
        ctx.clock,
        owner,
        body.name,
        role=role,
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
        actor=actor_of(who),
    )
    return {**info, "token": token}


def _revoke_token(ctx: AppContext, who: Principal, token_id: int) -> dict[str, Any]:
    found = user_svc.get_token(ctx.db, token_id)
    if found["user"] != who.user.id and not _may_manage_tokens(who):
        # Someone else's token looks like no token at all.
        raise NotFoundError(f"no API token {token_id} of yours; see GET /api/v1/tokens")
    return user_svc.revoke_token(ctx.db, ctx.clock, token_id, actor=actor_of(who))


# -- the API -------------------------------------------------------------------------------


@api.post("/api/v1/users", status_code=201)
async def create_user(body: UserCreateIn, ctx: Ctx, who: ManagesUsers) -> dict[str, Any]:
    """Add a user (an agent also gets a routing profile). Without a password one is
    generated and returned once in `password`."""
    return await anyio.to_thread.run_sync(_create_user, ctx, who, body)


@api.patch("/api/v1/users/{user_id}")
async def update_user(
    user_id: UserId, body: UserPatchIn, ctx: Ctx, who: ManagesUsers
) -> dict[str, Any]:
    """Change name, email (empty: none) or role. The last enabled admin cannot be
    demoted (409)."""
    return await anyio.to_thread.run_sync(_update_user, ctx, who, user_id, body)


@api.post("/api/v1/users/{user_id}/disable")
async def disable_user(user_id: UserId, ctx: Ctx, who: ManagesUsers) -> dict[str, Any]:
    """Stop a user at once: sessions end, tokens and open streams stop working, an
    agent is taken offline and their offers declined. Not the last enabled admin."""
    return await anyio.to_thread.run_sync(_set_disabled, ctx, who, user_id, True)


@api.post("/api/v1/users/{user_id}/enable")
async def enable_user(user_id: UserId, ctx: Ctx, who: ManagesUsers) -> dict[str, Any]:
    """Let a disabled user sign in again; their tokens work again."""
    return await anyio.to_thread.run_sync(_set_disabled, ctx, who, user_id, False)


@api.post("/api/v1/users/{user_id}/password")
async def reset_password(
    user_id: UserId, ctx: Ctx, who: ManagesUsers, body: PasswordIn | None = None
) -> dict[str, Any]:
    """Set a new password (given, or generated and returned once) and end all the
    user's browser sessions."""
    return await anyio.to_thread.run_sync(_reset_password, ctx, who, user_id, body or PasswordIn())


@api.get("/api/v1/tokens")
async def list_tokens(
    ctx: Ctx,
    who: SignedIn,
    user: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict[str, Any]:
    """API tokens, newest first, never the secret: everyone's (admins; `user` to
    filter) or your own."""
    return {"tokens": await anyio.to_thread.run_sync(_list_tokens, ctx, who, user)}


@api.post("/api/v1/tokens", status_code=201)
async def create_token(body: TokenIn, ctx: Ctx, who: SignedIn) -> dict[str, Any]:
    """A new token (returned once in `token`, stored hashed). Yours, or an admin's
    for anyone; `role` at most the owner's; `expires_at` or `expires_in_days`."""
    return await anyio.to_thread.run_sync(_create_token, ctx, who, body)


@api.delete("/api/v1/tokens/{token_id}")
async def revoke_token(token_id: RowId, ctx: Ctx, who: SignedIn) -> dict[str, Any]:
    """Revoke a token (yours, or anyone's for admins): refused from the next request."""
    return await anyio.to_thread.run_sync(_revoke_token, ctx, who, token_id)


# -- the page --------------------------------------------------------------------------------

PAGE = "/admin/users"
USER_FIELDS = {"id", "name", "email", "role", "password"}
TOKEN_FIELDS = {"name", "user", "role", "expires_in_days"}


def _clean(form: dict[str, str], keys: set[str]) -> dict[str, Any]:
    return {k: v.strip() for k, v in form.items() if k in keys and v.strip() != ""}


async def _form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _view(ctx: AppContext, request: Request, who: Principal, **values: Any) -> Response:
    values.setdefault("new_user", {"role": "agent"})
    values.setdefault("new_token", {})
    values.setdefault("user_errors", {})
    values.setdefault("token_errors", {})
    return page(
        request,
        who,
        "admin/users.html",
        section=PAGE,
        title="Users and tokens",
        users=user_svc.list_users(ctx.db),
        tokens=user_svc.list_tokens(ctx.db),
        roles=ROLES,
        **values,
    )


def _edit_view(
    ctx: AppContext, request: Request, who: Principal, user_id: str, **values: Any
) -> Response:
    target = user_svc.get_user(ctx.db, user_id)
    values.setdefault("form", target.to_json())
    values.setdefault("errors", {})
    return page(
        request,
        who,
        "admin/user.html",
        section=PAGE,
        title=f"User {target.id}",
        target=target,
        roles=ROLES,
        tokens=user_svc.list_tokens(ctx.db, target.id),
        **values,
    )


def _errors_of(exc: Exception) -> dict[str, str]:
    if isinstance(exc, ValidationError):
        return form_errors(exc)
    if isinstance(exc, InvalidField):
        return {exc.field: str(exc)}
    return {"": str(exc)}


@pages.get(PAGE, response_model=None, openapi_extra=needs(Permission.MANAGE_USERS))
async def users_page(request: Request) -> Response:
    """Every user with role and state, the add-user form, and all API tokens."""
    found = await guard(request, Permission.MANAGE_USERS)
    if isinstance(found, Response):
        return found
    return await anyio.to_thread.run_sync(lambda: _view(get_ctx(request), request, found))


@pages.post(PAGE, response_model=None, openapi_extra=needs(Permission.MANAGE_USERS))
async def users_page_create(request: Request) -> Response:
    """Add a user; errors re-render the form with the typed values."""
    found = await guard(request, Permission.MANAGE_USERS)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    form = await _form(request)
    typed = {k: form.get(k, "") for k in ("id", "name", "email", "role")}
    try:
        body = UserCreateIn.model_validate(_clean(form, USER_FIELDS))
        done = await anyio.to_thread.run_sync(_create_user, ctx, found, body)
    except (ValidationError, InvalidField) as exc:
        errors = _errors_of(exc)
        return await anyio.to_thread.run_sync(
            lambda: _view(ctx, request, found, new_user=typed, user_errors=errors, status_code=422)
        )
    notice = f"User {done['user']['id']} added."
    return await anyio.to_thread.run_sync(
        lambda: _view(
            ctx,
            request,
            found,
            notice=notice,
            secret=done["password"],
            secret_label=f"Password for {done['user']['id']}",
        )
    )


@pages.post(f"{PAGE}/tokens", response_model=None, openapi_extra=needs(Permission.MANAGE_TOKENS))
async def tokens_page_create(request: Request) -> Response:
    """Create a token; it is shown on the page that answers, once."""
    found = await guard(request, Permission.MANAGE_TOKENS)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    form = await _form(request)
    typed = {k: form.get(k, "") for k in TOKEN_FIELDS}
    try:
        body = TokenIn.model_validate(_clean(form, TOKEN_FIELDS))
        done = await anyio.to_thread.run_sync(_create_token, ctx, found, body)
    except (ValidationError, InvalidField, NotFoundError) as exc:
        errors = _errors_of(exc)
        if isinstance(exc, NotFoundError):
            errors = {"user": str(exc)}
        return await anyio.to_thread.run_sync(
            lambda: _view(
                ctx, request, found, new_token=typed, token_errors=errors, status_code=422
            )
        )
    notice = f"Token {done['name']!r} created for {done['user']}."
    return await anyio.to_thread.run_sync(
        lambda: _view(
            ctx, request, found, notice=notice, secret=done["token"], secret_label="API token"
        )
    )


@pages.post(
    f"{PAGE}/tokens/{{token_id}}/revoke",
    response_model=None,
    openapi_extra=needs(Permission.MANAGE_TOKENS),
)
async def tokens_page_revoke(token_id: RowId, request: Request) -> Response:
    found = await guard(request, Permission.MANAGE_TOKENS)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    await anyio.to_thread.run_sync(_revoke_token, ctx, found, token_id)
    return RedirectResponse(PAGE, status_code=303)


@pages.get(f"{PAGE}/{{user_id}}", response_model=None, openapi_extra=needs(Permission.MANAGE_USERS))
async def user_page(user_id: UserId, request: Request) -> Response:
    """One user: edit name, email and role; disable or enable; reset the password."""
    found = await guard(request, Permission.MANAGE_USERS)
    if isinstance(found, Response):
        return found
    return await anyio.to_thread.run_sync(
        lambda: _edit_view(get_ctx(request), request, found, user_id)
    )


@pages.post(
    f"{PAGE}/{{user_id}}", response_model=None, openapi_extra=needs(Permission.MANAGE_USERS)
)
async def user_page_update(user_id: UserId, request: Request) -> Response:
    found = await guard(request, Permission.MANAGE_USERS)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    form = await _form(request)
    action = form.get("action", "save")
    try:
        if action == "save":
            typed = {k: form.get(k, "") for k in ("name", "email", "role")}
            values: dict[str, Any] = {k: v.strip() for k, v in typed.items()}
            if not values["name"]:
                values.pop("name")
            if not values["role"]:
                values.pop("role")
            body = UserPatchIn.model_validate(values)
            await anyio.to_thread.run_sync(_update_user, ctx, found, user_id, body)
            notice, secret = "Saved.", None
        elif action in ("disable", "enable"):
            await anyio.to_thread.run_sync(_set_disabled, ctx, found, user_id, action == "disable")
            notice, secret = (
                (
                    "Disabled: signed out, tokens refused."
                    if action == "disable"
                    else "Enabled: they can sign in again."
                ),
                None,
            )
        elif action == "password":
            pw = form.get("password", "").strip()
            done = await anyio.to_thread.run_sync(
                _reset_password,
                ctx,
                found,
                user_id,
                PasswordIn.model_validate({"password": pw} if pw else {}),
            )
            notice, secret = "Password reset; their sessions ended.", done["password"]
        else:
            raise InvalidField("action", "choose save, disable, enable or password")
    except (ValidationError, InvalidField, LastAdmin) as exc:
        errors = _errors_of(exc)
        if action == "password" and "password" not in errors and "" not in errors:
            errors = {"password": next(iter(errors.values()))}
        form_values = {k: form.get(k, "") for k in ("name", "email", "role")}
        return await anyio.to_thread.run_sync(
            lambda: _edit_view(
                ctx, request, found, user_id, form=form_values, errors=errors, status_code=422
            )
        )
    return await anyio.to_thread.run_sync(
        lambda: _edit_view(
            ctx, request, found, user_id, notice=notice, secret=secret, secret_label="New password"
        )
    )

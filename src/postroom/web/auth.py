"""Log in, log out and the current session: sets and clears the session cookie.

The cookie is HttpOnly, SameSite=Lax, and Secure when base_url is https; the
CSRF token for the session is returned in the body. A browser's cross-site
login is refused (login CSRF). Failed logins are throttled per user and
client address (the peer's, or a configured proxy's X-Forwarded-For).
Password checks live in services/users.py.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from postroom.services import users as user_svc
from postroom.services.users import InvalidCredentials
from postroom.web.deps import PUBLIC, SESSION_COOKIE, Ctx, SignedIn, refuse_cross_site

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginIn(BaseModel):
    user: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class SessionOut(BaseModel):
    user: dict[str, Any]
    csrf_token: str | None
    via: str


async def _login_input(request: Request) -> LoginIn:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        return LoginIn(user=str(form.get("user") or ""), password=str(form.get("password") or ""))
    return LoginIn.model_validate(await request.json())


@router.post(
    "/login",
    response_model=SessionOut,
    openapi_extra={
        **PUBLIC,
        "requestBody": {"content": {"application/json": {"schema": LoginIn.model_json_schema()}}}
    },
)
async def login(request: Request, response: Response, ctx: Ctx) -> SessionOut:
    """Check a password and start a browser session (JSON or form body: user, password).
    A browser's cross-site request (Origin or Sec-Fetch-Site) is refused with 403."""
    refuse_cross_site(request, ctx)
    try:
        body = await _login_input(request)
    except (ValueError, RecursionError) as exc:  # not JSON, or too deep for the parser
        raise InvalidCredentials("send user and password (JSON or form fields)") from exc
    address = request.client.host if request.client else "-"
    ctx.limiter.check(body.user, address)
    try:
        user = await anyio.to_thread.run_sync(
            user_svc.authenticate, ctx.db, body.user, body.password, ctx.hasher
        )
    except InvalidCredentials:
        ctx.limiter.failed(body.user, address)
        raise
    ctx.limiter.succeeded(body.user, address)
    cookie, session = await anyio.to_thread.run_sync(
        user_svc.create_session, ctx.db, ctx.clock, user, ctx.config.session_max_age_s
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ctx.config.session_max_age_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=ctx.config.secure_cookies,
    )
    return SessionOut(user=user.to_json(), csrf_token=session.csrf_token, via="session")


@router.post("/logout", status_code=204)
async def logout(response: Response, principal: SignedIn, ctx: Ctx) -> Response:
    """End this browser session (needs the CSRF token like every change)."""
    if principal.via == "session":
        await anyio.to_thread.run_sync(user_svc.end_session, ctx.db, principal.secret)
    response.status_code = 204
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=ctx.config.secure_cookies
    )
    return response


@router.get("/session", response_model=SessionOut)
async def current_session(principal: SignedIn) -> SessionOut:
    """Who you are, and the CSRF token to send as X-CSRF-Token with changes."""
    return SessionOut(
        user=principal.user.to_json(), csrf_token=principal.csrf_token, via=principal.via
    )

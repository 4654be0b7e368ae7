"""Request plumbing shared by the API routers: the app context, who is asking
(session cookie or bearer token), CSRF checks and role guards.

Authenticates and authorizes by role only; which conversations a user may see
is decided in services/conversations.py. No endpoints here.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

import anyio.to_thread
import sqlalchemy as sa
from fastapi import Depends, Request
from pwdlib import PasswordHash
from pydantic import Field

from postroom.domain import permissions
from postroom.domain.permissions import Permission
from postroom.domain.routes import QueueConfig, Route
from postroom.services import users as user_svc
from postroom.services.configuration import ConfigSource, Snapshot, StaticConfig
from postroom.services.users import Forbidden, NotAuthenticated, User
from postroom.store.blobs import BlobStore
from postroom.store.schema import ID_MAX
from postroom.web.errors import CsrfRejected

# Every id a client sends (path, query or JSON body) is one of these: a number the
# database can hold, checked before any query (422 otherwise).
RowId = Annotated[int, Field(ge=1, le=ID_MAX, description=f"an id, 1 to {ID_MAX}")]

SESSION_COOKIE = "postroom_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def utc_now() -> datetime:
    return datetime.now(UTC)


class _WebLike(Protocol):
    @property
    def base_url(self) -> str: ...
    @property
    def session_max_age_s(self) -> int: ...
    @property
    def presence_timeout_s(self) -> int: ...
    @property
    def login_attempts_per_minute(self) -> int: ...


class _OutboundLike(Protocol):
    @property
    def max_recipients(self) -> int: ...
    @property
    def max_attachments(self) -> int: ...
    @property
    def max_message_size(self) -> int: ...


class _IntakeLike(Protocol):
    @property
    def thread_token_prefix(self) -> str: ...
    @property
    def message_id_domain(self) -> str: ...


class SettingsLike(Protocol):
    """The parts of runtime Settings the web app reads (web may not import runtime)."""

    @property
    def web(self) -> _WebLike: ...
    @property
    def outbound(self) -> _OutboundLike: ...
    @property
    def intake(self) -> _IntakeLike: ...
    @property
    def queues(self) -> tuple[QueueConfig, ...]: ...
    @property
    def routes(self) -> tuple[Route, ...]: ...


@dataclass(frozen=True, slots=True)
class WebConfig:
    base_url: str = "http://127.0.0.1:8025"
    session_max_age_s: int = 12 * 3600
    presence_timeout_s: float = 60.0
    login_attempts_per_minute: int = 10
    max_recipients: int = 50
    max_attachments: int = 50
    max_message_size: int = 25 * 1024 * 1024
    reference_prefix: str = "PR"
    # Only when the app runs without a store's configuration (tests): AppContext.live
    # is what the app reads.
    queues: tuple[QueueConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    message_id_domain: str = "postroom.local"
    request_wait_s: float = 10.0  # how long an agent action waits for the router
    heartbeat_s: float = 15.0  # stream keep-alive and presence heartbeat
    poll_s: float = 0.1  # event table poll interval
    metrics_allow: tuple[str, ...] = ()  # may scrape /metrics unauthenticated (web/metrics.py)

    @classmethod
    def from_settings(cls, s: SettingsLike, **overrides: Any) -> WebConfig:
        values: dict[str, Any] = {
            "base_url": s.web.base_url,
            "session_max_age_s": s.web.session_max_age_s,
            "presence_timeout_s": float(s.web.presence_timeout_s),
            "login_attempts_per_minute": s.web.login_attempts_per_minute,
            "max_recipients": s.outbound.max_recipients,
            "max_attachments": s.outbound.max_attachments,
            "max_message_size": s.outbound.max_message_size,
            "reference_prefix": s.intake.thread_token_prefix,
            "queues": tuple(s.queues),
            "routes": tuple(s.routes),
            "message_id_domain": s.intake.message_id_domain,
            "heartbeat_s": min(15.0, max(0.2, s.web.presence_timeout_s / 3)),
            "metrics_allow": tuple(getattr(s.web, "metrics_allow", ())),
        }
        values.update(overrides)
        return cls(**values)

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.lower().startswith("https://")



@dataclass
class AppContext:
    db: sa.Engine
    config: WebConfig
    blobs: BlobStore
    hasher: PasswordHash
    clock: Callable[[], datetime] = utc_now
    # Queues, routes and rules: the stored configuration (LiveConfig), or, when
    # none is given (tests), the queues and routes of `config`.
    live: ConfigSource | None = None
    limiter: user_svc.LoginLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = user_svc.LoginLimiter(self.config.login_attempts_per_minute)
        if self.live is None:
            self.live = StaticConfig(self.config.queues, self.config.routes)

    @property
    def configured(self) -> Snapshot:
        """The configuration in force now (re-read when an admin changed it)."""
        assert self.live is not None
        return self.live.current()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking and how they proved it."""

    user: User
    via: str  # "session" | "token"
    secret: str  # the cookie value or the token, to record activity
    csrf_token: str | None = None

    def touch(self, ctx: AppContext) -> bool:
        """Record that this client is still there (presence time-out); False once the
        session or token no longer works (ended, expired, revoked, user disabled)."""
        if self.via == "session":
            found = user_svc.session_for_cookie(ctx.db, ctx.clock, self.secret, touch_after_s=0)
            return found is not None
        return user_svc.user_for_token(ctx.db, ctx.clock, self.secret, touch_after_s=0) is not None


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def _same_origin(request: Request, ctx: AppContext) -> bool:
    origin = request.headers.get("origin")
    if not origin:
        return True
    if origin == "null":
        # A browser's form post from a page with `Referrer-Policy: no-referrer` (all
        # of ours) carries `Origin: null`; its Sec-Fetch-Site, which no page can set,
        # still says where it came from.
        return (request.headers.get("sec-fetch-site") or "").lower() == "same-origin"
    allowed = {
        "{0.scheme}://{0.netloc}".format(urlsplit(ctx.config.base_url)).lower(),
        f"{request.url.scheme}://{request.url.netloc}".lower(),
    }
    return origin.lower() in allowed


def refuse_cross_site(request: Request, ctx: AppContext) -> None:
    """For requests that need no session yet (signing in): a browser says where the
    request came from in `Sec-Fetch-Site` and `Origin`; another site is refused, so a
    page elsewhere cannot sign a visitor in to an account of its choosing. Clients
    that send neither header (scripts, curl) are not browsers and pass."""
    site = (request.headers.get("sec-fetch-site") or "").lower()
    if site and site not in ("same-origin", "none"):
        raise CsrfRejected(
            f"this sign-in came from another site (Sec-Fetch-Site: {site}); "
            "sign in on Postroom's own login page"
        )
    if not _same_origin(request, ctx):
        raise CsrfRejected(
            "this sign-in came from another site (Origin does not match "
            f"{ctx.config.base_url}); sign in on Postroom's own login page"
        )


async def _csrf_value(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached: the endpoint can still read it
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def authenticate(request: Request, ctx: AppContext) -> Principal:
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("use 'Authorization: Bearer <token>' with an API token")
        user = await anyio.to_thread.run_sync(
            user_svc.user_for_token, ctx.db, ctx.clock, token.strip()
        )
        if user is None:
            raise NotAuthenticated(
                "this API token is unknown, revoked or expired; create one on /admin/users, "
                "with POST /api/v1/tokens or with `postroom user token`"
            )
        return Principal(user, "token", token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotAuthenticated(
            "log in first (POST /api/v1/auth/login) or send an API token as a Bearer header"
        )
    session = await anyio.to_thread.run_sync(user_svc.session_for_cookie, ctx.db, ctx.clock, cookie)
    if session is None:
        raise NotAuthenticated("your session has ended; log in again")
    if request.method in UNSAFE:
        if not _same_origin(request, ctx):
            raise CsrfRejected("this request came from another site; use Postroom itself")
        given = await _csrf_value(request)
        if not given or not hmac.compare_digest(given, session.csrf_token):
            raise CsrfRejected(
                f"missing or wrong CSRF token: send the {CSRF_HEADER} header with the value "
                "from GET /api/v1/auth/session"
            )
    return Principal(session.user, "session", cookie, session.csrf_token)


async def get_principal(request: Request, ctx: Ctx) -> Principal:
    return await authenticate(request, ctx)


Auth = Annotated[Principal, Depends(get_principal)]


# -- the permission table at the edge ------------------------------------------------------
#
# Every route says what it needs, so tests (and the OpenAPI document, `x-permission`)
# can read it: an endpoint through a dependency made by `permitted`/`require` (its
# callable carries `.permission`), a page through `openapi_extra=needs(...)`, a
# route open to anyone (login, health, docs) through `openapi_extra=PUBLIC`.
# The dependency runs before the request body is read, so a signed-in user
# without the permission gets 403 even for a malformed body; an anonymous one
# gets 401 the same way (sign-in is the first dependency).

PERMISSION_KEY = "x-permission"
PUBLIC: dict[str, Any] = {PERMISSION_KEY: "public"}


def needs(permission: Permission) -> dict[str, Any]:
    """`openapi_extra` for a page that checks `permission` itself (admin `guard`)."""
    return {PERMISSION_KEY: permission.value}


def refusal(permission: Permission) -> Forbidden:
    roles = " or ".join(permissions.roles_with(permission))
    return Forbidden(
        f"this needs the {permission.value} permission, which the {roles} role has; "
        "ask an administrator"
    )


def permitted(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency giving the principal if their role (a token's own role when it
    has one) has `permission`, and refusing others with 403."""

    def check(principal: Auth) -> Principal:
        if not permissions.allows(principal.user.role, permission):
            raise refusal(permission)
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    return check


def require(permission: Permission) -> Callable[[Principal], User]:
    """A dependency that lets through users whose role has `permission`
    (the table in domain/permissions.py) and refuses others with 403."""

    def check(principal: Auth) -> User:
        if not permissions.allows(principal.user.role, permission):
            raise refusal(permission)
        return principal.user

    check.permission = permission  # type: ignore[attr-defined]
    return check


def route_permission(route: Any) -> str | None:
    """What `route` (a FastAPI APIRoute) declares it needs: a Permission value,
    "public", or None when it declares nothing (a bug the permission tests catch)."""
    extra = getattr(route, "openapi_extra", None) or {}
    if PERMISSION_KEY in extra:
        return str(extra[PERMISSION_KEY])
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        dep = stack.pop()
        found = getattr(dep.call, "permission", None)
        if isinstance(found, Permission):
            return found.value
        stack.extend(dep.dependencies)
    return None


# Signed in with any role: their own work (every role has OWN_WORK).
SignedIn = Annotated[Principal, Depends(permitted(Permission.OWN_WORK))]
CurrentUser = Annotated[User, Depends(require(Permission.OWN_WORK))]

# One alias per permission, for endpoint signatures (`user: CanConfigure`).
CanSeeAllWork = Annotated[User, Depends(require(Permission.SEE_ALL_WORK))]
CanActOnBacklog = Annotated[User, Depends(require(Permission.ACT_ON_BACKLOG))]
CanManageAgentStatus = Annotated[User, Depends(require(Permission.MANAGE_AGENT_STATUS))]
CanManageCanned = Annotated[User, Depends(require(Permission.MANAGE_CANNED))]
CanViewConfig = Annotated[User, Depends(require(Permission.VIEW_CONFIG))]
CanReadMetrics = Annotated[User, Depends(require(Permission.READ_METRICS))]
CanConfigure = Annotated[User, Depends(require(Permission.CONFIGURE))]
CanManageUsers = Annotated[User, Depends(require(Permission.MANAGE_USERS))]
CanManageTokens = Annotated[User, Depends(require(Permission.MANAGE_TOKENS))]
CanManageQuarantine = Annotated[User, Depends(require(Permission.MANAGE_QUARANTINE))]
CanViewAudit = Annotated[User, Depends(require(Permission.VIEW_AUDIT))]


def allowed_for_agent(
    user: User,
    agent_id: str,
    what: Sequence[str] = ("act",),
    permission: Permission = Permission.MANAGE_AGENT_STATUS,
) -> None:
    """Agents act for themselves only; roles with `permission` for anyone."""
    if user.id != agent_id and not permissions.allows(user.role, permission):
        raise Forbidden(f"you can only {what[0]} for yourself ({user.id})")

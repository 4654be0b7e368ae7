"""Users, passwords, browser sessions, API tokens and login throttling.

Owns the `users`, `web_sessions` and `api_tokens` tables: who someone is and
whether a secret proves it. Passwords are argon2id hashes (pwdlib); session
cookies and API tokens are random and stored only as sha256 digests. It knows
nothing of HTTP (cookies, headers, status codes live in web/) and it decides
nothing about which conversations a user may see (services/conversations.py).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from postroom.domain import permissions
from postroom.domain.errors import NotFoundError, PostroomError
from postroom.domain.permissions import Permission
from postroom.services import agents as agent_svc
from postroom.services.admin.audit import SYSTEM, Actor, record
from postroom.store.db import as_utc
from postroom.store.schema import agents, api_tokens, conversations, users, web_sessions

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")
TOKEN_PREFIX = "prt_"
MIN_PASSWORD = 8
MAX_PASSWORD = 1000


class InvalidCredentials(PostroomError):
    """Wrong user name, wrong password, or a disabled user."""


class NotAuthenticated(PostroomError):
    """No valid session cookie or API token came with the request."""


class Forbidden(PostroomError):
    """The user's role does not allow this."""


class InvalidField(PostroomError):
    """A value a user typed is not acceptable; `field` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class LastAdmin(PostroomError):
    """The change would leave no enabled administrator."""


class TooManyAttempts(PostroomError):
    """Too many failed logins for one user from one address."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many login attempts; wait {retry_after_s} s and try again, "
            "or ask an administrator to reset the password"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    email: str | None
    role: str
    disabled: bool = False

    @property
    def sees_everything(self) -> bool:
        """Every conversation, queue and agent (the table's see_all_work)."""
        return permissions.allows(self.role, Permission.SEE_ALL_WORK)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "role": self.role,
            "disabled": self.disabled,
        }


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


def password_hasher(*, fast: bool = False) -> PasswordHash:
    """argon2id with the library's recommended cost; `fast` for tests only."""
    if fast:
        return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    return PasswordHash((Argon2Hasher(),))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _user(row: sa.Row[Any]) -> User:
    return User(row.id, row.name, row.email, row.role, bool(row.disabled))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidField("password", f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidField("password", f"a password has at most {MAX_PASSWORD} characters")


def _check_user_id(user_id: str) -> None:
    if not user_id or len(user_id) > 200 or any(c.isspace() for c in user_id):
        raise InvalidField("id", "a user name is 1-200 characters without spaces")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidField("role", f"role must be one of {', '.join(ROLES)}")


def _check_email(email: str | None) -> None:
    if email is not None and email != "":
        local, at, domain = email.rpartition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in email):
            raise InvalidField("email", "an email address looks like name@example.com")


def generate_password() -> str:
    """A random password for a new user or a reset, shown once."""
    return secrets.token_urlsafe(15)


def _audit_user(row: sa.Row[Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "name": row.name,
        "email": row.email,
        "role": row.role,
        "disabled": bool(row.disabled),
    }


def _enabled_admins(conn: sa.Connection) -> list[str]:
    return list(
        conn.execute(
            sa.select(users.c.id)
            .where(users.c.role == "admin", users.c.disabled.is_(False))
            .order_by(users.c.id)
            .with_for_update()  # two admins stepping down at once: one waits, then sees
        ).scalars()
    )


def _keep_an_admin(conn: sa.Connection, user_id: str, what: str) -> None:
    """Refuse to disable or demote the last enabled administrator."""
    if _enabled_admins(conn) == [user_id]:
        raise LastAdmin(
            f"{user_id} is the last enabled administrator; {what} would leave nobody "
            "to administer Postroom: make another user an admin first"
        )


# -- users ----------------------------------------------------------------------


def add_user(
    db: sa.Engine,
    clock: Callable[[], datetime],
    user_id: str,
    *,
    role: str | None,
    password: str | None,
    hasher: PasswordHash,
    name: str | None = None,
    email: str | None = None,
    queues: Sequence[str] | None = None,
    skills: Sequence[tuple[str, float]] | None = None,
    languages: Sequence[str] | None = None,
    capacity: int | None = None,
    known_queues: Sequence[str] = (),
    actor: Actor = SYSTEM,
    create_only: bool = False,
    keep_an_admin: bool = False,
) -> User:
    """Create or update a user; an agent also gets (or updates) its routing profile.

    Fields left as None keep the user's current values (or the defaults: role
    `agent`, capacity 1), so updating one field never demotes or resets another.
    `create_only` refuses an existing id; `keep_an_admin` refuses to demote the
    last enabled admin. The change is in the audit log as `actor`'s."""
    if role is None:
        with db.connect() as conn:
            existing = conn.execute(sa.select(users.c.role).where(users.c.id == user_id)).first()
        role = existing.role if existing is not None else "agent"
    _check_user_id(user_id)
    _check_role(role)
    _check_email(email)
    if name is not None and len(name) > 200:
        raise InvalidField("name", "a name has at most 200 characters")
    if password is not None:
        _check_password(password)
    if create_only:
        with db.connect() as conn:
            if conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).first():
                raise InvalidField("id", f"there is already a user {user_id!r}; pick another name")
    if role == "agent":
        with db.connect() as conn:
            current = conn.execute(sa.select(agents).where(agents.c.id == user_id)).first()
        # Validates queues, skills and capacity before anything is written.
        agent_svc.add_agent(
            db,
            clock,
            user_id,
            name=name or (current.name if current else None),
            queues=queues if queues is not None else (current.queues if current else ()),
            skills=skills
            if skills is not None
            else [(str(n), float(p)) for n, p in (current.skills if current else [])],
            languages=languages
            if languages is not None
            else (current.languages if current else ()),
            capacity=capacity if capacity is not None else (current.capacity if current else 1),
            known_queues=known_queues,
        )
    # email None keeps the current one (or none); "" clears it.
    values: dict[str, Any] = {"name": name or user_id, "email": email or None, "role": role}
    if password is not None:
        values["password_hash"] = hasher.hash(password)
    with db.begin() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
        if row is None:
            conn.execute(
                users.insert().values(id=user_id, created_at=clock(), disabled=False, **values)
            )
        else:
            if create_only:
                raise InvalidField("id", f"there is already a user {user_id!r}; pick another name")
            if name is None:
                values["name"] = row.name
            if email is None:
                values["email"] = row.email
            if keep_an_admin and row.role == "admin" and role != "admin" and not row.disabled:
                _keep_an_admin(conn, user_id, f"making them {role}")
            conn.execute(users.update().where(users.c.id == user_id).values(**values))
        out = conn.execute(sa.select(users).where(users.c.id == user_id)).one()
        after = _audit_user(out)
        if after is not None and password is not None:
            after["password"] = "set"
        record(
            conn,
            clock(),
            actor,
            "user.create" if row is None else "user.update",
            "user",
            user_id,
            _audit_user(row),
            after,
        )
    return _user(out)


def get_user(db: sa.Engine, user_id: str) -> User:
    with db.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFoundError(f"no user {user_id!r}; add one with `postroom user add`")
    return _user(row)


def list_users(db: sa.Engine) -> list[User]:
    with db.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.id))]


def set_password(
    db: sa.Engine,
    user_id: str,
    password: str,
    hasher: PasswordHash,
    *,
    clock: Callable[[], datetime] | None = None,
    actor: Actor = SYSTEM,
) -> None:
    """Set a new password and end the user's browser sessions (audited as `actor`'s)."""
    _check_password(password)
    digest = hasher.hash(password)
    now = (clock or _utc_now)()
    with db.begin() as conn:
        done = conn.execute(
            users.update().where(users.c.id == user_id).values(password_hash=digest)
        ).rowcount
        if not done:
            raise NotFoundError(f"no user {user_id!r}; add one with `postroom user add`")
        ended = conn.execute(
            web_sessions.delete().where(web_sessions.c.user_id == user_id)
        ).rowcount
        record(
            conn,
            now,
            actor,
            "user.password",
            "user",
            user_id,
            None,
            {"password": "reset", "sessions_ended": int(ended or 0)},
        )


def set_disabled(
    db: sa.Engine,
    clock: Callable[[], datetime],
    user_id: str,
    disabled: bool,
    *,
    actor: Actor = SYSTEM,
    keep_an_admin: bool = False,
) -> User:
    """Disable a user, or enable them again. Disabled, they cannot sign in, their
    browser sessions are ended and their API tokens refused (from the next request:
    every request looks the user up), and an agent who is not offline is set
    offline through the router. Enabling lets them
    sign in again; their tokens work again, their sessions stay ended. Offers
    waiting for the agent are declined for them, so they go to the next agent or
    back to the queue at once. Conversations they hold stay with them until a
    supervisor transfers them. `keep_an_admin` refuses to disable the last enabled
    admin. Audited as `actor`'s."""
    with db.begin() as conn:
        before = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
        if before is None:
            raise NotFoundError(f"no user {user_id!r}; see `postroom user list`")
        if disabled and keep_an_admin and before.role == "admin":
            _keep_an_admin(conn, user_id, "disabling them")
        conn.execute(users.update().where(users.c.id == user_id).values(disabled=disabled))
        if bool(before.disabled) != disabled:
            record(
                conn,
                clock(),
                actor,
                "user.disable" if disabled else "user.enable",
                "user",
                user_id,
                {"disabled": bool(before.disabled)},
                {"disabled": disabled},
            )
        presence = None
        offered: list[int] = []
        if disabled:
            conn.execute(web_sessions.delete().where(web_sessions.c.user_id == user_id))
            presence = conn.execute(
                sa.select(agents.c.presence).where(agents.c.id == user_id)
            ).scalar()
            offered = list(
                conn.execute(
                    sa.select(conversations.c.id).where(
                        conversations.c.agent_id == user_id, conversations.c.state == "alerting"
                    )
                ).scalars()
            )
    if presence is not None and presence != "offline":
        agent_svc.request(
            db,
            clock,
            "presence",
            agent_id=user_id,
            data={"presence": "offline", "cause": "disabled"},
        )
    for cid in offered:  # offline stops new offers; the pending ones move on now
        agent_svc.request(db, clock, "decline", agent_id=user_id, conversation_id=cid)
    return get_user(db, user_id)


def authenticate(db: sa.Engine, user_id: str, password: str, hasher: PasswordHash) -> User:
    with db.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None or row.disabled or not row.password_hash:
        hasher.hash(password)  # same cost whether or not the user exists
        raise InvalidCredentials("wrong user name or password")
    if not hasher.verify(password, row.password_hash):
        raise InvalidCredentials("wrong user name or password")
    return _user(row)


# -- browser sessions --------------------------------------------------------------


def create_session(
    db: sa.Engine, clock: Callable[[], datetime], user: User, max_age_s: int
) -> tuple[str, Session]:
    """A new session: the cookie value (shown once) and what it stands for."""
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = clock()
    expires = now + timedelta(seconds=max_age_s)
    with db.begin() as conn:
        conn.execute(
            web_sessions.insert().values(
                id_hash=_digest(cookie),
                user_id=user.id,
                csrf_token=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=expires,
            )
        )
        conn.execute(web_sessions.delete().where(web_sessions.c.expires_at < now))
    return cookie, Session(user, csrf, expires)


def session_for_cookie(
    db: sa.Engine, clock: Callable[[], datetime], cookie: str, *, touch_after_s: float = 5.0
) -> Session | None:
    """The live session behind a cookie value, marking it seen now."""
    now = clock()
    key = _digest(cookie)
    with db.connect() as conn:
        row = conn.execute(
            sa.select(web_sessions, users)
            .join(users, users.c.id == web_sessions.c.user_id)
            .where(web_sessions.c.id_hash == key)
        ).first()
    if row is None or row.disabled:
        return None
    expires = as_utc(row.expires_at)
    seen = as_utc(row.last_seen_at)
    assert expires is not None and seen is not None
    if expires <= now:
        return None
    if (now - seen).total_seconds() >= touch_after_s:
        touch_session(db, clock, cookie)
    return Session(User(row.user_id, row.name, row.email, row.role, False), row.csrf_token, expires)


def touch_session(db: sa.Engine, clock: Callable[[], datetime], cookie: str) -> None:
    """Record that the browser holding this session is still there."""
    with db.begin() as conn:
        conn.execute(
            web_sessions.update()
            .where(web_sessions.c.id_hash == _digest(cookie))
            .values(last_seen_at=clock())
        )


def end_session(db: sa.Engine, cookie: str) -> None:
    with db.begin() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.id_hash == _digest(cookie)))


# -- API tokens ------------------------------------------------------------------------


MAX_TOKEN_DAYS = 3650


def _token_json(row: sa.Row[Any]) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        when = as_utc(value)
        return when.isoformat() if when is not None else None

    return {
        "id": row.id,
        "user": row.user_id,
        "name": row.name,
        "role": row.role,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
    }


def create_token(
    db: sa.Engine,
    clock: Callable[[], datetime],
    user_id: str,
    name: str,
    *,
    role: str | None = None,
    expires_at: datetime | None = None,
    expires_in_days: int | None = None,
    actor: Actor = SYSTEM,
) -> str:
    """A new API token for the user; only its digest is stored, so show it once.

    `role` (at most the user's; None: whatever the user's role is at each request)
    bounds what the token may do; it stops working at `expires_at` (or after
    `expires_in_days`). Audited as `actor`'s (never the token itself)."""
    return issue_token(
        db,
        clock,
        user_id,
        name,
        role=role,
        expires_at=expires_at,
        expires_in_days=expires_in_days,
        actor=actor,
    )[0]


def issue_token(
    db: sa.Engine,
    clock: Callable[[], datetime],
    user_id: str,
    name: str,
    *,
    role: str | None = None,
    expires_at: datetime | None = None,
    expires_in_days: int | None = None,
    actor: Actor = SYSTEM,
) -> tuple[str, dict[str, Any]]:
    """`create_token`, returning the token and its listing entry."""
    user = get_user(db, user_id)
    name = name or "api"
    if len(name) > 200:
        raise InvalidField("name", "a token name has at most 200 characters")
    if role is not None:
        _check_role(role)
        if not permissions.at_most(role, user.role):
            raise InvalidField(
                "role",
                f"a token of {user.id} can have at most their role ({user.role}), not {role}",
            )
    now = clock()
    if expires_in_days is not None:
        if expires_at is not None:
            raise InvalidField("expires_in_days", "give expires_at or expires_in_days, not both")
        if not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
            raise InvalidField(
                "expires_in_days", f"a token expires after 1 to {MAX_TOKEN_DAYS} days"
            )
        expires_at = now + timedelta(days=expires_in_days)
    if expires_at is not None:
        expires_at = as_utc(expires_at)
        assert expires_at is not None
        if expires_at <= now:
            raise InvalidField("expires_at", "the expiry must be in the future")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.begin() as conn:
        tid = conn.execute(
            api_tokens.insert().values(
                user_id=user_id,
                name=name,
                token_hash=_digest(token),
                created_at=now,
                role=role,
                expires_at=expires_at,
            )
        ).inserted_primary_key[0]
        row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == tid)).one()
        info = _token_json(row)
        record(conn, now, actor, "token.create", "token", str(tid), None, info)
    return token, info


def list_tokens(db: sa.Engine, user_id: str | None = None) -> list[dict[str, Any]]:
    """Tokens (all, or one user's), newest first, never the secret."""
    query = sa.select(api_tokens).order_by(api_tokens.c.id.desc())
    if user_id is not None:
        query = query.where(api_tokens.c.user_id == user_id)
    with db.connect() as conn:
        return [_token_json(r) for r in conn.execute(query)]


def get_token(db: sa.Engine, token_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise NotFoundError(f"no API token {token_id}; see GET /api/v1/tokens")
    return _token_json(row)


def revoke_token(
    db: sa.Engine, clock: Callable[[], datetime], token_id: int, *, actor: Actor = SYSTEM
) -> dict[str, Any]:
    """Revoke one token (it is refused from the next request); revoking a revoked
    token changes nothing. Its listing entry."""
    now = clock()
    with db.begin() as conn:
        row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"no API token {token_id}; see GET /api/v1/tokens")
        if row.revoked_at is None:
            conn.execute(
                api_tokens.update().where(api_tokens.c.id == token_id).values(revoked_at=now)
            )
            record(
                conn,
                now,
                actor,
                "token.revoke",
                "token",
                str(token_id),
                {"revoked_at": None},
                {"revoked_at": now.isoformat()},
            )
        row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).one()
    return _token_json(row)


def revoke_tokens(
    db: sa.Engine,
    clock: Callable[[], datetime],
    user_id: str,
    name: str,
    *,
    actor: Actor = SYSTEM,
) -> int:
    """Revoke every live token of `user_id` named `name`; how many."""
    with db.connect() as conn:
        ids = list(
            conn.execute(
                sa.select(api_tokens.c.id).where(
                    api_tokens.c.user_id == user_id,
                    api_tokens.c.name == name,
                    api_tokens.c.revoked_at.is_(None),
                )
            ).scalars()
        )
    for tid in ids:
        revoke_token(db, clock, tid, actor=actor)
    return len(ids)


def effective_role(user_role: str, token_role: str | None) -> str:
    """What a request with a token may do: the token's role, but never more than
    the user's role now (a user demoted after the token was made)."""
    if token_role is None or not permissions.at_most(token_role, user_role):
        return user_role
    return token_role


def user_for_token(
    db: sa.Engine, clock: Callable[[], datetime], token: str, *, touch_after_s: float = 5.0
) -> User | None:
    """The user a live token stands for, with the token's role; None for an unknown,
    revoked or expired token or a disabled user."""
    now = clock()
    key = _digest(token)
    with db.connect() as conn:
        row = conn.execute(
            sa.select(
                api_tokens.c.id.label("token_id"),
                api_tokens.c.last_used_at.label("used"),
                api_tokens.c.role.label("token_role"),
                api_tokens.c.expires_at.label("token_expires"),
                users,
            )
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.token_hash == key, api_tokens.c.revoked_at.is_(None))
        ).first()
    if row is None or row.disabled:
        return None
    expires = as_utc(row.token_expires)
    if expires is not None and expires <= now:
        return None
    used = as_utc(row.used)
    if used is None or (now - used).total_seconds() >= touch_after_s:
        with db.begin() as conn:
            conn.execute(
                api_tokens.update().where(api_tokens.c.id == row.token_id).values(last_used_at=now)
            )
    return User(row.id, row.name, row.email, effective_role(row.role, row.token_role), False)


# -- login throttling -------------------------------------------------------------------


class LoginLimiter:
    """At most `per_minute` failed logins per (user, address) in any 60 s window.

    Kept in memory: each web process counts its own attempts.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self.clock()
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] >= 60.0:
            q.popleft()
        return q

    def check(self, user_id: str, address: str) -> None:
        q = self._recent((user_id.lower(), address))
        if len(q) >= self.per_minute:
            raise TooManyAttempts(max(1, int(60.0 - (self.clock() - q[0])) + 1))

    def failed(self, user_id: str, address: str) -> None:
        self._recent((user_id.lower(), address)).append(self.clock())
        if len(self._failures) > 10000:  # forget quiet keys
            for k in [k for k, v in self._failures.items() if not v]:
                del self._failures[k]

    def succeeded(self, user_id: str, address: str) -> None:
        self._failures.pop((user_id.lower(), address), None)


# -- presence time-out -----------------------------------------------------------------------


def agents_gone(db: sa.Engine, now: datetime, timeout_s: float) -> list[str]:
    """Agents on some presence other than offline whose browser and API clients have
    all been silent for `timeout_s`. Agents that never used the web are left alone."""
    cutoff = now - timedelta(seconds=timeout_s)
    seen = (
        sa.select(web_sessions.c.user_id.label("uid"), web_sessions.c.last_seen_at.label("at"))
        .union_all(
            sa.select(api_tokens.c.user_id, api_tokens.c.last_used_at).where(
                api_tokens.c.last_used_at.is_not(None)
            )
        )
        .subquery()
    )
    last = (
        sa.select(seen.c.uid, sa.func.max(seen.c.at).label("last")).group_by(seen.c.uid).subquery()
    )
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(agents.c.id, last.c.last)
            .join(last, last.c.uid == agents.c.id)
            .where(agents.c.presence != "offline")
            .order_by(agents.c.id)
        ).all()
    out = []
    for aid, at in rows:
        when = as_utc(at)
        if when is not None and when < cutoff:
            out.append(str(aid))
    return out


def take_gone_agents_off_queue(
    db: sa.Engine, clock: Callable[[], datetime], timeout_s: float
) -> list[str]:
    """Set presence `offline` (through the router) for every agent in `agents_gone`."""
    gone = agents_gone(db, clock(), timeout_s)
    for aid in gone:
        agent_svc.request(
            db, clock, "presence", agent_id=aid, data={"presence": "offline", "cause": "timeout"}
        )
    return gone

"""The permission table on every route: each API operation and page of the app
(found by walking the app's routes, so routes added later are checked too)
declares what it needs, and for every role it answers 403 exactly when
domain/permissions.py says no. Anonymous callers get 401 (API) or the login
redirect (pages); a disabled user's session and token, a revoked token and an
expired token get the same; a token bound to a lower role than its user's
acts with that role. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from postroom.domain import permissions
from postroom.domain.permissions import Permission
from postroom.services import users as user_svc
from postroom.web.app import routes
from postroom.web.deps import CSRF_HEADER, route_permission
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api, LiveServer, login

api = fx.api  # the shared fixture


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    route: Any  # a FastAPI route context: dependant, body_field, openapi_extra

    @property
    def page(self) -> bool:
        return not self.path.startswith("/api/")

    def url(self, user_id: str) -> str:
        """Valid-looking values, so the guard (not validation) decides: the
        caller's own id for user ids (an agent may act for themselves), 1 for
        the rest (numbers and names alike)."""
        out = self.path
        for param in self.route.dependant.path_params:
            value = user_id if param.name == "user_id" else "1"
            out = out.replace("{" + param.name + ":path}", value)
            out = out.replace("{" + param.name + "}", value)
        return out


def operations(app: FastAPI) -> Iterator[Op]:
    for route in routes(app):
        for method in sorted(set(route.methods) - {"HEAD"}):
            yield Op(method, route.path_format, route)


def _call(client: httpx.Client, op: Op, user_id: str) -> tuple[int, str, str]:
    """Status, body (unless it streams) and Location of one request. A streamed
    answer (the event stream) is closed after its status line."""
    kwargs: dict[str, Any] = {}
    if op.route.body_field is not None and op.method in ("POST", "PUT", "PATCH", "DELETE"):
        kwargs["json"] = {}
    with client.stream(op.method, op.url(user_id), **kwargs) as r:
        streaming = r.headers.get("content-type", "").startswith("text/event-stream")
        body = "" if streaming else r.read().decode("utf-8", "replace")
        return r.status_code, body, r.headers.get("location", "")


def guard(permission: str, body: str) -> bool:
    """Is this 403 the permission guard's (its message names the permission)?"""
    return f"needs the {permission} permission" in body


def _bearer(base: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=base, timeout=httpx.Timeout(20.0), headers={"Authorization": f"Bearer {token}"}
    )


def _token(api: Api, user: str, name: str, **kw: Any) -> str:
    return user_svc.create_token(api.db, api.comps.clock, user, name, **kw)


def test_every_route_declares_its_permission(api: Api) -> None:
    undeclared = [
        f"{op.method} {op.path}" for op in operations(api.app) if route_permission(op.route) is None
    ]
    assert not undeclared, (
        "these routes say nothing about who may call them; use a deps.Can... alias "
        "(or deps.permitted/require) for an endpoint, openapi_extra=deps.needs(...) for a "
        f"page, openapi_extra=deps.PUBLIC for one open to anybody: {undeclared}"
    )
    known = {p.value for p in Permission} | {"public"}
    assert {route_permission(op.route) for op in operations(api.app)} <= known


def test_openapi_lists_each_operations_permission(api: Api) -> None:
    spec = api.client("sue").get("/api/v1/openapi.json").json()
    for op in operations(api.app):
        if op.route.include_in_schema:
            found = spec["paths"][op.path][op.method.lower()]
            assert found["x-permission"] == route_permission(op.route), op


def test_every_route_answers_as_the_table_says_for_every_role(api: Api) -> None:
    clock = api.comps.clock
    # A decoy token takes id 1, so DELETE /api/v1/tokens/1 revokes nothing we use.
    _token(api, "bob", "decoy")
    identities: dict[str, tuple[str, str]] = {  # label -> (token, user id), role from table
        "agent": (_token(api, "ann", "matrix"), "ann"),
        "supervisor": (_token(api, "sue", "matrix"), "sue"),
        "admin": (_token(api, "adam", "matrix"), "adam"),
        # An admin's token bound to the agent role has an agent's powers only.
        "admin as agent": (_token(api, "adam", "as-agent", role="agent"), "adam"),
    }
    role_of = {"agent": "agent", "supervisor": "supervisor", "admin": "admin",
               "admin as agent": "agent"}
    revoked = _token(api, "adam", "revoked")
    user_svc.revoke_tokens(api.db, clock, "adam", "revoked")
    expired = user_svc.create_token(
        api.db, lambda: clock() - timedelta(days=2), "adam", "expired", expires_in_days=1
    )
    bob_token = _token(api, "bob", "matrix")
    with LiveServer(api.app) as srv:
        bob_session = login(srv.url, "bob")
        user_svc.set_disabled(api.db, clock, "bob", True)
        refused: dict[str, httpx.Client] = {
            "anonymous": httpx.Client(base_url=srv.url, timeout=httpx.Timeout(20.0)),
            "disabled user's session": bob_session,
            "disabled user's token": _bearer(srv.url, bob_token),
            "revoked token": _bearer(srv.url, revoked),
            "expired token": _bearer(srv.url, expired),
        }
        clients = {label: _bearer(srv.url, token) for label, (token, _) in identities.items()}
        wrong: list[str] = []
        checked = 0
        for op in operations(api.app):
            needed = route_permission(op.route)
            if needed is None or needed == "public":
                continue
            permission = Permission(needed)
            for label, client in refused.items():
                status, body, location = _call(client, op, "bob")
                # Pages send browsers to the login; their htmx fragments and the
                # message-body frame answer 401 (htmx follows HX-Redirect).
                to_login = status in (302, 303) and location.endswith("/login")
                ok = (to_login or status == 401) if op.page else status == 401
                if not ok:
                    wrong.append(f"{op.method} {op.path} as {label}: {status} {body[:160]}")
            for label, client in clients.items():
                status, body, _ = _call(client, op, identities[label][1])
                allowed = permissions.allows(role_of[label], permission)
                if status >= 500 or status == 401:
                    wrong.append(f"{op.method} {op.path} as {label}: {status} {body[:160]}")
                elif allowed and status == 403 and (label == "agent" or guard(needed, body)):
                    # The guard let them through; a rule of the endpoint itself may
                    # still refuse (an admin who is not an agent starting an email),
                    # but never an agent their own work.
                    wrong.append(f"{op.method} {op.path} as {label}: refused although the "
                                 f"table gives {label} {needed}: {body[:160]}")
                elif not allowed and status != 403:
                    wrong.append(f"{op.method} {op.path} as {label}: {status}, not 403, "
                                 f"although the table does not give {label} {needed}")
                checked += 1
        for c in (*refused.values(), *clients.values()):
            c.close()
    assert not wrong, "\n".join(wrong)
    assert checked > 100


def test_a_refused_permission_says_which_one_and_which_roles_have_it(api: Api) -> None:
    r = api.client("ann").post("/api/v1/users", json={"id": "new-one"})
    assert r.status_code == 403
    message = r.json()["error"]["message"]
    assert "manage_users" in message and "admin" in message


def test_the_guard_runs_before_body_validation(api: Api) -> None:
    # A malformed body is not looked at before the caller is known and allowed.
    bad = {"id": 12, "role": "emperor", "extra": True}
    r = api.client("ann").post("/api/v1/users", json=bad)
    assert r.status_code == 403, r.text
    with TestClient(api.app) as anon:
        assert anon.post("/api/v1/users", json=bad).status_code == 401
    assert api.client("adam").post("/api/v1/users", json=bad).status_code == 422


def test_sessions_need_csrf_even_for_allowed_roles(api: Api) -> None:
    adam = api.client("adam")
    token = adam.headers.pop(CSRF_HEADER)
    try:
        r = adam.post("/api/v1/users", json={"id": "new-one"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_rejected"
    finally:
        adam.headers[CSRF_HEADER] = token


@pytest.mark.parametrize("role", ["agent", "supervisor", "admin"])
def test_a_token_never_has_more_than_its_users_role_now(api: Api, role: str) -> None:
    # sue's admin-less token is bound to "supervisor"; demote her and it acts as an agent.
    token = _token(api, "sue", "bound", role="supervisor")
    user_svc.add_user(api.db, api.comps.clock, "sue", role=role, password=None,
                      hasher=fx.FAST, known_queues=["support"])
    with LiveServer(api.app) as srv, _bearer(srv.url, token) as c:
        me = c.get("/api/v1/users/me").json()
        expected = "supervisor" if role in ("supervisor", "admin") else "agent"
        assert me["role"] == expected

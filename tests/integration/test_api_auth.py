"""Login, sessions, CSRF, rate limiting, API tokens and role checks."""

from __future__ import annotations

from fastapi.testclient import TestClient

from postroom.services import users as user_svc
from postroom.web.deps import CSRF_HEADER, SESSION_COOKIE
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import PASSWORDS, Api, close_api, make_api

api = fx.api  # the shared fixture



def test_login_sets_a_httponly_lax_cookie_and_returns_the_csrf_token(api: Api) -> None:
    c = TestClient(api.app)
    r = c.post("/api/v1/auth/login", json={"user": "ann", "password": PASSWORDS["ann"]})
    assert r.status_code == 200
    assert r.json()["user"]["role"] == "agent" and r.json()["csrf_token"]
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
    assert c.get("/api/v1/auth/session").json()["user"]["id"] == "ann"


def test_cookie_is_secure_when_base_url_is_https(any_settings) -> None:  # type: ignore[no-untyped-def]
    a = make_api(any_settings, router=False, base_url="https://desk.example.com")
    try:
        r = TestClient(a.app, base_url="https://testserver").post(
            "/api/v1/auth/login", json={"user": "ann", "password": PASSWORDS["ann"]}
        )
        assert "Secure" in r.headers["set-cookie"]
    finally:
        close_api(a)


def test_wrong_password_is_401_with_a_json_error(api: Api) -> None:
    r = TestClient(api.app).post("/api/v1/auth/login", json={"user": "ann", "password": "nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_credentials"
    assert r.json()["error"]["message"]


def test_no_credentials_is_401(api: Api) -> None:
    r = TestClient(api.app).get("/api/v1/conversations")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


def test_changes_with_the_cookie_need_the_csrf_token(api: Api) -> None:
    c = TestClient(api.app)
    r = c.post("/api/v1/auth/login", json={"user": "ann", "password": PASSWORDS["ann"]})
    token = r.json()["csrf_token"]
    body = {"presence": "available"}
    r = c.put("/api/v1/users/ann/presence", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_rejected"
    r = c.put("/api/v1/users/ann/presence", json=body, headers={CSRF_HEADER: "wrong"})
    assert r.status_code == 403
    r = c.put("/api/v1/users/ann/presence", json=body, headers={CSRF_HEADER: token})
    assert r.status_code == 200, r.text
    # a form post may carry it as a field instead
    r = c.post("/api/v1/auth/logout", data={"csrf_token": "wrong"})
    assert r.status_code == 403
    r = c.post("/api/v1/auth/logout", data={"csrf_token": token})
    assert r.status_code == 204
    assert c.get("/api/v1/auth/session").status_code == 401


def test_cross_site_origin_is_rejected_even_with_the_token(api: Api) -> None:
    c = api.client("ann")
    r = c.put("/api/v1/users/ann/presence", json={"presence": "available"},
              headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_rejected"


def test_login_attempts_are_limited_per_user_and_address(any_settings) -> None:  # type: ignore[no-untyped-def]
    a = make_api(any_settings, router=False, login_attempts_per_minute=3)
    try:
        c = TestClient(a.app)
        for _ in range(3):
            assert c.post("/api/v1/auth/login", json={"user": "ann", "password": "bad"}).status_code == 401
        r = c.post("/api/v1/auth/login", json={"user": "ann", "password": PASSWORDS["ann"]})
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts"
        assert int(r.headers["Retry-After"]) > 0
        # another user from the same address is not affected
        r = c.post("/api/v1/auth/login", json={"user": "bob", "password": PASSWORDS["bob"]})
        assert r.status_code == 200
    finally:
        close_api(a)


def test_bearer_token_works_without_csrf_and_can_be_revoked(api: Api) -> None:
    token = user_svc.create_token(api.db, api.comps.clock, "ann", "script")
    c = TestClient(api.app)
    h = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/v1/users/me", headers=h).json()["id"] == "ann"
    assert c.put("/api/v1/users/ann/presence", json={"presence": "available"}, headers=h).status_code == 200
    with api.db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").scalar_one()
    assert stored != token and token not in stored  # only a digest is kept
    assert user_svc.revoke_tokens(api.db, api.comps.clock, "ann", "script") == 1
    r = c.get("/api/v1/users/me", headers=h)
    assert r.status_code == 401
    assert c.get("/api/v1/users/me", headers={"Authorization": "Bearer prt_unknown"}).status_code == 401


def test_passwords_are_stored_as_argon2_hashes(api: Api) -> None:
    with api.db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users WHERE id = 'ann'").scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORDS["ann"] not in stored


def test_new_password_ends_sessions(api: Api) -> None:
    c = api.client("ann")
    assert c.get("/api/v1/users/me").status_code == 200
    user_svc.set_password(api.db, "ann", "another-secret", user_svc.password_hasher(fast=True))
    assert c.get("/api/v1/users/me").status_code == 401


def test_agents_cannot_use_supervisor_endpoints(api: Api) -> None:
    r = api.client("ann").post("/api/v1/canned-responses", json={"name": "x", "text": "y"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.client("sue").post("/api/v1/canned-responses", json={"name": "x", "text": "y"}).status_code == 201


def test_openapi_and_docs_are_served(api: Api) -> None:
    c = TestClient(api.app)
    spec = c.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/conversations", "/api/v1/events/stream", "/api/v1/users/{user_id}/presence",
                 "/api/v1/queues", "/api/v1/canned-responses", "/api/v1/uploads"):
        assert path in spec["paths"]
    assert c.get("/api/v1/docs").status_code == 200


def test_unknown_endpoint_and_bad_input_are_json_errors(api: Api) -> None:
    c = api.client("ann")
    r = c.get("/api/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = c.put("/api/v1/users/ann/presence", json={})
    assert r.status_code == 422 and "presence" in r.json()["error"]["message"]

"""The users and tokens admin API (web/admin/users.py over services/users.py):
create, edit, disable, enable and reset users; create, list and revoke tokens
with a role and an expiry; every change in the audit log without its secret;
the last enabled admin kept. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from postroom.runtime.cli import main
from postroom.services import users as user_svc
from postroom.services.admin import audit
from postroom.store.schema import agents, api_tokens
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import PASSWORDS, Api

api = fx.api  # the shared fixture


def _bearer(api: Api, token: str) -> TestClient:
    return TestClient(api.app, headers={"Authorization": f"Bearer {token}"})


def _audit(api: Api, **filters: Any) -> list[dict[str, Any]]:
    with api.db.connect() as conn:
        return audit.entries(conn, **filters)


def test_admin_creates_a_user_with_a_generated_password_shown_once(api: Api) -> None:
    adam = api.client("adam")
    r = adam.post("/api/v1/users", json={"id": "cat", "name": "Cat", "email": "cat@example.com"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"] == {"id": "cat", "name": "Cat", "email": "cat@example.com",
                            "role": "agent", "disabled": False}
    password = body["password"]
    assert password and len(password) >= 16
    login = TestClient(api.app).post("/api/v1/auth/login", json={"user": "cat", "password": password})
    assert login.status_code == 200
    with api.db.connect() as conn:  # an agent gets a routing profile
        assert conn.execute(sa.select(agents.c.id).where(agents.c.id == "cat")).scalar() == "cat"
    (entry,) = _audit(api, action="user.create", target_id="cat")
    assert entry["actor"] == "adam" and entry["via"] == "session"
    assert password not in str(entry) and entry["after"]["role"] == "agent"
    # Given a password, none comes back.
    r = adam.post("/api/v1/users", json={"id": "dan", "role": "supervisor", "password": "dan-secret-1"})
    assert r.status_code == 201 and r.json()["password"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "ann"}, "id"),  # taken
        ({"id": "has space"}, "id"),
        ({"id": "eve", "email": "not-an-address"}, "email"),
        ({"id": "eve", "role": "emperor"}, "role"),
        ({"id": "eve", "password": "short"}, "password"),
    ],
)
def test_user_validation_errors_name_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    r = api.client("adam").post("/api/v1/users", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.get("field") == field or field in error["message"]


def test_edit_role_name_and_email(api: Api) -> None:
    adam = api.client("adam")
    r = adam.patch("/api/v1/users/bob", json={"role": "supervisor", "name": "Robert"})
    assert r.status_code == 200 and r.json()["role"] == "supervisor" and r.json()["name"] == "Robert"
    assert api.client("bob").get("/api/v1/users").json()["users"][0]["id"] == "adam"  # sees all
    r = adam.patch("/api/v1/users/bob", json={"email": "bob@example.com"})
    assert r.json()["email"] == "bob@example.com" and r.json()["role"] == "supervisor"
    assert adam.patch("/api/v1/users/bob", json={"email": ""}).json()["email"] is None
    assert adam.patch("/api/v1/users/nobody", json={"name": "X"}).status_code == 404
    (entry, *_) = _audit(api, action="user.update", target_id="bob")
    assert entry["before"]["email"] == "bob@example.com" and entry["after"]["email"] is None


def test_the_last_enabled_admin_is_kept(api: Api) -> None:
    adam = api.client("adam")
    r = adam.patch("/api/v1/users/adam", json={"role": "supervisor"})
    assert r.status_code == 409 and "last enabled administrator" in r.json()["error"]["message"]
    r = adam.post("/api/v1/users/adam/disable")
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"
    # With a second admin, either may step down.
    assert adam.patch("/api/v1/users/sue", json={"role": "admin"}).status_code == 200
    assert adam.patch("/api/v1/users/adam", json={"role": "supervisor"}).status_code == 200
    assert api.client("sue").post("/api/v1/users/sue/disable").status_code == 409


def test_disable_through_the_api_stops_session_and_token_at_once(api: Api) -> None:
    ann = api.client("ann")
    token = user_svc.create_token(api.db, api.comps.clock, "ann", "script")
    script = _bearer(api, token)
    api.on_queue("ann")
    assert script.get("/api/v1/users/me").status_code == 200
    r = api.client("adam").post("/api/v1/users/ann/disable")
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert ann.get("/api/v1/users/me").status_code == 401
    assert script.get("/api/v1/users/me").status_code == 401
    fx.eventually(lambda: _presence(api, "ann") == "offline")
    r = api.client("adam").post("/api/v1/users/ann/enable")
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert script.get("/api/v1/users/me").status_code == 200
    actions = [e["action"] for e in _audit(api, target_id="ann")]
    assert actions[:2] == ["user.enable", "user.disable"]


def _presence(api: Api, agent: str) -> str:
    with api.db.connect() as conn:
        return str(conn.execute(sa.select(agents.c.presence).where(agents.c.id == agent)).scalar())


def test_password_reset_ends_sessions_and_never_reaches_the_audit(api: Api) -> None:
    ann = api.client("ann")
    r = api.client("adam").post("/api/v1/users/ann/password", json={"password": "brand-new-pw-1"})
    assert r.status_code == 200 and r.json()["password"] is None
    assert ann.get("/api/v1/users/me").status_code == 401
    anon = TestClient(api.app)
    assert anon.post("/api/v1/auth/login", json={"user": "ann", "password": PASSWORDS["ann"]}).status_code == 401
    assert anon.post("/api/v1/auth/login", json={"user": "ann", "password": "brand-new-pw-1"}).status_code == 200
    r = api.client("adam").post("/api/v1/users/ann/password")  # generated
    generated = r.json()["password"]
    assert generated
    entries = _audit(api, action="user.password", target_id="ann")
    assert len(entries) == 2
    assert "brand-new-pw-1" not in str(entries) and generated not in str(entries)


def test_tokens_are_shown_once_listed_without_secret_and_revoked(api: Api) -> None:
    adam = api.client("adam")
    r = adam.post("/api/v1/tokens", json={"name": "reports", "user": "sue", "expires_in_days": 30})
    assert r.status_code == 201, r.text
    made = r.json()
    token = made["token"]
    assert token.startswith("prt_") and made["user"] == "sue" and made["role"] is None
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    with api.db.connect() as conn:
        stored = conn.execute(sa.select(api_tokens.c.token_hash).where(api_tokens.c.id == made["id"])).scalar()
    assert stored != token and len(str(stored)) == 64
    script = _bearer(api, token)
    assert script.get("/api/v1/users/me").json()["id"] == "sue"
    listed = {t["id"]: t for t in adam.get("/api/v1/tokens").json()["tokens"]}
    assert token not in str(listed) and listed[made["id"]]["last_used_at"] is not None
    assert adam.delete(f"/api/v1/tokens/{made['id']}").json()["revoked_at"] is not None
    assert script.get("/api/v1/users/me").status_code == 401
    actions = [e["action"] for e in _audit(api, target_type="token")]
    assert actions == ["token.revoke", "token.create"]
    assert token not in str(_audit(api, target_type="token"))


def test_a_token_bound_to_a_lower_role_acts_with_it(api: Api) -> None:
    r = api.client("adam").post("/api/v1/tokens", json={"name": "low", "role": "agent"})
    low = _bearer(api, r.json()["token"])
    assert low.get("/api/v1/users/me").json()["role"] == "agent"
    assert low.post("/api/v1/users", json={"id": "zed"}).status_code == 403
    assert low.get("/api/v1/status").status_code == 403
    # ... and cannot make itself a stronger one.
    r = low.post("/api/v1/tokens", json={"name": "up", "role": "admin"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "role"
    r = low.post("/api/v1/tokens", json={"name": "same"})
    assert r.status_code == 201 and r.json()["role"] == "agent"


def test_a_token_role_is_at_most_its_users(api: Api) -> None:
    r = api.client("adam").post("/api/v1/tokens", json={"user": "ann", "role": "supervisor"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "role"
    assert "at most their role (agent)" in r.json()["error"]["message"]


def test_an_expired_token_is_refused(api: Api) -> None:
    clock = api.comps.clock
    token = user_svc.create_token(
        api.db, lambda: clock() - timedelta(days=3), "sue", "old", expires_in_days=2
    )
    r = _bearer(api, token).get("/api/v1/users/me")
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    r = api.client("adam").post(
        "/api/v1/tokens", json={"expires_at": "2001-01-01T00:00:00Z"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "expires_at"


def test_users_manage_their_own_tokens_only(api: Api) -> None:
    ann = api.client("ann")
    mine = ann.post("/api/v1/tokens", json={"name": "mine"})
    assert mine.status_code == 201 and mine.json()["user"] == "ann"
    bobs = api.client("bob").post("/api/v1/tokens", json={"name": "bobs"}).json()
    assert ann.post("/api/v1/tokens", json={"user": "bob"}).status_code == 403
    assert [t["user"] for t in ann.get("/api/v1/tokens").json()["tokens"]] == ["ann"]
    assert ann.get("/api/v1/tokens", params={"user": "bob"}).status_code == 403
    assert ann.delete(f"/api/v1/tokens/{bobs['id']}").status_code == 404
    assert ann.delete(f"/api/v1/tokens/{mine.json()['id']}").status_code == 200
    everyone = {t["user"] for t in api.client("adam").get("/api/v1/tokens").json()["tokens"]}
    assert everyone == {"ann", "bob"}


def test_cli_token_role_and_expiry(api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = api.comps.settings
    cfg = tmp_path / "postroom.toml"
    lines = [f'data_dir = "{s.data_dir}"']
    if s.database_url:
        lines.append(f'database_url = "{s.database_url}"')
    cfg.write_text("\n".join(lines) + "\n")
    code = main(["user", "token", "adam", "--name", "cron", "--role", "supervisor",
                 "--expires-days", "7", "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert code == 0, err
    token = out.strip()
    c = _bearer(api, token)
    assert c.get("/api/v1/users/me").json()["role"] == "supervisor"
    (row,) = [t for t in user_svc.list_tokens(api.db, "adam") if t["name"] == "cron"]
    assert row["role"] == "supervisor" and row["expires_at"] is not None
    (entry,) = _audit(api, action="token.create")
    assert entry["via"] == "cli" and token not in str(entry)
    code = main(["user", "token", "ann", "--role", "admin", "--config", str(cfg)])
    assert code != 0 and "at most their role" in capsys.readouterr().err

"""`postroom user disable` / `enable`: a disabled user's session and API token
stop at the next request, they cannot sign in, and an agent on queue is taken
off it (their offer is withdrawn and goes to the queue)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from postroom.domain.errors import NotFoundError
from postroom.runtime.cli import main
from postroom.services import users as user_svc
from postroom.store.schema import agents, web_sessions
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import PASSWORDS, Api, LiveServer

api = fx.api  # the shared fixture


def _cli(api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    s = api.comps.settings
    cfg = tmp_path / "postroom.toml"
    lines = [f'data_dir = "{s.data_dir}"']
    if s.database_url:
        lines.append(f'database_url = "{s.database_url}"')
    cfg.write_text("\n".join(lines) + "\n")
    code = main([*argv, "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_disabled_user_is_stopped_at_once_and_taken_off_queue(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    browser = api.client("ann")
    token = user_svc.create_token(api.db, api.comps.clock, "ann", "script")
    script = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    api.on_queue("ann")
    cid = api.deliver()
    api.wait_state(cid, "alerting", "ann")
    assert browser.get("/api/v1/users/me").status_code == 200
    assert script.get("/api/v1/users/me").status_code == 200

    out = _cli(api, tmp_path, capsys, "user", "disable", "ann")
    assert "ann disabled" in out and "off queue" in out

    for r in (browser.get("/api/v1/users/me"), script.get("/api/v1/users/me"),
              browser.get(f"/api/v1/conversations/{cid}")):
        assert r.status_code == 401, r.text
    r = TestClient(api.app).post("/api/v1/auth/login", json={"user": "ann", "password": PASSWORDS["ann"]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    # The router took her off queue: the offer went back to the queue.
    api.wait_state(cid, "queued")
    with api.db.connect() as conn:
        assert conn.execute(sa.select(agents.c.presence).where(agents.c.id == "ann")).scalar() == "offline"
        assert conn.execute(sa.select(web_sessions).where(web_sessions.c.user_id == "ann")).first() is None
    # Nobody puts a disabled agent back on queue.
    r = api.client("sue").put("/api/v1/users/ann/presence", json={"presence": "on_queue"})
    assert r.status_code == 403 and "disabled" in r.json()["error"]["message"]
    users = {u["id"]: u for u in api.client("sue").get("/api/v1/users").json()["users"]}
    assert users["ann"]["disabled"] is True and users["bob"]["disabled"] is False
    assert "(disabled)" in _cli(api, tmp_path, capsys, "user", "list")

    assert "ann enabled" in _cli(api, tmp_path, capsys, "user", "enable", "ann")
    assert script.get("/api/v1/users/me").status_code == 200  # the token works again
    assert browser.get("/api/v1/users/me").status_code == 401  # the session stays ended
    r = TestClient(api.app).post("/api/v1/auth/login", json={"user": "ann", "password": PASSWORDS["ann"]})
    assert r.status_code == 200


def test_disabling_a_supervisor_leaves_routing_alone(api: Api) -> None:
    sue = api.client("sue")
    user = user_svc.set_disabled(api.db, api.comps.clock, "sue", True)
    assert user.disabled and sue.get("/api/v1/users/me").status_code == 401
    with pytest.raises(NotFoundError):
        user_svc.set_disabled(api.db, api.comps.clock, "nobody", True)


def test_an_open_event_stream_ends_when_the_user_is_disabled(any_settings) -> None:  # type: ignore[no-untyped-def]
    a = fx.make_api(any_settings, heartbeat_s=0.2)
    try:
        with LiveServer(a.app) as server:
            c = fx.login(server.url, "ann")
            with c.stream("GET", "/api/v1/events/stream") as resp:
                assert resp.status_code == 200
                lines = resp.iter_lines()
                next(lines)
                user_svc.set_disabled(a.db, a.comps.clock, "ann", True)
                list(lines)  # ends by itself at the next heartbeat (or times out: fails)
            c.close()
    finally:
        fx.close_api(a)

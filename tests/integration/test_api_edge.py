"""The HTTP edge: who may read the status, login CSRF, forwarded headers from
untrusted clients, and the security headers of API responses and the message
frame."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import uvicorn
from fastapi.testclient import TestClient

from postroom.runtime.serve import http_config
from postroom.runtime.settings import Settings, from_mapping
from postroom.services import users as user_svc
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import PASSWORDS, Api, close_api, free_port, make_api
from tests.waiting import eventually

api = fx.api  # the shared fixture


# -- GET /api/v1/status ----------------------------------------------------------------


def test_status_needs_a_supervisor_or_admin(api: Api) -> None:
    anon = TestClient(api.app)
    r = anon.get("/api/v1/status")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    assert "messages" not in r.text
    assert api.client("ann").get("/api/v1/status").status_code == 403
    for who in ("sue", "adam"):
        r = api.client(who).get("/api/v1/status")
        assert r.status_code == 200 and "messages" in r.json()
    token = user_svc.create_token(api.db, api.comps.clock, "sue", "monitoring")
    r = anon.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and "conversations" in r.json()
    assert anon.get("/healthz").json() == {"status": "ok"}  # the public probe stays


# -- login CSRF ------------------------------------------------------------------------


def _login(c: TestClient, headers: dict[str, str], *, form: bool = False) -> httpx.Response:
    creds = {"user": "ann", "password": PASSWORDS["ann"]}
    if form:
        return c.post("/api/v1/auth/login", data=creds, headers=headers)
    return c.post("/api/v1/auth/login", json=creds, headers=headers)


def test_cross_site_login_is_refused(api: Api) -> None:
    c = TestClient(api.app)
    for headers, form in (
        ({"Origin": "https://evil.example"}, True),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"}, False),
    ):
        r = _login(c, headers, form=form)
        assert r.status_code == 403, (headers, r.text)
        assert r.json()["error"]["code"] == "csrf_rejected"
        assert "set-cookie" not in r.headers


def test_same_origin_and_non_browser_logins_work(api: Api) -> None:
    for headers, form in (
        ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, False),
        ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": "http://127.0.0.1:8025"}, False),  # the configured base_url
        ({"Sec-Fetch-Site": "none"}, False),  # typed or bookmarked
        ({}, False),  # scripts send neither
    ):
        c = TestClient(api.app)
        r = _login(c, headers, form=form)
        assert r.status_code == 200, (headers, r.text)
        assert "set-cookie" in r.headers


# -- forwarded headers -----------------------------------------------------------------


@contextmanager
def _served(settings: Settings) -> Iterator[tuple[str, Api]]:
    """The app under uvicorn configured as `postroom serve` configures it."""
    settings = replace(settings, http=replace(settings.http, port=free_port()))
    a = make_api(settings, router=False, login_attempts_per_minute=3)
    server = uvicorn.Server(http_config(a.app, settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started)
        yield f"http://127.0.0.1:{settings.http.port}", a
    finally:
        server.should_exit = True
        thread.join(10)
        close_api(a)


def _fail_login(c: httpx.Client, forwarded_for: str) -> int:
    r = c.post(
        "/api/v1/auth/login",
        json={"user": "ann", "password": "wrong"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return r.status_code


def test_forwarded_for_from_an_untrusted_client_does_not_reset_the_throttle(
    settings: Settings,
) -> None:
    with _served(settings) as (url, _), httpx.Client(base_url=url, timeout=10) as c:
        codes = [_fail_login(c, f"10.0.0.{i}") for i in range(1, 7)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429, 429]  # one loopback client, whatever it claims


def test_forwarded_for_from_a_trusted_proxy_names_the_client(settings: Settings) -> None:
    trusted = replace(settings, web=replace(settings.web, trusted_proxies=("127.0.0.1",)))
    with _served(trusted) as (url, _), httpx.Client(base_url=url, timeout=10) as c:
        assert [_fail_login(c, "10.0.0.1") for _ in range(4)] == [401, 401, 401, 429]
        assert _fail_login(c, "10.0.0.2") == 401  # another client behind the proxy


def test_trusted_proxies_setting_reads_lists_and_variables() -> None:
    from postroom.runtime.settings import apply_env

    s = from_mapping({"web": {"trusted_proxies": ["10.0.0.1", "192.168.0.0/16"]}})
    assert s.web.trusted_proxies == ("10.0.0.1", "192.168.0.0/16")
    assert from_mapping({}).web.trusted_proxies == ()
    s = apply_env(from_mapping({}), {"POSTROOM_WEB_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2"})
    assert s.web.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    config = http_config(object(), from_mapping({}))
    assert config.proxy_headers is False


# -- security headers ------------------------------------------------------------------


def test_api_responses_are_nosniff_and_not_stored(api: Api) -> None:
    c = api.client("sue")
    anon = TestClient(api.app)
    for r in (
        c.get("/api/v1/conversations"),
        c.get("/api/v1/users/me"),
        c.get("/api/v1/conversations/999"),  # errors too
        anon.get("/api/v1/users/me"),
        anon.post("/api/v1/auth/login", content=b"[" * 100, headers={"content-type": "application/json"}),
    ):
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
        assert r.headers["cache-control"] == "no-store", r.request.url


def test_message_frame_turns_dns_prefetch_off(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", html="<p>Hi <a href='http://tracker.example/x'>x</a></p>")
    mid = api.client("ann").get(f"/api/v1/conversations/{cid}").json()["messages"][0]["id"]
    r = api.client("ann").get(f"/workspace/messages/{mid}/body")
    assert r.status_code == 200
    assert r.headers["x-dns-prefetch-control"] == "off"

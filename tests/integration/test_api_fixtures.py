"""Shared fixtures for the API tests: a store on SQLite and PostgreSQL, a router
answering in a background thread, users ann and bob (agents) and sue (supervisor),
and TestClients logged in as each. Also a real uvicorn server for event streams."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services import users as user_svc
from postroom.services.routing import RoutingService
from postroom.store.schema import conversations, messages
from postroom.web.app import create_app
from postroom.web.deps import CSRF_HEADER, WebConfig
from tests.mailfactory import make_email
from tests.waiting import eventually

FAST = user_svc.password_hasher(fast=True)
PASSWORDS = {"ann": "ann-secret-1", "bob": "bob-secret-1", "sue": "sue-secret-1", "adam": "adam-secret-1"}


class RouterThread:
    def __init__(self, comps: Components) -> None:
        self.service = RoutingService(comps.engine, comps.settings.queues, comps.clock)
        self.service.rebuild()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.service.poll()
            except Exception:  # keep answering; a test will notice
                time.sleep(0.05)
            self.stop.wait(0.02)


@dataclass
class Api:
    comps: Components
    app: FastAPI
    router: RouterThread | None
    clients: dict[str, TestClient] = field(default_factory=dict)

    @property
    def db(self) -> sa.Engine:
        return self.comps.engine

    def client(self, user: str) -> TestClient:
        """A TestClient logged in (cookie + CSRF header) as `user`."""
        if user not in self.clients:
            c = TestClient(self.app)
            r = c.post("/api/v1/auth/login", json={"user": user, "password": PASSWORDS[user]})
            assert r.status_code == 200, r.text
            c.headers[CSRF_HEADER] = r.json()["csrf_token"]
            self.clients[user] = c
        return self.clients[user]

    def deliver(self, subject: str = "Printer on fire", **kw: Any) -> int:
        pk = self.comps.spool().accept_sync(
            make_email(subject=subject, **kw), source="smtp", envelope_to=["support@example.com"]
        ).message_pk
        self.comps.intake.drain()
        with self.db.connect() as conn:
            return int(conn.execute(sa.select(messages.c.conversation_id).where(messages.c.id == pk)).scalar_one())

    def conv(self, cid: int) -> sa.Row[Any]:
        with self.db.connect() as conn:
            return conn.execute(sa.select(conversations).where(conversations.c.id == cid)).one()

    def wait_state(self, cid: int, state: str, agent: str | None = None) -> sa.Row[Any]:
        def check() -> sa.Row[Any] | None:
            row = self.conv(cid)
            if row.state == state and (agent is None or row.agent_id == agent):
                return row
            return None

        return eventually(check)

    def on_queue(self, user: str) -> None:
        r = self.client(user).put(f"/api/v1/users/{user}/presence", json={"presence": "on_queue"})
        assert r.status_code == 200, r.text

    def offered_and_accepted(self, user: str, subject: str = "Printer on fire", **kw: Any) -> int:
        """A new email offered to `user` (the only agent on queue) and accepted."""
        cid = self.deliver(subject, **kw)
        self.wait_state(cid, "alerting", user)
        r = self.client(user).post(f"/api/v1/conversations/{cid}/accept")
        assert r.status_code == 200, r.text
        return cid


def make_users(comps: Components) -> None:
    known = [q.name for q in comps.settings.queues]
    for uid, role in (("ann", "agent"), ("bob", "agent"), ("sue", "supervisor"), ("adam", "admin")):
        user_svc.add_user(
            comps.engine, comps.clock, uid, role=role, password=PASSWORDS[uid], hasher=FAST,
            name=uid.title(), queues=["support"] if role == "agent" else None, known_queues=known,
        )


def make_api(settings: Settings, *, router: bool = True, presence_watch: bool = False, **config: Any) -> Api:
    comps = build(settings)
    make_users(comps)
    cfg = WebConfig.from_settings(settings, request_wait_s=config.pop("request_wait_s", 5.0), **config)
    app = create_app(
        comps.engine, blobs=comps.blobs, config=cfg, hasher=FAST, presence_watch=presence_watch,
        live=comps.live,
    )
    rt = RouterThread(comps) if router else None
    if rt is not None:
        rt.thread.start()
    return Api(comps, app, rt)


def close_api(api: Api) -> None:
    for c in api.clients.values():
        c.close()
    if api.router is not None:
        api.router.stop.set()
        api.router.thread.join(5)
    api.comps.close()


@pytest.fixture
def api(any_settings: Settings) -> Iterator[Api]:
    a = make_api(any_settings)
    yield a
    close_api(a)


@pytest.fixture
def api_wrapup_codes(any_settings: Settings) -> Iterator[Api]:
    queues = tuple(
        replace(q, wrapup_codes=("resolved", "spam")) if q.name == "support" else q
        for q in any_settings.queues
    )
    a = make_api(replace(any_settings, queues=queues))
    yield a
    close_api(a)


# -- a real server, for event streams ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                           timeout_graceful_shutdown=1, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        eventually(lambda: self.server.started)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def login(base: str, user: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=httpx.Timeout(10.0))
    r = c.post("/api/v1/auth/login", json={"user": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    c.headers[CSRF_HEADER] = r.json()["csrf_token"]
    return c


class SseReader:
    """Reads events from an open stream in a thread, so tests can wait with a timeout."""

    def __init__(self, client: httpx.Client, headers: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.status: int | None = None
        self._ctx = client.stream("GET", "/api/v1/events/stream", headers=headers or {}, params=params)
        self._resp = self._ctx.__enter__()
        self.status = self._resp.status_code
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        current: dict[str, Any] = {}
        try:
            for line in self._resp.iter_lines():
                if not line:
                    if "data" in current:
                        self.events.append(current)
                    current = {}
                    continue
                key, _, value = line.partition(":")
                current[key] = value[1:] if value.startswith(" ") else value
        except Exception:
            pass

    def kinds(self) -> list[str]:
        return [e.get("event", "") for e in self.events]

    def close(self) -> None:
        try:
            self._resp.close()
        finally:
            self._ctx.__exit__(None, None, None)


def _conv_ids(self: Api) -> list[int]:
    with self.db.connect() as conn:
        return [int(i) for (i,) in conn.execute(sa.select(conversations.c.id).order_by(conversations.c.id))]


Api.conv_ids = _conv_ids  # type: ignore[attr-defined]

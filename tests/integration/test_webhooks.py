"""Webhooks end to end against a real HTTP receiver on loopback: deliveries arrive
signed; a receiver that is down for a while loses nothing and gets each
conversation's events in order once it is back; failures after the last attempt
are visible and redeliverable; a hanging receiver holds up neither intake nor
routing; events that commit out of id order are not skipped. Plus the admin API
(validation, permissions, the secret shown once, audit) and the admin page.
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.outbound.webhooks import HttpTransport, WebhookWorker, verify
from postroom.services.admin import webhooks as svc
from postroom.services.admin.audit import Actor, entries
from postroom.services.admin.webhooks import WebhookConfig, WebhookService
from postroom.store.schema import events, webhook_deliveries
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api, free_port
from tests.waiting import eventually

api = fx.api  # the shared fixture: users ann, bob (agents), sue (supervisor), adam (admin)
ADMIN = Actor("adam", "session")

# -- a recording receiver -------------------------------------------------------------


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """A tiny HTTP server on a fixed loopback port that can go down and come back."""

    port: int = field(default_factory=free_port)
    status: int = 200
    hits: list[Hit] = field(default_factory=list)
    hold: threading.Event | None = None  # while set-able and unset, requests hang
    waiting: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if receiver.hold is not None:
                    receiver.waiting += 1
                    receiver.hold.wait(30)
                    receiver.waiting -= 1
                receiver.hits.append(Hit({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"no" if receiver.status >= 300 else b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[dict[str, Any]]:
        return [h.doc for h in self.hits if 200 <= self.status < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    if r.hold is not None:
        r.hold.set()
    r.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hook_service(api: Api, clock: FakeClock, **config: Any) -> WebhookService:
    return WebhookService(api.db, clock, WebhookConfig(**config), rand=lambda: 0.5)


def worker(service: WebhookService, clock: FakeClock, timeout_s: float = 5.0) -> WebhookWorker:
    return WebhookWorker(service, HttpTransport(timeout_s=timeout_s), clock)


def subscribe(api: Api, url: str, kinds: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return svc.create_webhook(
        api.db, lambda: datetime.now(UTC), ADMIN, name="crm", url=url,
        event_types=kinds or ["*"], **kw,
    )


def statuses(api: Api) -> list[str]:
    with api.db.connect() as conn:
        return [r.status for r in conn.execute(sa.select(webhook_deliveries.c.status))]


def matching_event_ids(api: Api, after: int, kinds: list[str] | None = None) -> list[int]:
    with api.db.connect() as conn:
        q = sa.select(events.c.id).where(events.c.id > after).order_by(events.c.id)
        if kinds:
            q = q.where(events.c.kind.in_(kinds))
        return [int(i) for i in conn.execute(q).scalars()]


# -- delivery ------------------------------------------------------------------------


def test_a_delivery_arrives_signed_and_verifies(api: Api, receiver: Receiver) -> None:
    clock = FakeClock()
    service = hook_service(api, clock)
    service.dispatch()  # the first pass places the cursor at the present
    hook = subscribe(api, receiver.url, ["conversation_created"])
    cid = api.deliver("Printer on fire")
    w = worker(service, clock)
    try:
        assert w.run_once() == 1
    finally:
        w.transport.close()
    assert len(receiver.hits) == 1
    hit = receiver.hits[0]
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["postroom-event"] == "conversation_created"
    t = int(hit.headers["postroom-signature"].split(",")[0].removeprefix("t="))
    assert t == int(clock.now.timestamp())
    assert verify(hook["secret"], hit.headers["postroom-signature"], hit.body, now=t + 1)
    assert not verify("whsec_some-other-secret", hit.headers["postroom-signature"], hit.body, t)
    doc = hit.doc
    assert doc["type"] == "conversation_created" and doc["conversation_id"] == cid
    assert doc["webhook_id"] == hook["id"]
    assert hit.headers["postroom-delivery"] == str(doc["delivery_id"])
    assert isinstance(doc["id"], int) and doc["at"] and isinstance(doc["data"], dict)
    (row,) = svc.list_deliveries(api.db, hook["id"])
    assert row["status"] == "delivered" and row["last_status_code"] == 200
    assert row["attempts"] == 1 and row["delivered_at"]


def test_a_receiver_down_for_a_while_gets_everything_in_order_per_conversation(
    api: Api, receiver: Receiver
) -> None:
    clock = FakeClock()
    service = hook_service(api, clock)
    service.dispatch()
    start = matching_event_ids(api, 0)[-1:] or [0]
    hook = subscribe(api, receiver.url, ["*"])
    receiver.stop()  # down: connections are refused
    first = api.deliver("First problem", sender="one@example.org")
    second = api.deliver("Second problem", sender="two@example.org")
    api.deliver("More on the first", sender="one@example.org", in_reply_to=None)
    w = worker(service, clock)
    try:
        for _ in range(5):  # five rounds of retries while it is down
            w.run_once()
            clock.advance(3600)
        with api.db.connect() as conn:
            rows = conn.execute(sa.select(webhook_deliveries)).all()
        assert rows and all(r.status == "pending" for r in rows)
        tried = [r for r in rows if r.attempts]
        assert all(r.last_error and "cannot reach" in r.last_error for r in tried)
        # Only the earliest delivery of each conversation was tried: none overtook another.
        by_conv: dict[Any, list[Any]] = {}
        for r in rows:
            by_conv.setdefault(r.conversation_id, []).append(r)
        for conv, group in by_conv.items():
            if conv is None:
                continue
            group.sort(key=lambda r: r.event_id)
            assert all(r.attempts == 0 for r in group[1:]), f"conversation {conv} overtaken"
        receiver.start()  # back up, same port
        for _ in range(50):
            clock.advance(3600)
            w.run_once()
            if "pending" not in statuses(api):
                break
    finally:
        w.transport.close()
    assert set(statuses(api)) == {"delivered"}
    expected = matching_event_ids(api, start[0])
    got = [d["id"] for d in receiver.delivered()]
    assert sorted(got) == expected  # nothing lost, nothing twice
    seen: dict[int, list[int]] = {}
    for d in receiver.delivered():
        if d["conversation_id"] is not None:
            seen.setdefault(d["conversation_id"], []).append(d["id"])
    assert first in seen and second in seen
    for conv, ids in seen.items():
        assert ids == sorted(ids), f"conversation {conv} out of order: {ids}"
    assert hook["id"] == receiver.delivered()[0]["webhook_id"]


def test_a_refusing_receiver_ends_failed_visibly_and_can_be_redelivered(
    api: Api, receiver: Receiver
) -> None:
    clock = FakeClock()
    service = hook_service(api, clock, max_attempts=3)
    service.dispatch()
    hook = subscribe(api, receiver.url, ["conversation_created"])
    api.deliver()
    receiver.status = 500
    w = worker(service, clock)
    try:
        for _ in range(3):
            w.run_once()
            clock.advance(3600)
        (row,) = svc.list_deliveries(api.db, hook["id"])
        assert row["status"] == "failed" and row["attempts"] == 3
        assert row["last_status_code"] == 500 and "answered 500" in row["last_error"]
        assert len(receiver.hits) == 3
        # The admin redelivers it once the receiver is fixed.
        receiver.status = 204
        r = api.client("adam").post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{row['id']}/redeliver"
        )
        assert r.status_code == 200 and r.json()["status"] == "pending"
        service.clock = lambda: datetime.now(UTC) + timedelta(seconds=1)
        w.clock = service.clock
        w.run_once()
    finally:
        w.transport.close()
    (row,) = svc.list_deliveries(api.db, hook["id"])
    assert row["status"] == "delivered" and row["last_status_code"] == 204
    assert len({h.headers["postroom-delivery"] for h in receiver.hits}) == 1  # one id throughout


def test_retries_back_off_doubling(api: Api, receiver: Receiver) -> None:
    clock = FakeClock()
    service = hook_service(api, clock)
    service.dispatch()
    hook = subscribe(api, receiver.url, ["conversation_created"])
    api.deliver()
    receiver.status = 503
    w = worker(service, clock)
    gaps = []
    try:
        for _ in range(4):
            w.run_once()
            (row,) = svc.list_deliveries(api.db, hook["id"])
            due = datetime.fromisoformat(row["next_attempt_at"])
            gaps.append((due - clock.now).total_seconds())
            clock.now = due
    finally:
        w.transport.close()
    assert gaps == [10.0, 20.0, 40.0, 80.0]


def test_disabled_webhooks_get_no_deliveries_and_kinds_are_filtered(
    api: Api, receiver: Receiver
) -> None:
    clock = FakeClock()
    service = hook_service(api, clock)
    service.dispatch()
    off = subscribe(api, receiver.url, ["*"], enabled=False)
    closed_only = subscribe(api, receiver.url, ["conversation_closed"])
    api.deliver()
    service.dispatch()
    assert svc.list_deliveries(api.db, off["id"]) == []
    assert svc.list_deliveries(api.db, closed_only["id"]) == []


def test_a_hanging_receiver_holds_up_neither_intake_nor_routing(
    api: Api, receiver: Receiver
) -> None:
    receiver.hold = threading.Event()
    service = WebhookService(api.db, lambda: datetime.now(UTC))
    service.dispatch()
    subscribe(api, receiver.url, ["*"])
    w = WebhookWorker(service, HttpTransport(timeout_s=30), lambda: datetime.now(UTC), poll_s=0.05)
    w.start()
    try:
        first = api.deliver("Hanging receiver")
        eventually(lambda: receiver.waiting > 0)  # a post is in flight, unanswered
        api.on_queue("ann")
        second = api.deliver("Still routed")
        api.wait_state(first, "alerting", "ann")  # routing carried on
        assert api.conv(second).state == "queued"  # and intake
        assert receiver.waiting > 0 and not receiver.hits
    finally:
        receiver.hold.set()
        w.stop()


def test_a_receiver_that_never_answers_times_out_and_is_retried(
    api: Api, receiver: Receiver
) -> None:
    receiver.hold = threading.Event()
    clock = FakeClock()
    service = hook_service(api, clock)
    service.dispatch()
    hook = subscribe(api, receiver.url, ["conversation_created"])
    api.deliver()
    w = worker(service, clock, timeout_s=0.3)
    try:
        w.run_once()
    finally:
        receiver.hold.set()
        w.transport.close()
    (row,) = svc.list_deliveries(api.db, hook["id"])
    assert row["status"] == "pending" and row["attempts"] == 1
    assert row["last_status_code"] is None and "no answer within 0.3 s" in row["last_error"]


# -- the dispatcher and events that commit out of id order ----------------------------


def _event(api: Api, eid: int, cid: int | None = 1, kind: str = "conversation_state_changed") -> None:
    with api.db.begin() as conn:
        conn.execute(
            events.insert().values(
                id=eid, at=datetime.now(UTC), kind=kind, conversation_id=cid, data={"n": eid}
            )
        )


def _dispatched(api: Api) -> list[int]:
    with api.db.connect() as conn:
        return [
            int(i)
            for i in conn.execute(
                sa.select(webhook_deliveries.c.event_id).order_by(webhook_deliveries.c.event_id)
            ).scalars()
        ]


def test_an_event_committed_after_a_higher_id_is_not_skipped(api: Api) -> None:
    clock = FakeClock()
    service = hook_service(api, clock, settle_s=2.0, gap_wait_s=600.0)
    service.dispatch()
    base = service.cursor()[0]
    subscribe(api, "http://127.0.0.1:9/unused", ["*"])
    _event(api, base + 1)
    _event(api, base + 3)  # base + 2 is still being written by another transaction
    service.dispatch()
    assert _dispatched(api) == [base + 1]  # base + 3 waits for the young hole
    assert service.cursor() == (base + 2, [base + 2])
    clock.advance(2.5)
    service.dispatch()  # the hole is older than the settle time: go on without it
    assert _dispatched(api) == [base + 1, base + 3]
    _event(api, base + 2)  # the late commit
    clock.advance(30)
    service.dispatch()
    assert _dispatched(api) == [base + 1, base + 2, base + 3]
    assert service.cursor() == (base + 3, [])
    service.dispatch()  # repeating adds nothing
    assert _dispatched(api) == [base + 1, base + 2, base + 3]


def test_a_hole_that_fills_within_the_settle_time_keeps_the_order(api: Api) -> None:
    clock = FakeClock()
    service = hook_service(api, clock)
    service.dispatch()
    base = service.cursor()[0]
    subscribe(api, "http://127.0.0.1:9/unused", ["*"])
    _event(api, base + 2)
    service.dispatch()
    assert _dispatched(api) == []
    _event(api, base + 1)
    clock.advance(0.5)
    service.dispatch()
    with api.db.connect() as conn:
        ids = conn.execute(
            sa.select(webhook_deliveries.c.event_id).order_by(webhook_deliveries.c.id)
        ).scalars().all()
    assert list(ids) == [base + 1, base + 2]  # created, and so delivered, in event order


def test_a_hole_never_filled_is_forgotten_after_the_gap_wait(api: Api) -> None:
    clock = FakeClock()
    service = hook_service(api, clock, settle_s=1.0, gap_wait_s=60.0)
    service.dispatch()
    base = service.cursor()[0]
    _event(api, base + 2)
    service.dispatch()
    clock.advance(2)
    service.dispatch()
    assert service.cursor() == (base + 2, [base + 1])
    clock.advance(120)
    service.dispatch()
    assert service.cursor() == (base + 2, [])


@pytest.mark.postgres
def test_postgres_concurrent_transactions_committing_out_of_order(pg_url: str) -> None:
    from postroom.store.db import create_engine

    engine = create_engine(pg_url)
    clock = FakeClock()
    service = WebhookService(engine, clock, WebhookConfig(settle_s=2.0), rand=lambda: 0.5)
    try:
        service.dispatch()
        svc.create_webhook(engine, clock, ADMIN, name="x", url="http://127.0.0.1:9/", event_types=["*"])

        def add(conn: sa.Connection) -> int:
            return int(
                conn.execute(
                    events.insert()
                    .values(at=clock(), kind="offer_created", conversation_id=7, data={})
                    .returning(events.c.id)
                ).scalar_one()
            )

        slow = engine.connect()
        slow_tx = slow.begin()
        low = add(slow)  # takes the lower id, commits last
        with engine.begin() as conn:
            high = add(conn)
        assert high > low
        service.dispatch()
        clock.advance(5)
        service.dispatch()  # the hole is old: the higher id goes ahead
        slow_tx.commit()
        slow.close()
        service.dispatch()
        with engine.connect() as conn:
            got = sorted(conn.execute(sa.select(webhook_deliveries.c.event_id)).scalars())
        assert got == [low, high]
    finally:
        engine.dispose()


# -- the admin API -------------------------------------------------------------------


def test_admins_create_read_change_and_delete_webhooks_with_audit(api: Api) -> None:
    adam = api.client("adam")
    r = adam.post(
        "/api/v1/webhooks",
        json={"name": "CRM", "url": "https://crm.example.com/hook", "event_types": ["offer_created"]},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["secret"].startswith("whsec_") and made["enabled"] is True
    wid = made["id"]
    listed = adam.get("/api/v1/webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == [wid] and "secret" not in listed[0]
    assert listed[0]["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    got = adam.get(f"/api/v1/webhooks/{wid}").json()
    assert "secret" not in got and got["event_types"] == ["offer_created"]
    r = adam.put(f"/api/v1/webhooks/{wid}", json={"enabled": False, "event_types": ["*"]})
    assert r.status_code == 200 and "secret" not in r.json()
    assert r.json()["enabled"] is False and r.json()["event_types"] == ["*"]
    r = adam.put(f"/api/v1/webhooks/{wid}", json={"rotate_secret": True})
    assert r.json()["secret"].startswith("whsec_") and r.json()["secret"] != made["secret"]
    r = adam.post(f"/api/v1/webhooks/{wid}/test")
    assert r.status_code == 202 and r.json()["kind"] == "ping"
    deliveries = adam.get(f"/api/v1/webhooks/{wid}/deliveries").json()["deliveries"]
    assert [d["kind"] for d in deliveries] == ["ping"] and deliveries[0]["status"] == "pending"
    assert adam.delete(f"/api/v1/webhooks/{wid}").status_code == 204
    assert adam.get(f"/api/v1/webhooks/{wid}").status_code == 404
    with api.db.connect() as conn:
        log = entries(conn, target_type="webhook")
    assert [e["action"] for e in log] == [
        "webhook.delete", "webhook.update", "webhook.update", "webhook.create"
    ]
    assert all(e["actor"] == "adam" and e["via"] == "session" for e in log)
    assert made["secret"] not in json.dumps(log)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"name": "x", "url": "ftp://example.com/", "event_types": ["*"]}, "https:// or http://"),
        ({"name": "x", "url": "not a url", "event_types": ["*"]}, "url"),
        ({"name": "x", "url": "https://a.example/", "event_types": ["nope"]}, "not an event kind"),
        ({"name": "x", "url": "https://a.example/", "event_types": []}, "event_types"),
        ({"name": "x", "url": "https://a.example/", "event_types": ["*"], "secret": "short"}, "16 to 200"),
        ({"name": "", "url": "https://a.example/", "event_types": ["*"]}, "name"),
    ],
)
def test_invalid_webhooks_are_refused_with_a_clear_422(
    api: Api, body: dict[str, Any], says: str
) -> None:
    r = api.client("adam").post("/api/v1/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert says in r.json()["error"]["message"]


def test_agents_and_supervisors_may_not_touch_webhooks(api: Api) -> None:
    wid = subscribe(api, "https://a.example/")["id"]
    for user in ("ann", "sue"):
        c = api.client(user)
        assert c.get("/api/v1/webhooks").status_code == 403
        assert c.post(
            "/api/v1/webhooks", json={"name": "x", "url": "https://a.example/", "event_types": ["*"]}
        ).status_code == 403
        assert c.put(f"/api/v1/webhooks/{wid}", json={"enabled": False}).status_code == 403
        assert c.delete(f"/api/v1/webhooks/{wid}").status_code == 403
        assert c.get(f"/api/v1/webhooks/{wid}/deliveries").status_code == 403
        assert c.post(f"/api/v1/webhooks/{wid}/test").status_code == 403
        assert "configure permission" in c.get("/api/v1/webhooks").json()["error"]["message"]
    assert api.client("adam").get(f"/api/v1/webhooks/{wid}").json()["enabled"] is True


def test_unknown_webhooks_and_deliveries_are_404(api: Api) -> None:
    adam = api.client("adam")
    wid = subscribe(api, "https://a.example/")["id"]
    assert adam.get("/api/v1/webhooks/999").status_code == 404
    assert adam.post(f"/api/v1/webhooks/{wid}/deliveries/999/redeliver").status_code == 404
    assert adam.post("/api/v1/webhooks/999/test").status_code == 404


# -- the admin page ------------------------------------------------------------------


def _csrf(api: Api, user: str) -> str:
    c = api.client(user)
    return str(c.headers["X-CSRF-Token"])


def test_the_page_keeps_typed_values_and_shows_errors_beside_fields(api: Api) -> None:
    c = api.client("adam")
    form = {"csrf_token": _csrf(api, "adam"), "name": "Chat", "url": "ftp://chat.example/",
            "event_types": "offer_created, conversation_closed", "enabled": "true"}
    r = c.post("/admin/webhooks", data=form, headers={"X-CSRF-Token": ""})
    assert r.status_code == 422
    assert 'id="f-url-error"' in r.text and "https:// or http://" in r.text
    assert 'value="ftp://chat.example/"' in r.text and 'value="Chat"' in r.text
    assert "offer_created, conversation_closed" in r.text
    form["url"] = "https://chat.example/hook"
    r = c.post("/admin/webhooks", data=form, headers={"X-CSRF-Token": ""})
    assert r.status_code == 201
    assert 'id="webhook-secret"' in r.text and "whsec_" in r.text
    (hook,) = svc.list_webhooks(api.db)
    assert hook["event_types"] == ["offer_created", "conversation_closed"]
    page = c.get(f"/admin/webhooks/{hook['id']}")
    assert page.status_code == 200 and "whsec_" not in page.text
    assert "https://chat.example/hook" in c.get("/admin/webhooks").text


def test_the_page_lists_deliveries_with_codes_and_a_redeliver_button(api: Api) -> None:
    clock = FakeClock()
    hook = subscribe(api, "http://127.0.0.1:9/")
    svc.ping(api.db, clock, hook["id"])
    service = hook_service(api, clock, max_attempts=1)
    (out,) = service.claim_due(10)
    service.record([(out, svc.Answer(False, 502, "answered 502: bad gateway"))])
    c = api.client("adam")
    page = c.get(f"/admin/webhooks/{hook['id']}").text
    assert 'id="webhook-deliveries"' in page and "502" in page and "failed" in page
    assert f"/deliveries/{out.delivery_id}/redeliver" in page
    r = c.post(
        f"/admin/webhooks/{hook['id']}/deliveries/{out.delivery_id}/redeliver",
        data={"csrf_token": _csrf(api, "adam")},
        headers={"X-CSRF-Token": ""},
    )
    assert r.status_code == 200 and "will be sent again" in r.text
    assert r.history and r.history[0].status_code == 303  # a reload repeats nothing
    assert statuses(api) == ["pending"]


def test_only_admins_open_the_page(api: Api) -> None:
    assert api.client("adam").get("/admin/webhooks").status_code == 200
    r = api.client("sue").get("/admin/webhooks")
    assert r.status_code == 403 and "configure permission" in r.text
    assert api.client("ann").get("/admin/webhooks").status_code == 403


def test_a_form_post_without_the_csrf_token_is_refused(api: Api) -> None:
    c = api.client("adam")
    r = c.post(
        "/admin/webhooks",
        data={"name": "x", "url": "https://a.example/", "event_types": "*"},
        headers={"X-CSRF-Token": ""},
    )
    assert r.status_code != 201 and svc.list_webhooks(api.db) == []


def test_serve_has_a_webhooks_role_on_by_default() -> None:
    import inspect

    from postroom.runtime import serve

    assert "webhooks" in serve.ROLES
    assert inspect.signature(serve.serve).parameters["roles"].default == serve.ROLES


def test_hostile_form_posts_never_fail_with_500(api: Api) -> None:
    c = api.client("adam")
    tok = c.headers["X-CSRF-Token"]
    bad = ["\x00", "a" * 300000, "é" * 1000, "*", "https://\x00x/", "http://[::1", "http://x:0/", "%00"]
    for v in bad:
        for f in ("name", "url", "event_types", "secret", "enabled"):
            data = {"csrf_token": tok, "name": "n", "url": "https://a.example/", "event_types": "*"}
            data[f] = v
            r = c.post("/admin/webhooks", data=data, headers={"X-CSRF-Token": ""})
            assert r.status_code < 500, (f, v[:20], r.status_code)
            r = c.post("/admin/webhooks/1", data=data, headers={"X-CSRF-Token": ""})
            assert r.status_code < 500, (f, v[:20], r.status_code)
    for path in ("/admin/webhooks/0", "/admin/webhooks/99999999999", "/admin/webhooks/x", "/admin/webhooks/5/deliveries/0/redeliver"):
        assert c.get(path).status_code < 500
        assert c.post(path, data={"csrf_token": tok}, headers={"X-CSRF-Token": ""}).status_code < 500


@pytest.mark.slow
def test_postroom_serve_posts_events_of_new_mail_to_a_webhook(
    tmp_path: Any, receiver: Receiver
) -> None:
    """The `webhooks` role of a real `postroom serve` (on by default) delivers."""
    import signal
    import smtplib
    import subprocess
    import sys

    from postroom.store.db import create_engine, migrate
    from tests.mailfactory import make_email

    data = tmp_path / "data"
    data.mkdir()
    engine = create_engine(f"sqlite:///{(data / 'postroom.db').resolve()}")
    migrate(engine)
    hook = svc.create_webhook(
        engine, lambda: datetime.now(UTC), ADMIN, name="crm", url=receiver.url,
        event_types=["conversation_created"],
    )
    engine.dispose()
    smtp, http = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom.runtime.cli", "serve", "--data-dir", str(data),
         "--smtp-port", str(smtp), "--http-port", str(http)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        routes = roles = ""
        while not roles:
            line = proc.stdout.readline()
            assert line, "serve ended before it started"
            if line.startswith("Routes:"):
                routes = line.split(":", 1)[1].strip()
            if line.startswith("Roles:"):
                roles = line
        assert "webhooks" in roles
        to = routes.split(",")[0].strip()
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail("alice@customer.example", [to], make_email(to=to))
        eventually(lambda: receiver.hits, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    hit = receiver.hits[0]
    assert hit.doc["type"] == "conversation_created"
    t = int(hit.headers["postroom-signature"].split(",")[0].removeprefix("t="))
    assert verify(hook["secret"], hit.headers["postroom-signature"], hit.body, now=t)


def test_old_delivery_history_is_pruned_but_pending_deliveries_are_kept(api: Api) -> None:
    clock = FakeClock()
    hook = subscribe(api, "http://127.0.0.1:9/")
    service = hook_service(api, clock, keep_days=30)
    for _ in range(3):
        svc.ping(api.db, clock, hook["id"])
    done, failed, _pending = service.claim_due(10)
    service.record([(done, svc.Answer(True, 200))])
    service.config = WebhookConfig(max_attempts=1, keep_days=30)
    service.record([(failed, svc.Answer(False, 500, "answered 500"))])
    clock.advance(29 * 86400)
    assert service.prune() == 0
    clock.advance(2 * 86400)
    assert service.prune() == 2
    assert statuses(api) == ["pending"]


def test_a_new_webhook_gets_no_events_from_before_it_existed(api: Api, receiver: Receiver) -> None:
    clock = FakeClock()
    service = hook_service(api, clock)
    service.dispatch()
    api.deliver("Before the webhook")  # the dispatcher has not looked at it yet
    hook = subscribe(api, receiver.url, ["*"])
    cid = api.deliver("After the webhook")
    service.dispatch()
    got = {d["conversation_id"] for d in svc.list_deliveries(api.db, hook["id"])}
    assert got - {None} == {cid}  # (thread events carry no conversation)

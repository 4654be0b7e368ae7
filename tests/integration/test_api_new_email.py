"""Agent-initiated email (POST /api/v1/conversations): what the relay receives, who may
send from which queue, the router taking it into the agent's capacity, customer
replies threading back, and queue signatures for the composer. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.outbound.sender import SenderWorker, SmtpTransport
from postroom.runtime.settings import Settings
from postroom.services.outbound import OutboundConfig, OutboundService
from postroom.store.schema import conversations, events, messages, routing_inbox, thread_agents
from tests.integration import test_api_fixtures as fx
from tests.integration import test_outbound
from tests.integration.test_api_fixtures import Api, close_api, eventually, make_api
from tests.integration.test_outbound import RecordingHandler
from tests.mailfactory import make_email

api = fx.api  # the shared fixture
relay = test_outbound.relay  # an SMTP relay on loopback that records what it accepts

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
PDF = b"%PDF-1.4 price list\n"


@pytest.fixture
def api_last_agent(any_settings: Settings) -> Iterator[Api]:
    """Support routes a customer's reply to a closed conversation to its last agent."""
    queues = tuple(
        replace(q, last_agent_routing_mode="queue_members_only") if q.name == "support" else q
        for q in any_settings.queues
    )
    a = make_api(replace(any_settings, queues=queues))
    yield a
    close_api(a)


@pytest.fixture
def api_signatures(any_settings: Settings) -> Iterator[Api]:
    queues = tuple(
        replace(
            q,
            signature_text="{agent_name}\n{queue_name} team ({reference})",
            signature_html="<p onclick='x()'>{agent_name} for {customer_name}</p>",
        )
        if q.name == "support"
        else q
        for q in any_settings.queues
    )
    a = make_api(replace(any_settings, queues=queues))
    yield a
    close_api(a)


def upload(api: Api, user: str, name: str, data: bytes, ctype: str) -> int:
    r = api.client(user).post("/api/v1/uploads", files={"file": (name, data, ctype)})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def new_email(api: Api, user: str = "ann", **body: Any) -> Any:
    body.setdefault("queue", "support")
    body.setdefault("subject", "Your order 1234")
    body.setdefault("text", "Hello Ada,\nyour order has shipped.")
    body.setdefault("to", ["Ada Customer <ada@customer.example>"])
    return api.client(user).post("/api/v1/conversations", json=body)


def adopted(api: Api, cid: int) -> str:
    """The router's answer to the request to take the conversation in."""

    def answer() -> str | None:
        with api.db.connect() as conn:
            return conn.execute(
                sa.select(routing_inbox.c.result).where(
                    routing_inbox.c.kind == "adopt", routing_inbox.c.conversation_id == cid
                )
            ).scalar()

    return str(eventually(answer))


def send_all(api: Api, port: int) -> None:
    svc = OutboundService(api.db, api.comps.blobs, OutboundConfig(), api.comps.clock)
    SenderWorker(svc, SmtpTransport("127.0.0.1", port, timeout_s=10), api.comps.clock).run_once()


def deliver_raw(api: Api, raw: bytes) -> int:
    pk = api.comps.spool().accept_sync(raw, source="smtp", envelope_to=["support@example.com"]).message_pk
    api.comps.intake.drain()
    with api.db.connect() as conn:
        return int(conn.execute(sa.select(messages.c.conversation_id).where(messages.c.id == pk)).scalar_one())


def event_kinds(api: Api, cid: int) -> list[str]:
    with api.db.connect() as conn:
        return list(conn.execute(
            sa.select(events.c.kind).where(events.c.conversation_id == cid).order_by(events.c.id)
        ).scalars())


# -- what goes out ---------------------------------------------------------------------


def test_new_email_goes_out_from_the_queue_address_with_token_and_attachments(
    api: Api, relay: tuple[RecordingHandler, int]
) -> None:
    handler, port = relay
    pdf = upload(api, "ann", "prices.pdf", PDF, "application/pdf")
    logo = upload(api, "ann", "logo.png", PNG, "image/png")
    r = new_email(
        api,
        to=["Ada Customer <ada@customer.example>"],
        cc=["bert@customer.example"],
        bcc=["audit@example.com"],
        html=f'<p>Hello Ada,</p><p><img src="/api/v1/uploads/{logo}"></p><script>x()</script>',
        attachments=[pdf],
        inline=[logo],
    )
    assert r.status_code == 201, r.text
    out = r.json()
    cid, tid = out["conversation_id"], out["thread_id"]
    assert r.headers["location"] == f"/api/v1/conversations/{cid}"
    assert (out["state"], out["agent"], out["queue"]) == ("connected", "ann", "support")
    assert out["reference"] == f"PR-{tid}"
    assert out["recipients"] == ["ada@customer.example", "bert@customer.example", "audit@example.com"]
    assert re.fullmatch(rf"pr\.PR-{tid}\.[0-9a-f]+@postroom\.local", out["message_id"])

    send_all(api, port)
    [got] = handler.received
    assert got.mail_from == "support@example.com"
    assert sorted(got.rcpt_tos) == ["ada@customer.example", "audit@example.com", "bert@customer.example"]
    msg = got.msg
    assert msg["From"] == "support <support@example.com>"  # the queue name by default
    assert msg["To"] == "Ada Customer <ada@customer.example>" and msg["Cc"] == "bert@customer.example"
    assert msg["Bcc"] is None and b"audit@example.com" not in got.data
    assert msg["Subject"] == f"Your order 1234 [#PR-{tid}]"
    assert msg["Message-ID"] == f"<{out['message_id']}>"
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["Thread-Index"] and msg["Thread-Topic"] == "Your order 1234"
    files = {p.get_filename(): p for p in msg.walk() if p.get_filename()}
    assert files["prices.pdf"].get_content() == PDF
    image = files["logo.png"]
    assert image.get_content_disposition() == "inline" and image.get_content() == PNG
    content_id = image["Content-ID"].strip("<>")
    assert content_id.startswith(f"upload-{logo}.")
    html = msg.get_body(("html",)).get_content()
    assert f'src="cid:{content_id}"' in html and "<script" not in html
    assert "your order has shipped" in msg.get_body(("plain",)).get_content()

    # The conversation holds the sent message; its inline image is served to ann.
    body = api.client("ann").get(f"/api/v1/conversations/{cid}").json()
    [sent] = body["messages"]
    assert sent["direction"] == "out" and sent["subject"] == f"Your order 1234 [#PR-{tid}]"
    assert f"/api/v1/messages/{sent['id']}/cid/" in sent["html"]
    served = api.client("ann").get(f"/api/v1/messages/{sent['id']}/cid/{content_id}")
    assert served.status_code == 200 and served.content == PNG
    row = api.conv(cid)
    assert (row.state, row.agent_id, row.reply_from, row.route_address) == (
        "connected", "ann", "support@example.com", "support@example.com"
    )
    with api.db.connect() as conn:
        assert conn.execute(sa.select(thread_agents.c.agent_id).where(thread_agents.c.thread_id == tid)).scalar_one() == "ann"
    assert event_kinds(api, cid)[:3] == ["thread_created", "conversation_created", "message_queued"]


def test_text_is_made_from_the_html_when_left_empty(api: Api, relay: tuple[RecordingHandler, int]) -> None:
    handler, port = relay
    r = new_email(api, text="", html="<p>Only <b>HTML</b> here</p>")
    assert r.status_code == 201, r.text
    send_all(api, port)
    plain = handler.received[0].msg.get_body(("plain",)).get_content()
    assert "Only HTML here" in " ".join(plain.split())


# -- the router: connected, holding capacity, nothing else offered ----------------------


def test_new_email_takes_one_of_the_agents_capacity(api: Api) -> None:
    api.on_queue("ann")  # capacity 1
    r = new_email(api)
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]
    assert adopted(api, cid) == "ok"
    waiting = api.deliver(subject="Customer waits")
    api.wait_state(waiting, "queued")
    status = api.client("ann").get("/api/v1/users/ann/routing-status").json()
    assert status["routing_status"] == "interacting"
    assert "offer_created" not in event_kinds(api, cid)  # nobody was asked anything
    # ending the new email frees ann for the waiting customer
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/disconnect").status_code == 200
    api.wait_state(cid, "closed")
    api.wait_state(waiting, "alerting", "ann")


def test_off_queue_agent_sends_without_being_offered_waiting_work(api: Api) -> None:
    waiting = api.deliver(subject="Nobody is on queue")
    api.wait_state(waiting, "queued")
    r = new_email(api)  # ann is offline
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]
    assert adopted(api, cid) == "ok"
    assert api.conv(waiting).state == "queued"
    status = api.client("ann").get("/api/v1/users/ann/routing-status").json()
    assert (status["presence"], status["routing_status"]) == ("offline", "off_queue")
    with api.db.connect() as conn:
        changes = conn.execute(sa.select(events.c.data).where(events.c.kind == "routing_status_changed")).all()
    assert changes == []  # the moment of room the router gave her is not announced
    # the router holds it for ann: her actions on it work
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/park").status_code == 200
    api.wait_state(cid, "parked", "ann")


# -- who may send from where, and who sees it ----------------------------------------------


def test_agent_sends_only_from_own_queues_and_for_themselves(api: Api) -> None:
    r = new_email(api, "bob", queue="billing")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert "not a member of queue 'billing'" in r.json()["error"]["message"]
    r = new_email(api, "bob", agent="ann")
    assert r.status_code == 403
    with api.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar_one() == 0


def test_agent_cannot_see_another_agents_new_email(api: Api) -> None:
    r = new_email(api, "ann", subject="Private offer")
    cid = r.json()["conversation_id"]
    bob = api.client("bob")
    assert bob.get(f"/api/v1/conversations/{cid}").status_code == 404
    assert bob.get(f"/api/v1/conversations/{cid}/signature").status_code == 404
    assert bob.post(f"/api/v1/conversations/{cid}/disconnect").status_code == 404
    assert bob.get("/api/v1/conversations", params={"q": "private"}).json()["conversations"] == []
    for who in ("ann", "sue"):
        assert api.client(who).get(f"/api/v1/conversations/{cid}").status_code == 200


def test_supervisor_sends_from_any_queue_for_an_agent(api: Api) -> None:
    r = new_email(api, "sue")  # sue has no agent profile: nobody would hold it
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_an_agent"
    assert "agent" in r.json()["error"]["message"]
    r = new_email(api, "sue", agent="bob")
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]
    assert adopted(api, cid) == "ok"
    assert api.conv(cid).agent_id == "bob"
    assert api.client("bob").get(f"/api/v1/conversations/{cid}").status_code == 200
    assert api.client("ann").get(f"/api/v1/conversations/{cid}").status_code == 404


def test_queue_without_an_address_is_422(api: Api) -> None:
    # billing is only reached through *@billing.example.com (no reply_from); vip has no route
    for queue in ("billing", "vip"):
        r = new_email(api, "adam", queue=queue, agent="ann")
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "no_send_address" and f"queue {queue!r}" in err["message"]
        assert "[[routes]]" in err["message"]


def test_limits_and_bad_requests(api: Api) -> None:
    r = new_email(api, to=[f"u{i}@x.example" for i in range(30)], bcc=[f"b{i}@x.example" for i in range(21)])
    assert r.status_code == 422 and r.json()["error"]["code"] == "limit_exceeded"
    one = upload(api, "ann", "a.txt", b"a", "text/plain")
    r = new_email(api, attachments=[one] * 26, inline=[one] * 25, html="<p>x</p>")
    assert r.status_code == 422 and r.json()["error"]["code"] == "limit_exceeded"
    theirs = upload(api, "bob", "b.txt", b"b", "text/plain")
    assert new_email(api, attachments=[theirs]).status_code == 404
    assert new_email(api, queue="nowhere").status_code == 404
    assert new_email(api, subject="").status_code == 422
    assert new_email(api, to=[]).status_code == 400
    assert new_email(api, to=["not an address"]).status_code == 400
    assert new_email(api, inline=[one]).status_code == 400  # inline images need HTML
    with api.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar_one() == 0


# -- the customer answers ------------------------------------------------------------------


def test_customer_reply_threads_into_the_new_conversation(
    api_last_agent: Api, relay: tuple[RecordingHandler, int]
) -> None:
    api = api_last_agent
    handler, port = relay
    r = new_email(api)
    cid, tid = r.json()["conversation_id"], r.json()["thread_id"]
    send_all(api, port)
    sent = handler.received[0].msg
    reply = make_email(
        sender="Ada Customer <ada@customer.example>",
        subject=f"Re: {sent['Subject']}",
        in_reply_to=sent["Message-ID"],
        references=sent["Message-ID"],
        body="Thanks, when does it arrive?\n",
    )
    assert deliver_raw(api, reply) == cid  # appended to the open conversation
    assert "message_appended" in event_kinds(api, cid)
    texts = [m["text"] for m in api.client("ann").get(f"/api/v1/conversations/{cid}").json()["messages"]]
    assert "when does it arrive" in texts[-1]

    # ann ends it; a later answer naming only the reference goes to her as last agent
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/disconnect").status_code == 200
    api.wait_state(cid, "closed")
    api.on_queue("bob")
    api.on_queue("ann")
    later = make_email(sender="ada@customer.example", subject=f"One more thing [#PR-{tid}]")
    again = deliver_raw(api, later)
    assert again != cid
    row = api.wait_state(again, "alerting", "ann")
    assert row.thread_id == tid and row.last_agent == "ann"


def test_stranger_cannot_join_the_thread_with_the_token(api: Api) -> None:
    r = new_email(api)
    tid = r.json()["thread_id"]
    other = deliver_raw(api, make_email(sender="eve@elsewhere.example", subject=f"Hi [#PR-{tid}]"))
    assert api.conv(other).thread_id != tid


# -- signatures ----------------------------------------------------------------------------


def test_queue_signature_is_shown_and_rendered(api_signatures: Api) -> None:
    api = api_signatures
    ann = api.client("ann")
    q = ann.get("/api/v1/queues/support").json()
    assert q["signature"]["text"] == "{agent_name}\n{queue_name} team ({reference})"
    # for a new email: no customer, no reference yet
    sig = ann.get("/api/v1/queues/support/signature").json()
    assert sig["text"] == "Ann\nsupport team ()"
    assert sig["html"] == "<p>Ann for </p>"  # sanitized: the handler is gone
    r = new_email(api)
    cid, ref = r.json()["conversation_id"], r.json()["reference"]
    sig = ann.get(f"/api/v1/conversations/{cid}/signature").json()
    assert sig["queue"] == "support" and sig["text"] == f"Ann\nsupport team ({ref})"
    assert sig["html"] == "<p>Ann for Ada Customer</p>"
    by_queue = ann.get("/api/v1/queues/support/signature", params={"conversation_id": cid}).json()
    assert by_queue["text"] == sig["text"]
    none = ann.get("/api/v1/queues/billing/signature").json()
    assert (none["text"], none["html"]) == (None, None)
    assert ann.get("/api/v1/queues/nowhere/signature").status_code == 404
    assert api.client("bob").get("/api/v1/queues/support/signature", params={"conversation_id": cid}).status_code == 404

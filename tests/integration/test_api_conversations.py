"""Conversation endpoints against a router answering in-process: list, search,
read, accept, decline, transfer, park, unpark, disconnect, wrap-up, drafts."""

from __future__ import annotations

import sqlalchemy as sa

from postroom.store.schema import agents, events
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api, close_api, make_api

api = fx.api  # the shared fixture
api_wrapup_codes = fx.api_wrapup_codes  # the shared fixture


def test_offer_accept_disconnect_wrapup_through_the_api(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    assert api.conv(cid).state == "connected"
    c = api.client("ann")
    r = c.get(f"/api/v1/conversations/{cid}")
    body = r.json()
    assert r.status_code == 200 and body["state"] == "connected" and body["agent"] == "ann"
    assert body["reference"] == f"PR-{body['thread_id']}"
    assert body["messages"][0]["subject"] == "Printer on fire"
    assert "printer is on fire" in body["messages"][0]["text"]
    assert c.post(f"/api/v1/conversations/{cid}/disconnect").status_code == 200
    r = c.post(f"/api/v1/conversations/{cid}/wrapup", json={"code": "resolved", "notes": "new toner"})
    assert r.status_code == 200, r.text
    row = api.wait_state(cid, "closed")
    assert row.wrapup_code == "resolved"
    got = c.get(f"/api/v1/conversations/{cid}").json()
    assert got["wrapup_notes"] == [{"agent": "ann", "code": "resolved", "notes": "new toner"}]


def test_wrapup_from_connected_ends_first(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    r = api.client("ann").post(f"/api/v1/conversations/{cid}/wrapup", json={"code": "done"})
    assert r.status_code == 200, r.text
    assert api.wait_state(cid, "closed").wrapup_code == "done"


def test_wrapup_code_must_be_one_of_the_queue(api_wrapup_codes: Api) -> None:
    api = api_wrapup_codes
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    c = api.client("ann")
    assert c.get(f"/api/v1/conversations/{cid}/wrapup-codes").json()["codes"] == ["resolved", "spam"]
    assert c.get("/api/v1/queues/support/wrapup-codes").json()["codes"] == ["resolved", "spam"]
    r = c.post(f"/api/v1/conversations/{cid}/wrapup", json={"code": "whatever"})
    assert r.status_code == 400 and "resolved, spam" in r.json()["error"]["message"]
    assert api.conv(cid).state == "connected"


def test_decline_moves_the_offer_on(api: Api) -> None:
    api.on_queue("ann")
    api.on_queue("bob")
    cid = api.deliver()
    first = api.wait_state(cid, "alerting").agent_id
    other = "bob" if first == "ann" else "ann"
    assert api.client(first).post(f"/api/v1/conversations/{cid}/decline").status_code == 200
    api.wait_state(cid, "alerting", other)


def test_accepting_an_offer_that_is_not_yours_is_forbidden(api: Api) -> None:
    api.on_queue("ann")
    cid = api.deliver()
    api.wait_state(cid, "alerting", "ann")
    r = api.client("bob").post(f"/api/v1/conversations/{cid}/accept")
    assert r.status_code == 404  # bob cannot even see it


def test_router_refusal_is_409_with_its_reason(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    r = api.client("ann").post(f"/api/v1/conversations/{cid}/accept")  # already connected
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "refused" and "refused accept" in err["message"]


def test_no_router_is_503(any_settings) -> None:  # type: ignore[no-untyped-def]
    a = make_api(any_settings, router=False, request_wait_s=0.2)
    try:
        r = a.client("ann").put("/api/v1/users/ann/presence", json={"presence": "on_queue"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "router_unavailable"
        assert "router" in r.json()["error"]["message"]
    finally:
        close_api(a)


def test_transfer_to_queue_and_to_agent(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    c = api.client("ann")
    r = c.post(f"/api/v1/conversations/{cid}/transfer", json={"queue": "billing"})
    assert r.status_code == 200, r.text
    row = api.wait_state(cid, "queued")
    assert row.queue == "billing"
    r = c.post(f"/api/v1/conversations/{cid}/transfer", json={"queue": "nowhere"})
    assert r.status_code in (400, 404)
    r = c.post(f"/api/v1/conversations/{cid}/transfer", json={"queue": "a", "agent": "b"})
    assert r.status_code == 422
    # a second one goes to bob by agent transfer
    cid2 = api.offered_and_accepted("ann", subject="Second")
    api.on_queue("bob")
    r = c.post(f"/api/v1/conversations/{cid2}/transfer", json={"agent": "bob"})
    assert r.status_code == 200, r.text
    api.wait_state(cid2, "alerting", "bob")


def test_park_and_unpark(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    c = api.client("ann")
    assert c.post(f"/api/v1/conversations/{cid}/park").status_code == 200
    api.wait_state(cid, "parked", "ann")
    # ann (capacity 1) takes another conversation meanwhile: she is at capacity
    other = api.offered_and_accepted("ann", subject="Second")
    r = c.post(f"/api/v1/conversations/{cid}/unpark")
    assert r.status_code == 200, r.text
    # taken back: connected to ann again at once (no offer to accept), past her capacity
    assert api.conv(cid).state == "connected" and api.conv(cid).agent_id == "ann"
    assert (api.conv(other).state, api.conv(other).agent_id) == ("connected", "ann")
    r = c.post(f"/api/v1/conversations/{cid}/unpark")
    assert r.status_code == 409 and "not parked" in r.text


def test_list_filter_and_search(api: Api) -> None:
    api.on_queue("ann")
    a = api.offered_and_accepted("ann", subject="Invoice question")
    api.client("ann").post(f"/api/v1/conversations/{a}/wrapup", json={"code": "ok"})
    api.wait_state(a, "closed")
    b = api.offered_and_accepted("ann", subject="Broken widget")
    sue = api.client("sue")
    ids = [x["id"] for x in sue.get("/api/v1/conversations").json()["conversations"]]
    assert ids[:2] == [b, a]
    found = sue.get("/api/v1/conversations", params={"q": "invoice"}).json()["conversations"]
    assert [x["id"] for x in found] == [a]
    ref = api.client("ann").get(f"/api/v1/conversations/{b}").json()["reference"]
    found = sue.get("/api/v1/conversations", params={"q": ref}).json()["conversations"]
    assert [x["id"] for x in found] == [b]
    assert sue.get("/api/v1/conversations", params={"state": "queued"}).json()["conversations"] == []
    mine = api.client("ann").get("/api/v1/conversations", params={"mine": True}).json()["conversations"]
    assert [x["id"] for x in mine] == [b]
    history = api.client("ann").get("/api/v1/conversations", params={"state": "closed"}).json()
    assert [x["id"] for x in history["conversations"]] == [a]
    assert sue.get("/api/v1/conversations", params={"state": "bogus"}).status_code == 400
    page = sue.get("/api/v1/conversations", params={"limit": 1, "before_id": b}).json()["conversations"]
    assert [x["id"] for x in page] == [a]


def test_supervisor_can_act_for_the_holding_agent(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    r = api.client("sue").post(f"/api/v1/conversations/{cid}/disconnect")
    assert r.status_code == 200 and r.json()["agent"] == "ann"
    api.wait_state(cid, "closed")


def test_drafts_one_per_agent_and_conversation(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    c = api.client("ann")
    assert c.get(f"/api/v1/conversations/{cid}/draft").json()["data"] is None
    r = c.put(f"/api/v1/conversations/{cid}/draft", json={"to": ["a@x.example"], "text": "Hi"})
    assert r.status_code == 200, r.text
    r = c.put(f"/api/v1/conversations/{cid}/draft", json={"to": ["a@x.example"], "text": "Hi again"})
    assert c.get(f"/api/v1/conversations/{cid}/draft").json()["data"]["text"] == "Hi again"
    with api.db.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM drafts").scalar_one() == 1
    # supervisors see the conversation but keep their own (empty) draft
    assert api.client("sue").get(f"/api/v1/conversations/{cid}/draft").json()["data"] is None
    too_many = {"to": [f"u{i}@x.example" for i in range(51)]}
    r = c.put(f"/api/v1/conversations/{cid}/draft", json=too_many)
    assert r.status_code == 422 and r.json()["error"]["code"] == "limit_exceeded"
    assert "50" in r.json()["error"]["message"]
    r = c.put(f"/api/v1/conversations/{cid}/draft", json={"attachments": list(range(1, 52))})
    assert r.status_code == 422 and r.json()["error"]["code"] == "limit_exceeded"
    r = c.put(f"/api/v1/conversations/{cid}/draft", json={"attachments": [999]})
    assert r.status_code == 404
    assert c.delete(f"/api/v1/conversations/{cid}/draft").status_code == 204
    assert c.get(f"/api/v1/conversations/{cid}/draft").json()["data"] is None


def test_presence_and_routing_status(api: Api) -> None:
    c = api.client("ann")
    r = c.put("/api/v1/users/ann/presence", json={"presence": "on_queue"})
    assert r.status_code == 200 and r.json()["presence"] == "on_queue"
    status = c.get("/api/v1/users/ann/routing-status").json()
    assert status["routing_status"] == "idle" and status["queues"] == ["support"]
    r = c.put("/api/v1/users/ann/presence", json={"presence": "sleeping"})
    assert r.status_code == 400 and "on_queue" in r.json()["error"]["message"]
    # agents act for themselves only; supervisors for anyone
    assert c.put("/api/v1/users/bob/presence", json={"presence": "on_queue"}).status_code == 403
    assert c.get("/api/v1/users/bob/routing-status").status_code == 403
    assert api.client("sue").put("/api/v1/users/bob/presence", json={"presence": "break"}).status_code == 200
    with api.db.connect() as conn:
        assert conn.execute(sa.select(agents.c.presence).where(agents.c.id == "bob")).scalar_one() == "break"
    assert api.client("sue").get("/api/v1/users/sue/routing-status").status_code == 404
    assert [u["id"] for u in c.get("/api/v1/users").json()["users"]] == ["ann"]
    assert len(api.client("adam").get("/api/v1/users").json()["users"]) == 4


def test_queue_figures(api: Api) -> None:
    api.on_queue("ann")
    api.offered_and_accepted("ann")
    waiting = api.deliver(subject="Waits")  # ann has capacity 1: this one waits
    api.wait_state(waiting, "queued")
    figures = {q["name"]: q for q in api.client("ann").get("/api/v1/queues").json()["queues"]}
    s = figures["support"]
    assert (s["waiting"], s["interacting"], s["agents_on_queue"]) == (1, 1, 1)
    assert s["longest_waiting_s"] is not None
    one = api.client("ann").get("/api/v1/queues/support").json()
    assert one["waiting"] == 1 and "wrapup_codes" in one
    assert api.client("ann").get("/api/v1/queues/nowhere").status_code == 404


def test_wrapup_notes_are_an_event(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    api.client("ann").post(f"/api/v1/conversations/{cid}/wrapup", json={"code": "x", "notes": "n"})
    with api.db.connect() as conn:
        kinds = [k for (k,) in conn.execute(sa.select(events.c.kind).where(events.c.conversation_id == cid))]
    assert "wrapup_notes" in kinds

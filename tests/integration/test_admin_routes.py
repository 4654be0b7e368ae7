"""The routes and rules admin API (web/admin/routes.py, rules.py over
services/admin/routes.py, rules.py) and the dry run: CRUD, order, enable and
disable, 422s naming the field, the permission table, audit entries, the
configuration version, the write-only IMAP password; and a route created
through the API in force for the next message without a restart (spool and
SMTP), its own name in the From of replies. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import smtplib
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.ingest.smtp import IntakeHandler, start_smtp_server
from postroom.services import configuration
from postroom.services.admin import audit
from postroom.services.configuration import LiveConfig
from postroom.store.schema import conversations, messages
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api
from tests.mailfactory import make_email
from tests.waiting import eventually

api = fx.api  # the shared fixture

ROUTES = "/api/v1/routing/routes"
RULES = "/api/v1/routing/rules"
DRY = "/api/v1/routing/dry-run"


def _audit(api: Api, **filters: Any) -> list[dict[str, Any]]:
    with api.db.connect() as conn:
        return audit.entries(conn, **filters)


def _version(api: Api) -> int:
    with api.db.connect() as conn:
        return configuration.version(conn) or 0


def _new_route(api: Api, **kw: Any) -> dict[str, Any]:
    body = {"address": "billing@example.com", "queue": "support", **kw}
    r = api.client("adam").post(ROUTES, json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


# -- routes -----------------------------------------------------------------------------


def test_route_crud_with_audit_and_version(api: Api) -> None:
    adam = api.client("adam")
    v0 = _version(api)
    made = _new_route(api, priority=5, skills={"billing": 2}, language="en",
                      reply_from="help@example.com", reply_from_name="Billing team",
                      auto_ack="Thanks {name}", preferred_agents=["ann"])
    assert made["address"] == "billing@example.com" and made["priority"] == 5
    assert made["reply_from_name"] == "Billing team" and made["skills"] == {"billing": 2.0}
    assert _version(api) > v0
    rid = made["id"]
    assert adam.get(f"{ROUTES}/{rid}").json()["queue"] == "support"
    assert [r["id"] for r in adam.get(ROUTES, params={"address": "BILLING@example.com"}).json()["routes"]] == [rid]
    assert adam.get(ROUTES, params={"address": "nobody@example.com"}).status_code == 404
    listed = [r["address"] for r in adam.get(ROUTES).json()["routes"]]
    assert listed[-1] == "billing@example.com"

    v1 = _version(api)
    r = adam.put(f"{ROUTES}/{rid}", json={"address": "billing@example.com", "queue": "support", "priority": 7})
    assert r.status_code == 200, r.text
    assert r.json()["priority"] == 7 and r.json()["language"] is None  # a full replace
    assert _version(api) > v1
    (entry,) = _audit(api, action="route.update", target_id=str(rid))
    assert entry["actor"] == "adam" and entry["before"]["priority"] == 5 and entry["after"]["priority"] == 7

    assert adam.delete(f"{ROUTES}/{rid}").status_code == 204
    assert adam.get(f"{ROUTES}/{rid}").status_code == 404
    assert [e["action"] for e in _audit(api, target_type="route")] == [
        "route.delete", "route.update", "route.create"
    ]


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"address": "no-at-sign", "queue": "support"}, "address", 422),
        ({"address": "x@example.com", "queue": "nope"}, "queue", 422),
        ({"address": "x@example.com", "queue": "support", "priority": "high"}, "priority", 422),
        ({"address": "x@example.com", "queue": "support", "reply_from": "*@example.com"}, "reply_from", 422),
        ({"address": "x@example.com", "queue": "support", "imap": {"host": "h", "user": "u"}}, "imap.password", 422),
        ({"address": "x@example.com", "queue": "support", "imap": {"host": "h", "user": "u", "password": "p", "after_import": "move"}}, "imap", 422),
        ({"address": "support@example.com", "queue": "support"}, "address", 409),
        ({"address": "x@example.com", "queue": "support", "colour": "red"}, "colour", 422),
    ],
)
def test_route_refusals_name_the_field(api: Api, body: dict[str, Any], field: str, status: int) -> None:
    v0 = _version(api)
    r = api.client("adam").post(ROUTES, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert field in (error.get("field") or error["message"]), error
    assert _version(api) == v0 and _audit(api, target_type="route") == []


def test_imap_password_is_write_only_and_kept_on_update(api: Api) -> None:
    adam = api.client("adam")
    imap = {"host": "imap.example.com", "user": "billing", "password": "s3cret-pw"}
    made = _new_route(api, imap=imap)
    assert made["imap"]["password"] is None and made["imap"]["password_set"] is True
    assert "s3cret-pw" not in adam.get(ROUTES).text
    for password in ({}, {"password": None}):  # left out, or null: the stored one stays
        body = {"address": "billing@example.com", "queue": "support",
                "imap": {"host": "imap2.example.com", "user": "billing", **password}}
        r = adam.put(f"{ROUTES}/{made['id']}", json=body)
        assert r.status_code == 200, r.text
        with api.db.connect() as conn:
            snap = configuration.load(conn)
        route = next(r for r in snap.routes if r.address == "billing@example.com")
        assert route.imap is not None and route.imap.password == "s3cret-pw"
        assert route.imap.host == "imap2.example.com"
    body["imap"] = {**body["imap"], "password": "new-pw"}
    assert adam.put(f"{ROUTES}/{made['id']}", json=body).status_code == 200
    with api.db.connect() as conn:
        route = next(r for r in configuration.load(conn).routes if r.address == "billing@example.com")
    assert route.imap is not None and route.imap.password == "new-pw"
    assert not any("pw" in str(e["after"]) for e in _audit(api, target_type="route"))


def test_routes_reorder_and_move(api: Api) -> None:
    adam = api.client("adam")
    first = adam.get(ROUTES).json()["routes"][0]["id"]
    a = _new_route(api, address="a@example.com")["id"]
    b = _new_route(api, address="b@example.com")["id"]
    ids = [r["id"] for r in adam.get(ROUTES).json()["routes"]]
    assert ids[-2:] == [a, b]
    r = adam.post(f"{ROUTES}/order", json={"ids": [b, a, *[i for i in ids if i not in (a, b)]]})
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["routes"]][:2] == [b, a]
    r = adam.post(f"{ROUTES}/{a}/move", json={"direction": "up"})
    assert [x["id"] for x in r.json()["routes"]][:2] == [a, b]
    r = adam.post(f"{ROUTES}/order", json={"ids": [a, b]})  # one left out
    assert r.status_code == 409 and r.json()["error"]["field"] == "ids"
    assert str(first) in r.json()["error"]["message"]
    assert len(_audit(api, action="route.reorder")) == 2


# -- rules ------------------------------------------------------------------------------

URGENT = {
    "name": "urgent",
    "when": [{"field": "subject", "op": "contains", "value": "urgent"}],
    "then": {"priority": 9, "tags": ["urgent"]},
}


def test_rule_crud_enable_disable_and_order(api: Api) -> None:
    adam = api.client("adam")
    v0 = _version(api)
    r = adam.post(RULES, json=URGENT)
    assert r.status_code == 201, r.text
    urgent = r.json()
    assert urgent["enabled"] is True and urgent["then"]["priority"] == 9
    assert _version(api) > v0
    vip = adam.post(RULES, json={"name": "vip", "when": [{"field": "sender", "op": "domain", "value": "vip.example"}],
                                 "then": {"queue": "support", "stop": True}}).json()
    assert [x["name"] for x in adam.get(RULES).json()["rules"]][-2:] == ["urgent", "vip"]

    r = adam.post(f"{RULES}/{urgent['id']}/disable")
    assert r.status_code == 200 and r.json()["enabled"] is False
    with api.db.connect() as conn:
        assert "urgent" not in [x.name for x in configuration.load(conn).rules]  # the snapshot: enabled only
    assert adam.get(f"{RULES}/{urgent['id']}").json()["enabled"] is False
    assert adam.post(f"{RULES}/{urgent['id']}/enable").json()["enabled"] is True

    ids = [x["id"] for x in adam.get(RULES).json()["rules"]]
    r = adam.post(f"{RULES}/order", json={"ids": list(reversed(ids))})
    assert r.status_code == 200 and [x["id"] for x in r.json()["rules"]] == list(reversed(ids))
    r = adam.post(f"{RULES}/{vip['id']}/move", json={"direction": "down"})
    assert [x["id"] for x in r.json()["rules"]][:2] == [ids[-2], vip["id"]]  # vip was first

    changed = {**URGENT, "then": {"priority": 3}}
    r = adam.put(f"{RULES}/{urgent['id']}", json=changed)
    assert r.status_code == 200 and r.json()["then"]["priority"] == 3 and r.json()["then"]["tags"] == []
    assert adam.delete(f"{RULES}/{urgent['id']}").status_code == 204
    assert adam.get(f"{RULES}/{urgent['id']}").status_code == 404
    actions = [e["action"] for e in _audit(api, target_type="rule")]
    assert actions == ["rule.delete", "rule.update", "rule.reorder", "rule.reorder", "rule.enable",
                       "rule.disable", "rule.create", "rule.create"]


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"name": "x", "then": {"queue": "nope"}}, "then.queue", 422),
        ({"name": "x", "when": [{"field": "colour", "value": "red"}]}, "when.0.field", 422),
        ({"name": "x", "when": [{"field": "subject", "op": "regex", "value": "("}]}, "when.0", 422),
        ({"name": "x", "when": [{"field": "subject", "op": "like", "value": "a"}]}, "when.0.op", 422),
        ({"name": "", "then": {}}, "name", 422),
        ({"name": "x", "then": {"priority": 10**9}}, "then.priority", 422),
    ],
)
def test_rule_refusals_name_the_field(api: Api, body: dict[str, Any], field: str, status: int) -> None:
    r = api.client("adam").post(RULES, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert field in (error.get("field") or error["message"]), error


def test_rule_names_are_unique(api: Api) -> None:
    adam = api.client("adam")
    assert adam.post(RULES, json=URGENT).status_code == 201
    r = adam.post(RULES, json=URGENT)
    assert r.status_code == 409 and r.json()["error"]["field"] == "name"


def test_permissions_read_for_supervisors_change_for_admins(api: Api) -> None:
    rid = _new_route(api)["id"]
    rule = api.client("adam").post(RULES, json=URGENT).json()["id"]
    ann, sue = api.client("ann"), api.client("sue")
    for path in (ROUTES, f"{ROUTES}/{rid}", RULES, f"{RULES}/{rule}"):
        assert ann.get(path).status_code == 403
        assert sue.get(path).status_code == 200
    raw = make_email(subject="hello").decode()
    assert ann.post(DRY, json={"raw": raw}).status_code == 403
    assert sue.post(DRY, json={"raw": raw}).status_code == 200
    for who in (ann, sue):
        assert who.post(ROUTES, json={"address": "z@example.com", "queue": "support"}).status_code == 403
        assert who.put(f"{ROUTES}/{rid}", json={"address": "z@example.com", "queue": "support"}).status_code == 403
        assert who.delete(f"{ROUTES}/{rid}").status_code == 403
        assert who.post(f"{RULES}/{rule}/disable").status_code == 403
        assert who.post(f"{RULES}/order", json={"ids": [rule]}).status_code == 403
        assert who.delete(f"{RULES}/{rule}").status_code == 403


# -- the dry run ------------------------------------------------------------------------


def test_dry_run_explains_rules_in_order_and_stores_nothing(api: Api) -> None:
    adam = api.client("adam")
    _new_route(api, address="billing@example.com", priority=1, auto_ack="Hello {name}, re: {subject}")
    adam.post(RULES, json=URGENT)
    stop = adam.post(RULES, json={"name": "vip", "when": [{"field": "sender", "op": "domain", "value": "gold.example"}],
                                  "then": {"skills": {"vip": 3}, "stop": True}}).json()
    adam.post(RULES, json={"name": "after", "then": {"tags": ["later"]}})
    off = adam.post(RULES, json={"name": "off", "then": {"priority": 1}}).json()
    adam.post(f"{RULES}/{off['id']}/disable")
    with api.db.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
    raw = make_email(subject="URGENT please", sender="Bob <bob@shop.gold.example>",
                     to="billing@example.com").decode()
    r = adam.post(DRY, json={"raw": raw})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["route"]["address"] == "billing@example.com"
    mine = {x["name"]: x for x in out["rules"]}
    assert mine["urgent"]["status"] == "matched" and mine["urgent"]["conditions"][0]["matched"] is True
    assert mine["vip"]["status"] == "matched"
    assert mine["after"]["status"] == "skipped" and mine["after"]["because"] == "vip"
    assert mine["off"]["status"] == "disabled" and mine["off"]["id"] == off["id"]
    assert stop["id"] == mine["vip"]["id"]
    res = out["result"]
    assert res["priority"] == 9 and res["tags"] == ["urgent"] and res["skills"] == {"vip": 3.0}
    assert res["auto_ack_rendered"] == "Hello Bob, re: URGENT please"
    with api.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == count

    # Headers and a body instead of raw; a rule not matching.
    r = adam.post(DRY, json={"headers": {"From": "amy@example.org", "To": "billing@example.com",
                                         "Subject": "a question"}, "text": "hi"})
    mine = {x["name"]: x for x in r.json()["rules"]}
    assert mine["urgent"]["status"] == "not_matched" and mine["urgent"]["conditions"][0]["matched"] is False
    assert r.json()["result"]["priority"] == 1

    # No route: why; a rule set not saved yet.
    r = adam.post(DRY, json={"raw": raw, "envelope_to": ["who@elsewhere.example"]})
    assert r.json()["route"] is None and "who@elsewhere.example" in r.json()["no_route"]
    r = adam.post(DRY, json={"raw": raw, "rules": [{"name": "try", "then": {"discard": "spam"}}]})
    assert [x["name"] for x in r.json()["rules"]] == ["try"]
    assert r.json()["result"]["discard_reason"] == "spam"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"raw": "x", "text": "y"},
        {"headers": {"Bad Name:": "x"}, "text": "y"},
        {"headers": {"Subject": "a\x00b"}, "text": "y"},
        {"raw": "x" * (1 << 20 + 1)},
        {"raw": "é" * ((1 << 20) - 10)},
        {"raw": "\x00\xff garbage \r\n\r\n\r\n--"},
        {"raw": "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" * 2000},
    ],
)
def test_dry_run_hostile_input_is_never_a_500(api: Api, body: dict[str, Any]) -> None:
    r = api.client("adam").post(DRY, json=body)
    assert r.status_code in (200, 400, 413, 422), r.text
    if r.status_code != 200:
        assert r.json()["error"]["message"]


# -- live: the next message, without a restart -------------------------------------------


def test_a_route_created_through_the_api_routes_the_next_message(api: Api) -> None:
    api.on_queue("ann")
    other_node = LiveConfig(api.db, max_age_s=0.05)  # another process's view
    assert all(r.address != "orders@example.com" for r in other_node.current().routes)
    _new_route(api, address="orders@example.com", priority=4, reply_from_name="Orders desk")
    try:
        eventually(
            lambda: any(r.address == "orders@example.com" for r in other_node.current().routes)
        )
    finally:
        other_node.close()
    pk = api.comps.spool().accept_sync(
        make_email(subject="Where is my parcel", to="orders@example.com"),
        source="smtp", envelope_to=["orders@example.com"],
    ).message_pk
    api.comps.intake.drain()
    with api.db.connect() as conn:
        cid = conn.execute(sa.select(messages.c.conversation_id).where(messages.c.id == pk)).scalar_one()
        conv = conn.execute(sa.select(conversations).where(conversations.c.id == cid)).one()
    assert conv.route_address == "orders@example.com" and conv.priority == 4
    api.wait_state(cid, "alerting", "ann")  # offered to an agent, no restart
    r = api.client("ann").post(f"/api/v1/conversations/{cid}/accept")
    assert r.status_code == 200, r.text
    r = api.client("ann").post(f"/api/v1/conversations/{cid}/send", json={"text": "On its way."})
    assert r.status_code == 201, r.text
    with api.db.connect() as conn:
        (headers,) = conn.execute(
            sa.select(messages.c.headers).where(
                messages.c.conversation_id == cid, messages.c.direction == "out"
            )
        ).one()
    sender = dict((k, v) for k, v in headers)["From"]
    assert "Orders desk" in sender and "orders@example.com" in sender  # the route's own name


def test_smtp_accepts_a_new_routes_address_at_once(api: Api) -> None:
    handler = IntakeHandler(api.comps.spool(), lambda: api.comps.live.current().routes)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def start() -> None:
        holder["server"] = await start_smtp_server(
            handler, host="127.0.0.1", port=0, hostname="mx.test", max_message_size=1 << 20
        )
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(10)
    port = holder["server"].sockets[0].getsockname()[1]
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("cust@example.org")
            code, _ = smtp.rcpt("returns@example.com")
            assert code == 550  # no route yet
        _new_route(api, address="returns@example.com")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            refused = smtp.sendmail(
                "cust@example.org", ["returns@example.com"],
                make_email(subject="Return", to="returns@example.com"),
            )
        assert refused == {}
        api.comps.intake.drain()
        with api.db.connect() as conn:
            row = conn.execute(
                sa.select(conversations.c.route_address)
                .join(messages, messages.c.conversation_id == conversations.c.id)
                .where(messages.c.subject == "Return")
            ).one()
        assert row.route_address == "returns@example.com"
    finally:
        loop.call_soon_threadsafe(holder["server"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

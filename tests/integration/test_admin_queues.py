"""The queue configuration, members, agents' routing settings and catalogs API
(web/admin/queues.py, agents.py, catalog.py over services/admin/): validation
as 422 naming the field, permissions, audit entries, the router's requests,
and the live path: a queue made through the API takes work at once, and an
agent removed from it has their alerting offer withdrawn. On SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from postroom.runtime.cli import main
from postroom.services import configuration
from postroom.services.admin import audit
from postroom.services.admin.schema import RouteModel
from postroom.store.schema import (
    agents,
    conversations,
    events,
    languages,
    messages,
    routes,
    routing_inbox,
    skills,
)
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api
from tests.mailfactory import make_email
from tests.waiting import eventually

api = fx.api  # the shared fixture

Q = "/api/v1/routing/queues"


def _audit(api: Api, **filters: Any) -> list[dict[str, Any]]:
    with api.db.connect() as conn:
        return audit.entries(conn, **filters)


def _inbox(api: Api, kind: str) -> list[sa.Row[Any]]:
    with api.db.connect() as conn:
        return conn.execute(
            sa.select(routing_inbox).where(routing_inbox.c.kind == kind).order_by(routing_inbox.c.id)
        ).all()


def _skill(api: Api, name: str) -> None:
    r = api.client("adam").post("/api/v1/routing/skills", json={"name": name})
    assert r.status_code == 201, r.text


def _deliver(api: Api, to: str, subject: str = "Help") -> int:
    pk = api.comps.spool().accept_sync(
        make_email(to=to, subject=subject), source="smtp", envelope_to=[to]
    ).message_pk
    api.comps.intake.drain()
    with api.db.connect() as conn:
        cid = conn.execute(sa.select(messages.c.conversation_id).where(messages.c.id == pk)).scalar()
    assert cid is not None
    return int(cid)


def _add_route(api: Api, address: str, queue: str, **extra: Any) -> None:
    """(The routes API is another area's; here the route is written directly.)"""
    model = RouteModel.model_validate({"address": address, "queue": queue, **extra})
    with api.db.begin() as conn:
        conn.execute(routes.insert().values(**configuration.route_row(model, 99)))
        configuration.changed(conn, api.comps.clock())
    api.comps.live.refresh()


def _live_router(api: Api) -> None:
    assert api.router is not None
    api.router.service.live = api.comps.live  # the router re-reads the stored queues


# -- the live path ------------------------------------------------------------------------


def test_a_queue_made_through_the_api_routes_at_once_and_leaving_it_withdraws_the_offer(
    api: Api,
) -> None:
    _live_router(api)
    adam = api.client("adam")
    _skill(api, "printers")
    r = adam.post(Q, json={"name": "tier2", "alert_timeout_s": 600})
    assert r.status_code == 201, r.text
    r = adam.put("/api/v1/agents/bob", json={"queues": ["tier2"], "skills": {"printers": 4}})
    assert r.status_code == 200, r.text
    _add_route(api, "tier2@example.com", "tier2", skills={"printers": 3})
    api.on_queue("bob")
    cid = _deliver(api, "tier2@example.com")
    assert api.wait_state(cid, "alerting", "bob").queue == "tier2"

    r = adam.post(f"{Q}/tier2/members/remove", json={"agents": ["bob"]})
    assert r.status_code == 200 and r.json()["removed"] == ["bob"], r.text
    api.wait_state(cid, "queued")

    def withdrawn() -> bool:
        with api.db.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.data).where(
                    events.c.conversation_id == cid, events.c.kind == "offer_withdrawn"
                )
            ).all()
        return any(d["agent"] == "bob" for (d,) in rows)

    eventually(withdrawn)
    # Back in the queue, the conversation goes to bob again once he is a member.
    r = adam.post(f"{Q}/tier2/members", json={"agents": ["bob"]})
    assert r.status_code == 200 and r.json()["added"] == ["bob"]
    api.wait_state(cid, "alerting", "bob")


def test_deleting_a_queue_with_a_target_moves_its_work_through_the_router(api: Api) -> None:
    _live_router(api)
    adam = api.client("adam")
    assert adam.post(Q, json={"name": "old"}).status_code == 201
    assert adam.post(Q, json={"name": "new"}).status_code == 201
    _add_route(api, "old@example.com", "old")
    assert adam.post(f"{Q}/old/members", json={"agents": ["ann"]}).status_code == 200
    api.on_queue("ann")
    held = _deliver(api, "old@example.com", "first")
    api.wait_state(held, "alerting", "ann")
    assert api.client("ann").post(f"/api/v1/conversations/{held}/accept").status_code == 200
    waiting = _deliver(api, "old@example.com", "second")  # ann is full (capacity 1)
    api.wait_state(waiting, "queued")
    # A route names it: refused, and it says which.
    r = adam.delete(f"{Q}/old", params={"target": "new"})
    assert r.status_code == 409 and "route old@example.com" in r.json()["error"]["message"]
    with api.db.begin() as conn:
        conn.execute(routes.delete().where(routes.c.queue == "old"))
        configuration.changed(conn, api.comps.clock())
    api.comps.live.refresh()
    # Open work and no target: refused with the counts.
    r = adam.delete(f"{Q}/old")
    assert r.status_code == 409 and "1 connected, 1 queued" in r.json()["error"]["message"], r.text
    r = adam.delete(f"{Q}/old", params={"target": "nowhere"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "target"
    r = adam.delete(f"{Q}/old", params={"target": "new"})
    assert r.status_code == 200, r.text
    assert r.json()["conversations"] == {"queued": 1, "connected": 1}
    eventually(lambda: api.conv(waiting).queue == "new" and api.conv(held).queue == "new")
    assert api.conv(waiting).state == "queued"
    assert (api.conv(held).state, api.conv(held).agent_id) == ("connected", "ann")
    with api.db.connect() as conn:  # ann is no member of a queue that is gone
        assert conn.execute(sa.select(agents.c.queues).where(agents.c.id == "ann")).scalar() == [
            "support"
        ]
    assert adam.get(f"{Q}/old").status_code == 404
    (entry,) = _audit(api, action="queue.delete", target_id="old")
    assert entry["after"]["moved_to"] == "new"


# -- queues: validation, permissions, audit -------------------------------------------------


def test_queue_validation_names_the_field(api: Api) -> None:
    adam = api.client("adam")
    r = adam.post(Q, json={"name": "q1", "alert_timeout_s": 3})
    assert r.status_code == 422 and "alert_timeout_s" in r.json()["error"]["message"]
    r = adam.post(Q, json={"name": "q1", "evaluation": "random"})
    assert r.status_code == 422 and "evaluation" in r.json()["error"]["message"]
    r = adam.post(Q, json={"name": "q1", "rings": [{"expansion_timeout_s": 0}]})
    assert r.status_code == 422 and "rings.0.expansion_timeout_s" in r.json()["error"]["message"]
    r = adam.post(Q, json={"name": "q1", "wrapup_codes": ["resolved"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "wrapup_codes"
    assert "resolved" in r.json()["error"]["message"]
    r = adam.post(Q, json={"name": "support"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = adam.post(Q, json={"name": "q1", "surprise": 1})
    assert r.status_code == 422 and "surprise" in r.json()["error"]["message"]


def test_queue_create_update_with_every_setting_audited_and_announced(api: Api) -> None:
    adam = api.client("adam")
    assert adam.post("/api/v1/routing/wrapupcodes", json={"name": "resolved"}).status_code == 201
    _skill(api, "french")
    body = {
        "name": "emea",
        "alert_timeout_s": 30,
        "service_level_percent": 90,
        "service_level_seconds": 3600,
        "evaluation": "best_skills",
        "scoring_method": "priority_only",
        "wrapup_prompt": "mandatory_timeout",
        "wrapup_timeout_s": 120,
        "wrapup_codes": ["resolved"],
        "last_agent_routing_mode": "queue_members_only",
        "last_agent_window_s": 3600,
        "park_timeout_s": 7200,
        "rings": [{"expansion_timeout_s": 300, "skills_to_remove": ["french"]}],
        "signature_text": "-- {agent_name}",
        "signature_html": "<p>{agent_name}</p>",
    }
    versions = len(_inbox(api, "config_changed"))
    r = adam.post(Q, json=body)
    assert r.status_code == 201, r.text
    got = adam.get(f"{Q}/emea").json()
    assert {k: got[k] for k in body} == body | {
        "rings": [{"expansion_timeout_s": 300, "skills_to_remove": ["french"], "remove_language": False}]
    }
    assert len(_inbox(api, "config_changed")) == versions + 1
    assert api.comps.live.current().queue("emea") is not None
    r = adam.put(f"{Q}/emea", json=body | {"alert_timeout_s": 45})
    assert r.status_code == 200 and r.json()["alert_timeout_s"] == 45
    r = adam.put(f"{Q}/emea", json=body | {"name": "apac"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    assert adam.put(f"{Q}/nope", json=body | {"name": "nope"}).status_code == 404
    (made,) = _audit(api, action="queue.create", target_id="emea")
    (changed,) = _audit(api, action="queue.update", target_id="emea")
    assert made["actor"] == "adam" and changed["before"]["alert_timeout_s"] == 30
    assert changed["after"]["alert_timeout_s"] == 45
    names = [q["name"] for q in adam.get(Q).json()["queues"]]
    assert "emea" in names and "support" in names
    # The live figures of /api/v1/queues still answer, with the new queue.
    live = api.client("sue").get("/api/v1/queues")
    assert live.status_code == 200 and "emea" in {q["name"] for q in live.json()["queues"]}


def test_permissions_read_for_supervisors_change_for_admins(api: Api) -> None:
    ann, sue, adam = api.client("ann"), api.client("sue"), api.client("adam")
    for path in (Q, f"{Q}/support", f"{Q}/support/members", "/api/v1/agents", "/api/v1/agents/bob",
                 "/api/v1/routing/skills", "/api/v1/routing/languages", "/api/v1/routing/wrapupcodes"):
        assert ann.get(path).status_code == 403, path
        assert sue.get(path).status_code == 200, path
        assert adam.get(path).status_code == 200, path
    changes = [
        ("post", Q, {"name": "x"}),
        ("put", f"{Q}/support", {"name": "support"}),
        ("delete", f"{Q}/vip", None),
        ("post", f"{Q}/support/members", {"agents": ["bob"]}),
        ("post", f"{Q}/support/members/remove", {"agents": ["bob"]}),
        ("put", "/api/v1/agents/bob", {"capacity": 2}),
        ("post", "/api/v1/routing/skills", {"name": "s"}),
        ("post", "/api/v1/routing/languages", {"code": "en"}),
        ("post", "/api/v1/routing/wrapupcodes", {"name": "c"}),
    ]
    for method, path, body in changes:
        for client in (ann, sue):
            kw = {"json": body} if body is not None else {}
            assert client.request(method, path, **kw).status_code == 403, (method, path)


# -- members and agents --------------------------------------------------------------------


def test_members_in_bulk_with_audit_and_one_request_per_agent(api: Api) -> None:
    adam = api.client("adam")
    before = len(_inbox(api, "agent_configured"))
    r = adam.post(f"{Q}/billing/members", json={"agents": ["ann", "bob", "ann"]})
    assert r.status_code == 200 and r.json()["added"] == ["ann", "bob"]
    assert len(_inbox(api, "agent_configured")) == before + 2
    members = adam.get(f"{Q}/billing/members").json()["members"]
    assert [m["id"] for m in members] == ["ann", "bob"]
    (entry,) = _audit(api, action="queue.members_add", target_id="billing")
    assert entry["after"] == {"agents": ["ann", "bob"]}
    r = adam.post(f"{Q}/billing/members", json={"agents": ["ann", "ghost"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "agents"
    assert "ghost" in r.json()["error"]["message"]
    r = adam.post(f"{Q}/billing/members", json={"agents": [f"a{i}" for i in range(101)]})
    assert r.status_code == 422 and "agents" in r.json()["error"]["message"]
    assert adam.post(f"{Q}/nope/members", json={"agents": ["ann"]}).status_code == 404
    r = adam.post(f"{Q}/billing/members/remove", json={"agents": ["bob"]})
    assert r.status_code == 200 and r.json()["removed"] == ["bob"]
    with api.db.connect() as conn:
        assert conn.execute(sa.select(agents.c.queues).where(agents.c.id == "bob")).scalar() == [
            "support"
        ]


def test_agent_routing_settings_checked_against_catalogs(api: Api) -> None:
    adam = api.client("adam")
    r = adam.put("/api/v1/agents/bob", json={"skills": {"printers": 3}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "skills"
    assert "printers" in r.json()["error"]["message"]
    _skill(api, "printers")
    r = adam.put("/api/v1/agents/bob", json={"skills": {"printers": 6}})
    assert r.status_code == 422 and "skills.printers" in r.json()["error"]["message"]
    r = adam.put("/api/v1/agents/bob", json={"capacity": 26})
    assert r.status_code == 422 and "capacity" in r.json()["error"]["message"]
    r = adam.put("/api/v1/agents/bob", json={"languages": ["de"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "languages"
    r = adam.put("/api/v1/agents/bob", json={"queues": ["nope"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "queues"
    assert adam.post("/api/v1/routing/languages", json={"code": "de", "name": "German"}).status_code == 201
    before = len(_inbox(api, "agent_configured"))
    r = adam.put(
        "/api/v1/agents/bob",
        json={"queues": ["support", "vip"], "skills": {"printers": 5}, "languages": ["de"], "capacity": 4},
    )
    assert r.status_code == 200, r.text
    got = adam.get("/api/v1/agents/bob").json()
    assert (got["queues"], got["skills"], got["languages"], got["capacity"]) == (
        ["support", "vip"], {"printers": 5}, ["de"], 4,
    )
    assert len(_inbox(api, "agent_configured")) == before + 1
    (entry,) = _audit(api, action="agent.update", target_id="bob")
    assert entry["before"]["capacity"] == 1 and entry["after"]["capacity"] == 4
    assert adam.get("/api/v1/agents/sue").status_code == 404  # a supervisor has none


# -- catalogs ------------------------------------------------------------------------------


def test_catalog_entries_in_use_cannot_be_deleted(api: Api) -> None:
    adam = api.client("adam")
    _skill(api, "printers")
    r = adam.post("/api/v1/routing/skills", json={"name": "printers"})
    assert r.status_code == 409
    r = adam.put("/api/v1/routing/skills/printers", json={"description": "laser and ink"})
    assert r.status_code == 200 and r.json()["description"] == "laser and ink"
    assert adam.put("/api/v1/agents/bob", json={"queues": ["support"], "skills": {"printers": 2}}).status_code == 200
    r = adam.delete("/api/v1/routing/skills/printers")
    assert r.status_code == 409 and "agent bob" in r.json()["error"]["message"]
    assert adam.post("/api/v1/routing/wrapupcodes", json={"name": "resolved"}).status_code == 201
    assert adam.put(f"{Q}/vip", json={"name": "vip", "wrapup_codes": ["resolved"]}).status_code == 200
    r = adam.delete("/api/v1/routing/wrapupcodes/resolved")
    assert r.status_code == 409 and "queue vip" in r.json()["error"]["message"]
    assert adam.post("/api/v1/routing/wrapupcodes", json={"name": "spam"}).status_code == 201
    assert adam.delete("/api/v1/routing/wrapupcodes/spam").status_code == 204
    assert adam.get("/api/v1/routing/wrapupcodes/spam").status_code == 404
    assert [e["action"] for e in _audit(api, target_type="wrapup_code")] == [
        "wrapup_code.delete", "wrapup_code.create", "wrapup_code.create",
    ]
    r = adam.post("/api/v1/routing/skills", json={"name": "a/b"})
    assert r.status_code == 422 and "name" in r.json()["error"]["message"]


def test_the_command_line_adds_missing_skills_and_languages_to_the_catalogs(tmp_path: Path) -> None:
    config = tmp_path / "postroom.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[[queues]]\nname = "support"\n'
        'wrapup_codes = ["resolved"]\n'
    )
    assert main(["agent", "add", "bob", "--queues", "support", "--skills", "printers=4",
                 "--languages", "fr", "--config", str(config)]) == 0
    db = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'postroom.db'}")
    try:
        with db.connect() as conn:
            assert conn.execute(sa.select(skills.c.name)).scalars().all() == ["printers"]
            assert conn.execute(sa.select(languages.c.code)).scalars().all() == ["fr"]
            # The file's seed put the queue's wrap-up code in the catalog.
            from postroom.store.schema import wrapup_codes

            assert conn.execute(sa.select(wrapup_codes.c.name)).scalars().all() == ["resolved"]
            assert conn.execute(sa.select(conversations.c.id)).first() is None
    finally:
        db.dispose()


def test_raising_a_routes_skill_requirement_leaves_waiting_work_as_it_was(api: Api) -> None:
    _live_router(api)
    adam = api.client("adam")
    _skill(api, "printers")
    assert adam.post(Q, json={"name": "tier2"}).status_code == 201
    _add_route(api, "tier2@example.com", "tier2", skills={"printers": 2})
    cid = _deliver(api, "tier2@example.com")
    api.wait_state(cid, "queued")  # nobody is a member yet
    with api.db.begin() as conn:  # the route now asks for an expert
        model = RouteModel.model_validate(
            {"address": "tier2@example.com", "queue": "tier2", "skills": {"printers": 5}}
        )
        conn.execute(
            routes.update().where(routes.c.address == "tier2@example.com").values(
                **configuration.route_row(model, 99)
            )
        )
        configuration.changed(conn, api.comps.clock())
    api.comps.live.refresh()
    # A member with proficiency 3 still gets the waiting conversation (it needs 2).
    r = adam.put("/api/v1/agents/bob", json={"queues": ["tier2"], "skills": {"printers": 3}})
    assert r.status_code == 200
    api.on_queue("bob")
    api.wait_state(cid, "alerting", "bob")
    assert api.conv(cid).skills == [["printers", 2.0]]
    # A new conversation carries the new requirement.
    later = _deliver(api, "tier2@example.com", "later")
    api.wait_state(later, "queued")
    assert api.conv(later).skills == [["printers", 5.0]]

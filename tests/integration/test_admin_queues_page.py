"""The /admin/queues, /admin/members and /admin/wrapup-codes pages: lists, the
queue form with every setting and its help, errors beside their field with the
typed values kept, the members matrix and an agent's skills, the catalogs."""

from __future__ import annotations

import re

import sqlalchemy as sa

from postroom.store.schema import agents
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _error_of(page: str, field: str, prefix: str = "f-") -> str:
    found = re.search(
        rf'<span class="error" id="{prefix}{field}-error" role="alert">([^<]*)</span>', page
    )
    assert found, f"no error beside {field}"
    return found.group(1)


def test_queue_list_and_the_new_queue_form_with_help(api: Api) -> None:
    adam = api.client("adam")
    r = adam.get("/admin/queues")
    assert r.status_code == 200 and 'href="/admin/queues/support"' in r.text
    assert "<script>" not in r.text and "style=" not in r.text
    r = adam.get("/admin/queues?new=1")
    for field in ("name", "alert_timeout_s", "service_level_percent", "evaluation", "rings-0-expansion_timeout_s",
                  "last_agent_routing_mode", "wrapup_prompt", "park_timeout_s", "signature_html"):
        assert f'<label for="f-{field}"' in r.text, field
    assert "How long an offer rings" in r.text


def test_a_queue_form_error_sits_beside_its_field_and_keeps_typed_values(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/queues?new=1").text)
    form = {"csrf_token": csrf, "name": "tier2", "alert_timeout_s": "3", "service_level_percent": "90",
            "evaluation": "best_skills", "signature_text": "-- Tier 2", "rings.0.expansion_timeout_s": "120"}
    r = adam.post("/admin/queues", data=form)
    assert r.status_code == 422
    assert "greater than or equal to 7" in _error_of(r.text, "alert_timeout_s")
    assert 'value="tier2"' in r.text and 'value="90"' in r.text and "-- Tier 2</textarea>" in r.text
    assert '<option value="best_skills" selected>' in r.text and 'value="120"' in r.text
    assert 'aria-describedby="f-alert_timeout_s-error"' in r.text
    r = adam.post("/admin/queues", data=form | {"alert_timeout_s": "30"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/queues/tier2")
    r = adam.get("/admin/queues/tier2")
    assert r.status_code == 200 and 'value="30"' in r.text and "Delete this queue" in r.text
    # Saving an edit: the name stays, errors come back beside the field.
    csrf = _csrf(r.text)
    r = adam.post("/admin/queues/tier2", data={"csrf_token": csrf, "alert_timeout_s": "40",
                                               "park_timeout_s": "-1"})
    assert r.status_code == 422 and _error_of(r.text, "park_timeout_s")
    r = adam.post("/admin/queues/tier2", data={"csrf_token": csrf, "alert_timeout_s": "40"},
                  follow_redirects=False)
    assert r.status_code == 303
    assert adam.get("/api/v1/routing/queues/tier2").json()["alert_timeout_s"] == 40


def test_deleting_a_queue_with_work_needs_a_target_shown_beside_the_field(api: Api) -> None:
    adam = api.client("adam")
    api.deliver()  # support has a conversation
    csrf = _csrf(adam.get("/admin/queues/support").text)
    r = adam.post("/admin/queues/support/delete", data={"csrf_token": csrf})
    assert r.status_code == 409 and "route support@example.com" in _error_of(r.text, "target", "d-")


def test_supervisors_read_the_pages_but_cannot_save(api: Api) -> None:
    sue = api.client("sue")
    r = sue.get("/admin/queues/support")
    assert r.status_code == 200 and "Create queue" not in r.text and ">Save<" not in r.text
    r = sue.post("/admin/queues", data={"csrf_token": _csrf(r.text), "name": "x"})
    assert r.status_code == 403
    assert api.client("ann").get("/admin/members").status_code == 403


def test_members_matrix_saves_memberships(api: Api) -> None:
    adam = api.client("adam")
    r = adam.get("/admin/members")
    assert r.status_code == 200 and 'aria-label="Bob in billing"' in r.text
    csrf = _csrf(r.text)
    r = adam.post("/admin/members", data={"csrf_token": csrf, "agent": ["ann", "bob"],
                                          "member": ["ann\tsupport", "bob\tbilling", "bob\tvip"]},
                  follow_redirects=False)
    assert r.status_code == 303
    with api.db.connect() as conn:
        got = dict(conn.execute(sa.select(agents.c.id, agents.c.queues)).all())
    assert got["ann"] == ["support"] and sorted(got["bob"]) == ["billing", "vip"]


def test_an_agents_skills_with_errors_beside_the_field(api: Api) -> None:
    adam = api.client("adam")
    assert adam.post("/api/v1/routing/skills", json={"name": "printers"}).status_code == 201
    r = adam.get("/admin/members/bob")
    assert r.status_code == 200 and 'name="skill:printers"' in r.text
    csrf = _csrf(r.text)
    r = adam.post("/admin/members/bob", data={"csrf_token": csrf, "skill:printers": "4", "capacity": "30"})
    assert r.status_code == 422 and "25" in _error_of(r.text, "capacity")
    assert 'value="30"' in r.text and '<option value="4" selected>' in r.text
    r = adam.post("/admin/members/bob", data={"csrf_token": csrf, "skill:printers": "4", "capacity": "2"},
                  follow_redirects=False)
    assert r.status_code == 303
    got = adam.get("/api/v1/agents/bob").json()
    assert got["skills"] == {"printers": 4} and got["capacity"] == 2 and got["queues"] == ["support"]


def test_catalog_page_adds_and_refuses_deleting_what_is_in_use(api: Api) -> None:
    adam = api.client("adam")
    r = adam.get("/admin/wrapup-codes")
    assert r.status_code == 200 and "Wrap-up codes" in r.text and "Languages" in r.text
    csrf = _csrf(r.text)
    r = adam.post("/admin/wrapup-codes/skill", data={"csrf_token": csrf, "name": "a/b", "description": "x"})
    assert r.status_code == 422 and _error_of(r.text, "name", "skill-") and 'value="a/b"' in r.text
    r = adam.post("/admin/wrapup-codes/skill", data={"csrf_token": csrf, "name": "printers"},
                  follow_redirects=False)
    assert r.status_code == 303
    r = adam.post("/admin/wrapup-codes/skill", data={"csrf_token": csrf, "name": "printers"})
    assert r.status_code == 409 and "already" in _error_of(r.text, "name", "skill-")
    assert adam.put("/api/v1/agents/bob", json={"queues": ["support"], "skills": {"printers": 1}}).status_code == 200
    r = adam.post("/admin/wrapup-codes/skill/delete", data={"csrf_token": csrf, "key": "printers"})
    assert r.status_code == 409 and "agent bob" in r.text


def test_queue_names_with_spaces_and_hashes_link_to_their_page(api: Api) -> None:
    adam = api.client("adam")
    assert adam.post("/api/v1/routing/queues", json={"name": "tier 2 #emea"}).status_code == 201
    r = adam.get("/admin/queues")
    assert 'href="/admin/queues/tier%202%20%23emea"' in r.text
    r = adam.get("/admin/queues/tier%202%20%23emea")
    assert r.status_code == 200 and 'action="/admin/queues/tier%202%20%23emea"' in r.text

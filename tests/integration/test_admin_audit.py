"""The audit log's API and page: admins only, filters, newest first, paging with
before_id, secrets shown as ***, and the before/after view. SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from postroom.services.admin import audit
from postroom.services.admin.audit import Actor
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def seed(api: Api) -> list[int]:
    """Five entries an hour apart, oldest first."""
    rows = [
        (Actor("adam", "session"), "queue.update", "queue", "support", {"alert_timeout_s": 30}, {"alert_timeout_s": 60}),
        (Actor("adam", "token"), "queue.create", "queue", "vip", None, {"name": "vip"}),
        (Actor.cli(), "quarantine.retry", "quarantine", "17", {"status": "quarantined"}, {"status": "pending"}),
        (Actor("sue", "session"), "canned_response.delete", "canned_response", "3", {"name": "Hi"}, None),
        (Actor("adam", "session"), "user.update", "user", "ann", {"password": "old"}, {"password": "new"}),
    ]
    ids = []
    with api.db.begin() as conn:
        for i, (actor, action, ttype, tid, before, after) in enumerate(rows):
            ids.append(audit.record(conn, T0 + timedelta(hours=i), actor, action, ttype, tid, before, after))
    return ids


def ids_of(api: Api, **params: object) -> list[int]:
    """Entry ids found, newest first, leaving out the fixture's users being made."""
    r = api.client("adam").get("/api/v1/audit", params=params)
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()["entries"] if e["action"] != "user.create"]


def test_only_admins_read_the_audit_log(api: Api) -> None:
    seed(api)
    assert TestClient(api.app).get("/api/v1/audit").status_code == 401
    for user in ("ann", "sue"):
        r = api.client(user).get("/api/v1/audit")
        assert r.status_code == 403 and "view_audit" in r.json()["error"]["message"]
    assert len(ids_of(api)) == 5


def test_filters_newest_first_and_paging(api: Api) -> None:
    ids = seed(api)
    assert ids_of(api) == ids[::-1]
    assert ids_of(api, actor="adam") == [ids[4], ids[1], ids[0]]
    assert ids_of(api, actor="cli") == [ids[2]]
    assert ids_of(api, action="queue.create") == [ids[1]]
    assert ids_of(api, target_type="queue") == [ids[1], ids[0]]
    assert ids_of(api, target_type="queue", target_id="support") == [ids[0]]
    assert ids_of(api, since="2026-11-01T13:00:00Z", until="2026-11-01T15:00:00Z") == [ids[2], ids[1]]
    assert ids_of(api, since="2026-11-01T14:00:00") == [ids[4], ids[3], ids[2]]  # no zone: UTC
    first = api.client("adam").get("/api/v1/audit", params={"limit": 2}).json()
    assert [e["id"] for e in first["entries"]] == [ids[4], ids[3]] and first["next_before_id"] == ids[3]
    rest = api.client("adam").get("/api/v1/audit", params={"limit": 2, "before_id": ids[3]}).json()
    assert [e["id"] for e in rest["entries"]] == [ids[2], ids[1]]
    last = api.client("adam").get(
        "/api/v1/audit", params={"limit": 2, "before_id": ids[1], "until": "2026-11-02"}
    ).json()
    assert [e["id"] for e in last["entries"]] == [ids[0]] and last["next_before_id"] is None
    entry = api.client("adam").get("/api/v1/audit", params={"limit": 1}).json()["entries"][0]
    assert entry["before"] == {"password": "***"} and entry["via"] == "session"
    assert entry["at"].startswith("2026-11-01T16:00")
    adam = api.client("adam")
    assert adam.get("/api/v1/audit", params={"since": "yesterday"}).status_code == 422
    assert adam.get("/api/v1/audit", params={"before_id": 0}).status_code == 422
    assert adam.get("/api/v1/audit", params={"limit": 501}).status_code == 422
    assert adam.get("/api/v1/audit", params={"actor": "a" * 201}).status_code == 422


def test_the_page_shows_who_when_what_and_a_diff(api: Api) -> None:
    seed(api)
    adam = api.client("adam")
    r = adam.get("/admin/audit", params={"until": "2026-11-02"})
    assert r.status_code == 200
    assert r.text.count('class="audit-entry"') == 5
    assert "queue.update" in r.text and "2026-11-01 12:00 UTC" in r.text
    assert "<del>30</del>" in r.text and "<ins>60</ins>" in r.text
    assert "old" not in re.findall(r"<del>([^<]*)</del>", r.text)  # secrets stay ***
    r = adam.get("/admin/audit", params={"action": "quarantine.retry"})
    assert r.text.count('class="audit-entry"') == 1 and "cli" in r.text
    assert 'value="quarantine.retry"' in r.text  # the filter keeps what was typed
    assert api.client("sue").get("/admin/audit").status_code == 403
    assert TestClient(api.app).get("/admin/audit", follow_redirects=False).status_code == 303


def test_a_bad_date_is_shown_beside_its_field(api: Api) -> None:
    r = api.client("adam").get("/admin/audit", params={"since": "last tuesday"})
    assert r.status_code == 422
    m = re.search(r'<div class="field invalid">.*?</div>', r.text, re.S)
    assert m and 'id="f-since"' in m.group(0) and "2026-12-31" in m.group(0)
    assert 'value="last tuesday"' in r.text


def test_changes_through_the_api_appear_in_the_log(api: Api) -> None:
    r = api.client("sue").post("/api/v1/canned-responses", json={"name": "Hi", "text": "Hello"})
    cid = r.json()["id"]
    (entry,) = api.client("adam").get("/api/v1/audit", params={"target_type": "canned_response"}).json()["entries"]
    assert entry["actor"] == "sue" and entry["action"] == "canned_response.create"
    assert entry["target_id"] == str(cid) and entry["after"]["name"] == "Hi"

"""Quarantine through the API and the admin page: who may use it, list filters and
paging, one message's headers, retry, hold, discard, the loop guard's release,
and the audit entry each change writes in its own transaction. SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from postroom.runtime.settings import Settings
from postroom.services import quarantine as q_svc
from postroom.services import users as user_svc
from postroom.services.admin import audit
from postroom.store.schema import audit_log, messages
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api
from tests.mailfactory import make_email


@pytest.fixture
def api(any_settings: Settings) -> Iterator[Api]:
    # The loop guard holds the third message from one sender within the window.
    s = replace(any_settings, intake=replace(any_settings.intake, loop_guard_max_messages=2))
    a = fx.make_api(s, router=False)
    yield a
    fx.close_api(a)


def quarantined(api: Api, subject: str = "Lost", to: str = "nobody@elsewhere.example", **kw: Any) -> int:
    """A message to an address with no route: quarantined at stage `rules`."""
    pk = api.comps.spool().accept_sync(
        make_email(subject=subject, to=to, **kw), source="smtp", envelope_to=[to]
    ).message_pk
    api.comps.intake.drain()
    return int(pk)


def status_of(api: Api, pk: int) -> sa.Row[Any]:
    with api.db.connect() as conn:
        return conn.execute(sa.select(messages).where(messages.c.id == pk)).one()


def audit_rows(api: Api) -> list[sa.Row[Any]]:
    """The quarantine's audit entries, oldest first (the fixture's users have theirs)."""
    with api.db.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_log)
                .where(audit_log.c.target_type == "quarantine")
                .order_by(audit_log.c.id)
            )
        )


def test_only_admins_may_use_the_quarantine_api(api: Api) -> None:
    pk = quarantined(api)
    anonymous = TestClient(api.app)
    assert anonymous.get("/api/v1/quarantine").status_code == 401
    assert anonymous.post(f"/api/v1/quarantine/{pk}/retry").status_code == 401
    for user in ("ann", "sue"):
        c = api.client(user)
        assert c.get("/api/v1/quarantine").status_code == 403
        assert c.get(f"/api/v1/quarantine/{pk}").status_code == 403
        r = c.post(f"/api/v1/quarantine/{pk}/discard", json={"reason": "x"})
        assert r.status_code == 403 and "manage_quarantine" in r.json()["error"]["message"]
        assert c.post("/api/v1/quarantine/loop-guard/release", json={"sender": "a@b.c"}).status_code == 403
    assert status_of(api, pk).status == "quarantined" and audit_rows(api) == []
    assert api.client("adam").get("/api/v1/quarantine").status_code == 200


def test_list_filters_by_stage_and_reason_and_pages_with_a_cursor(api: Api) -> None:
    ids = [quarantined(api, subject=f"m{i}", sender=f"c{i}@customer.example") for i in range(3)]
    adam = api.client("adam")
    body = adam.get("/api/v1/quarantine").json()
    assert [m["id"] for m in body["messages"]] == ids and body["next_cursor"] is None
    assert body["messages"][0]["stage"] == "rules"
    first = adam.get("/api/v1/quarantine", params={"limit": 2}).json()
    assert [m["id"] for m in first["messages"]] == ids[:2] and first["next_cursor"] == ids[1]
    rest = adam.get("/api/v1/quarantine", params={"limit": 2, "after": first["next_cursor"]}).json()
    assert [m["id"] for m in rest["messages"]] == ids[2:] and rest["next_cursor"] is None
    assert len(adam.get("/api/v1/quarantine", params={"stage": "rules"}).json()["messages"]) == 3
    assert adam.get("/api/v1/quarantine", params={"stage": "parse"}).json()["messages"] == []
    found = adam.get("/api/v1/quarantine", params={"reason": "NO ROUTE"}).json()["messages"]
    assert len(found) == 3
    # % and _ are literal: they match nothing here instead of everything.
    for wildcard in ("%", "_", "no_route", "no%route"):
        assert adam.get("/api/v1/quarantine", params={"reason": wildcard}).json()["messages"] == []
    assert len(adam.get("/api/v1/quarantine", params={"sender": "C1@customer.example"}).json()["messages"]) == 1
    assert adam.get("/api/v1/quarantine", params={"pending": True}).json()["messages"] == []
    assert adam.get("/api/v1/quarantine", params={"limit": 0}).status_code == 422
    assert adam.get("/api/v1/quarantine", params={"reason": "x" * 201}).status_code == 422


def test_show_gives_headers_envelope_stage_and_reason(api: Api) -> None:
    pk = quarantined(api, subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=", headers={"X-Trace": "abc"})
    adam = api.client("adam")
    item = adam.get(f"/api/v1/quarantine/{pk}").json()
    assert item["stage"] == "rules" and "no route matches" in item["error"]
    assert item["envelope"]["to"] == ["nobody@elsewhere.example"]
    names = {h["name"]: h["value"] for h in item["headers"]}
    assert names["Subject"] == "Grüße" and names["X-Trace"] == "abc"
    assert item["raw_size"] > 0 and item["attempts"] >= 1 and item["received_at"]
    raw = adam.get(f"/api/v1/quarantine/{pk}/raw")
    assert raw.status_code == 200 and b"X-Trace: abc" in raw.content
    assert raw.headers["content-type"] == "application/octet-stream"
    assert "attachment" in raw.headers["content-disposition"]
    assert adam.get("/api/v1/quarantine/999999").status_code == 404
    assert adam.get("/api/v1/quarantine/0").status_code == 422


def test_retry_and_discard_write_audit_entries_with_before_and_after(api: Api) -> None:
    a, b = quarantined(api, subject="a"), quarantined(api, subject="b")
    adam = api.client("adam")
    r = adam.post(f"/api/v1/quarantine/{a}/retry")
    assert r.status_code == 200 and r.json() == {"id": a, "status": "pending"}
    assert status_of(api, a).status == "pending"
    r = adam.post(f"/api/v1/quarantine/{b}/discard", json={"reason": "spam, surely"})
    assert r.status_code == 200 and status_of(api, b).status == "discarded"
    assert status_of(api, b).error == "spam, surely"
    retry, discard = audit_rows(api)
    assert (retry.actor, retry.via, retry.action, retry.target_type, retry.target_id) == (
        "adam", "session", "quarantine.retry", "quarantine", str(a)
    )
    assert retry.before["status"] == "quarantined" and retry.after["status"] == "pending"
    assert retry.after["stage"] == "released" and retry.after["attempts"] == 0
    assert discard.action == "quarantine.discard" and discard.after["error"] == "spam, surely"
    # Refused changes write nothing.
    assert adam.post(f"/api/v1/quarantine/{b}/retry").status_code == 404
    assert adam.post(f"/api/v1/quarantine/{a}/retry").status_code == 404  # pending, not quarantined
    assert adam.post(f"/api/v1/quarantine/{a}/discard", json={"reason": "y" * 1001}).status_code == 422
    assert len(audit_rows(api)) == 2
    # The pipeline takes the retried message (still no route: quarantined again).
    api.comps.intake.drain()
    assert status_of(api, a).status == "quarantined"


def test_hold_a_pending_message_from_the_api(api: Api) -> None:
    pk = api.comps.spool().accept_sync(
        make_email(subject="wait"), source="smtp", envelope_to=["support@example.com"]
    ).message_pk
    adam = api.client("adam")
    assert [m["id"] for m in adam.get("/api/v1/quarantine", params={"pending": True}).json()["messages"]] == [pk]
    r = adam.post(f"/api/v1/quarantine/{pk}/hold", json={"reason": "looks odd"})
    assert r.status_code == 200 and status_of(api, pk).stage == "operator"
    assert audit_rows(api)[-1].action == "quarantine.hold"


def test_a_failing_change_leaves_no_audit_entry(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    pk = quarantined(api)
    real = audit.record

    def record_then_fail(*args: Any, **kw: Any) -> int:
        real(*args, **kw)
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(q_svc.audit, "record", record_then_fail)
    with pytest.raises(RuntimeError):
        q_svc.release(api.db, pk, api.comps.clock)
    assert status_of(api, pk).status == "quarantined" and audit_rows(api) == []


def test_cli_changes_are_recorded_as_the_cli(api: Api) -> None:
    pk = quarantined(api)
    q_svc.discard(api.db, pk, api.comps.clock, "old")
    (row,) = audit_rows(api)
    assert (row.actor, row.via, row.action) == ("cli", "cli", "quarantine.discard")


def test_loop_guard_release_by_sender_or_by_message(api: Api) -> None:
    spool = api.comps.spool()
    for i in range(5):
        spool.accept_sync(
            make_email(subject=f"auto {i}", sender="Bot <bot@loop.example>"),
            source="smtp",
            envelope_to=["support@example.com"],
        )
    api.comps.intake.drain()
    adam = api.client("adam")
    held = adam.get("/api/v1/quarantine", params={"stage": "loop_guard"}).json()["messages"]
    assert len(held) == 3
    r = adam.post("/api/v1/quarantine/loop-guard/release", json={"message_id": held[0]["id"]})
    assert r.status_code == 200 and r.json()["released"] == [m["id"] for m in held]
    assert [x.action for x in audit_rows(api)] == ["quarantine.release"] * 3
    api.comps.intake.drain()
    assert {status_of(api, m["id"]).status for m in held} == {"processed"}
    # Nothing left to release; bad bodies are named.
    r = adam.post("/api/v1/quarantine/loop-guard/release", json={"sender": "BOT@loop.example"})
    assert r.status_code == 404 and "bot@loop.example" in r.json()["error"]["message"]
    assert adam.post("/api/v1/quarantine/loop-guard/release", json={}).status_code == 400
    r = adam.post("/api/v1/quarantine/loop-guard/release", json={"sender": "x" * 400})
    assert r.status_code == 422 and "sender" in r.json()["error"]["message"]


# -- the page ----------------------------------------------------------------------------


def test_page_lists_shows_and_retries(api: Api) -> None:
    pk = quarantined(api, subject="Where is my parcel", headers={"X-Trace": "<b>t</b>"})
    adam = api.client("adam")
    page = adam.get("/admin/quarantine")
    assert page.status_code == 200 and f'href="/admin/quarantine/{pk}"' in page.text
    assert "Where is my parcel" in page.text and "rules" in page.text
    assert 'aria-current="page"' in page.text
    detail = adam.get(f"/admin/quarantine/{pk}")
    assert detail.status_code == 200 and "X-Trace" in detail.text
    assert "&lt;b&gt;t&lt;/b&gt;" in detail.text  # header values are text
    r = adam.post(f"/admin/quarantine/{pk}/retry", data={}, follow_redirects=False)
    assert r.status_code == 303 and "done=retried" in r.headers["location"]
    assert "is pending again" in adam.get(r.headers["location"]).text
    assert status_of(api, pk).status == "pending"
    assert adam.get("/admin/quarantine/999999").status_code == 404


def test_page_discard_needs_confirmation_shown_beside_the_box(api: Api) -> None:
    pk = quarantined(api)
    adam = api.client("adam")
    r = adam.post(f"/admin/quarantine/{pk}/discard", data={"discard.reason": "spam"})
    assert r.status_code == 422
    m = re.search(r'<div class="field invalid">.*?</div>', r.text, re.S)
    assert m and 'id="f-discard-confirm"' in m.group(0) and "Tick the box" in m.group(0)
    assert status_of(api, pk).status == "quarantined"
    r = adam.post(
        f"/admin/quarantine/{pk}/discard",
        data={"discard.reason": "spam", "discard.confirm": "true"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and status_of(api, pk).status == "discarded"
    assert audit_rows(api)[-1].after["error"] == "spam"


def test_page_refuses_agents_supervisors_and_cross_site_posts(api: Api) -> None:
    pk = quarantined(api)
    assert api.client("ann").get("/admin/quarantine").status_code == 403
    r = api.client("sue").get(f"/admin/quarantine/{pk}")
    assert r.status_code == 403 and "manage_quarantine" in r.text
    assert api.client("sue").post(f"/admin/quarantine/{pk}/retry").status_code == 403
    anonymous = TestClient(api.app)
    assert anonymous.get("/admin/quarantine", follow_redirects=False).status_code == 303
    # A form post without the CSRF token is refused.
    bare = TestClient(api.app)
    bare.cookies.update(api.client("adam").cookies)
    assert bare.post(f"/admin/quarantine/{pk}/retry", data={}).status_code == 403
    assert status_of(api, pk).status == "quarantined"


def test_page_forms_posted_by_a_browser_with_origin_null_pass(api: Api) -> None:
    """Pages send `Referrer-Policy: no-referrer`, so Chromium posts their forms with
    `Origin: null`; `Sec-Fetch-Site` still says whether the form was ours."""
    a, b = quarantined(api, subject="a"), quarantined(api, subject="b")
    adam = api.client("adam")
    csrf = adam.headers["X-CSRF-Token"]
    bare = TestClient(api.app)
    bare.cookies.update(adam.cookies)
    other = {"Origin": "null", "Sec-Fetch-Site": "cross-site"}
    r = bare.post(f"/admin/quarantine/{a}/retry", data={"csrf_token": csrf}, headers=other)
    assert r.status_code == 403 and status_of(api, a).status == "quarantined"
    ours = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    r = bare.post(
        f"/admin/quarantine/{b}/retry", data={"csrf_token": csrf}, headers=ours, follow_redirects=False
    )
    assert r.status_code == 303 and status_of(api, b).status == "pending"


def test_a_token_change_is_recorded_as_via_token(api: Api) -> None:
    pk = quarantined(api)
    token = user_svc.create_token(api.db, api.comps.clock, "adam", "ops script")
    c = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    assert c.post(f"/api/v1/quarantine/{pk}/retry").status_code == 200
    (row,) = [r for r in audit_rows(api) if r.target_type == "quarantine"]
    assert (row.actor, row.via) == ("adam", "token")
    sue_token = user_svc.create_token(api.db, api.comps.clock, "sue", "sue script")
    c = TestClient(api.app, headers={"Authorization": f"Bearer {sue_token}"})
    assert c.get("/api/v1/quarantine").status_code == 403


def test_retry_several_at_once(api: Api) -> None:
    a, b = quarantined(api, subject="a"), quarantined(api, subject="b")
    adam = api.client("adam")
    r = adam.post("/api/v1/quarantine/retry", json={"ids": [a, b, a, 999999]})
    assert r.status_code == 200
    assert r.json()["retried"] == [a, b] and list(r.json()["refused"]) == ["999999"]
    assert [x.action for x in audit_rows(api)] == ["quarantine.retry"] * 2
    assert adam.post("/api/v1/quarantine/retry", json={"ids": []}).status_code == 422
    assert adam.post("/api/v1/quarantine/retry", json={"ids": list(range(1, 102))}).status_code == 422
    assert api.client("sue").post("/api/v1/quarantine/retry", json={"ids": [a]}).status_code == 403


def test_page_retries_all_shown(api: Api) -> None:
    a, b = quarantined(api, subject="a"), quarantined(api, subject="b")
    adam = api.client("adam")
    page = adam.get("/admin/quarantine").text
    assert "Retry all 2 shown" in page
    r = adam.post("/admin/quarantine/retry", data={"id": [str(a), str(b), "x", "99999999999"]}, follow_redirects=False)
    assert r.status_code == 303 and "count=2" in r.headers["location"]
    assert {status_of(api, a).status, status_of(api, b).status} == {"pending"}
    assert "2 message(s) are pending again" in adam.get(r.headers["location"]).text


def test_page_holds_a_pending_message_with_a_reason(api: Api) -> None:
    pk = api.comps.spool().accept_sync(
        make_email(subject="wait"), source="smtp", envelope_to=["support@example.com"]
    ).message_pk
    adam = api.client("adam")
    assert f'href="/admin/quarantine/{pk}"' in adam.get("/admin/quarantine", params={"pending": "true"}).text
    assert 'id="hold"' in adam.get(f"/admin/quarantine/{pk}").text
    r = adam.post(f"/admin/quarantine/{pk}/hold", data={"hold.reason": "x" * 1001})
    assert r.status_code == 422 and "under 1000" in r.text
    r = adam.post(f"/admin/quarantine/{pk}/hold", data={"hold.reason": "mail bomb?"}, follow_redirects=False)
    assert r.status_code == 303 and status_of(api, pk).error == "mail bomb?"
    r = adam.post(f"/admin/quarantine/{pk}/hold", data={})  # no longer pending
    assert r.status_code == 409 and "not pending" in r.text

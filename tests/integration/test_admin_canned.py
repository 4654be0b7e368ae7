"""The canned response library through the API and its admin page: folders,
search with literal % and _, create/replace/change/delete for supervisors and
admins only, the audit entries in the change's transaction, and the editor's
substitution preview with escaped values. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from postroom.services import canned as canned_svc
from postroom.services.admin.audit import Actor
from postroom.store.schema import audit_log, canned_responses
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture

URL = "/api/v1/canned-responses"


def add(api: Api, user: str = "sue", **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Hello")
    body.setdefault("text", "Hello {customer_name}")
    r = api.client(user).post(URL, json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def audit_rows(api: Api) -> list[sa.Row[Any]]:
    """The library's audit entries, oldest first (the fixture's users have theirs)."""
    with api.db.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_log)
                .where(audit_log.c.target_type == "canned_response")
                .order_by(audit_log.c.id)
            )
        )


def names(api: Api, user: str = "ann", **params: Any) -> list[str]:
    r = api.client(user).get(URL, params=params)
    assert r.status_code == 200, r.text
    return [x["name"] for x in r.json()["canned_responses"]]


def test_who_may_change_the_library(api: Api) -> None:
    item = add(api, "sue")
    assert add(api, "adam", name="By admin")["name"] == "By admin"
    ann = api.client("ann")
    assert ann.post(URL, json={"name": "x", "text": "y"}).status_code == 403
    assert ann.put(f"{URL}/{item['id']}", json={"name": "x", "text": "y"}).status_code == 403
    assert ann.patch(f"{URL}/{item['id']}", json={"name": "x"}).status_code == 403
    assert ann.delete(f"{URL}/{item['id']}").status_code == 403
    assert ann.post(f"{URL}/preview", json={"text": "x"}).status_code == 403
    # Agents keep reading what they may use.
    assert ann.get(URL).status_code == 200 and ann.get(f"{URL}/{item['id']}").status_code == 200
    anonymous = TestClient(api.app)
    assert anonymous.get(URL).status_code == 401
    assert anonymous.post(URL, json={"name": "x", "text": "y"}).status_code == 401
    assert [r.actor for r in audit_rows(api)] == ["sue", "adam"]


def test_folders_search_and_queue_scope(api: Api) -> None:
    add(api, name="Refund done", folder=" Billing / Refunds/ ", text="Refunded.")
    add(api, name="Invoice copy", folder="Billing", text="Attached.", queue="billing")
    add(api, name="Percent", text="We give 100% back_now")
    add(api, name="Hello", text="Hi")
    r = api.client("ann").get(f"{URL}/folders").json()
    assert r["folders"] == ["Billing", "Billing/Refunds"]
    assert names(api, folder="Billing") == ["Invoice copy", "Refund done"]
    assert names(api, folder="Billing/Refunds") == ["Refund done"]
    assert names(api, q="refunds") == ["Refund done"]  # the folder is searched too
    assert names(api, q="ATTACHED") == ["Invoice copy"]
    # % and _ are text, not wildcards.
    assert names(api, q="100%") == ["Percent"]
    assert names(api, q="%") == ["Percent"]
    assert names(api, q="k_n") == ["Percent"]
    assert names(api, q="_") == ["Percent"]
    assert names(api, q="a%b") == []
    assert names(api, queue="support") == ["Hello", "Percent", "Refund done"]
    assert api.client("ann").get(URL, params={"q": "x" * 201}).status_code == 422


def test_update_replace_and_delete_with_audit_before_and_after(api: Api) -> None:
    item = add(api, name="Hello", folder="Greetings", text="Hi {customer_name}")
    sue = api.client("sue")
    r = sue.patch(f"{URL}/{item['id']}", json={"text": "Hello {customer_name}", "queue": "vip"})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "Hello {customer_name}" and r.json()["folder"] == "Greetings"
    assert r.json()["queue"] == "vip" and r.json()["updated_at"]
    r = sue.put(f"{URL}/{item['id']}", json={"name": "Hi", "text": "Hi."})
    assert r.json() == r.json() | {"name": "Hi", "folder": "", "queue": None, "html": None}
    r = sue.patch(f"{URL}/{item['id']}", json={"name": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = sue.patch(f"{URL}/{item['id']}", json={"queue": "nope"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "queue"
    r = sue.patch(f"{URL}/{item['id']}", json={"folder": "a/" + "b" * 61})
    assert r.status_code == 422 and r.json()["error"]["field"] == "folder"
    r = sue.post(URL, json={"name": "   ", "text": "x"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = sue.post(URL, json={"name": "n" * 201, "text": "x"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    assert sue.delete(f"{URL}/{item['id']}").status_code == 204
    assert sue.delete(f"{URL}/{item['id']}").status_code == 404
    assert sue.patch(f"{URL}/{item['id']}", json={"name": "x"}).status_code == 404
    rows = audit_rows(api)
    assert [r.action for r in rows] == [
        "canned_response.create",
        "canned_response.update",
        "canned_response.update",
        "canned_response.delete",
    ]
    create, patch, put, delete = rows
    assert create.before is None and create.after["folder"] == "Greetings"
    assert patch.before["text"] == "Hi {customer_name}" and patch.after["queue"] == "vip"
    assert put.after["name"] == "Hi" and delete.before["name"] == "Hi" and delete.after is None
    assert {r.target_id for r in rows} == {str(item["id"])} and {r.via for r in rows} == {"session"}


def test_a_failing_change_leaves_neither_the_change_nor_an_entry(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = canned_svc.audit.record

    def record_then_fail(*args: Any, **kw: Any) -> int:
        real(*args, **kw)
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(canned_svc.audit, "record", record_then_fail)
    with pytest.raises(RuntimeError):
        canned_svc.create(
            api.db, api.comps.clock, Actor("sue", "session"), {"name": "A", "text": "B"},
            known_queues=["support"],
        )
    with api.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(canned_responses)).scalar() == 0
    assert audit_rows(api) == []


def test_preview_fills_in_with_the_composers_substitution_and_escapes_html(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", sender='"<b>Eve</b>" <eve@customer.example>')
    sue = api.client("sue")
    body = {"text": "Hi {customer_name} from {agent_name} {oops}", "html": "<p>{customer_name}</p>"}
    r = sue.post(f"{URL}/preview", json=body | {"conversation_id": cid})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["text"] == "Hi <b>Eve</b> from Sue {oops}"
    assert out["html"] == "<p>&lt;b&gt;Eve&lt;/b&gt;</p>"
    assert out["fields_used"] == ["agent_name", "customer_name"] and out["unknown_fields"] == ["oops"]
    # Without a conversation: sample values.
    r = sue.post(f"{URL}/preview", json={"text": "{customer_name} / {reference}", "queue": "billing"})
    assert r.json()["text"] == "Alex Example / PR-1042"
    assert r.json()["values"]["queue_name"] == "billing"
    assert sue.post(f"{URL}/preview", json={"text": "x", "queue": "nope"}).json()["error"]["field"] == "queue"
    assert sue.post(f"{URL}/preview", json={"text": "x", "conversation_id": 999999}).status_code == 404


# -- the page ----------------------------------------------------------------------------


def test_library_page_shows_folders_and_searches(api: Api) -> None:
    add(api, name="Refund done", folder="Billing/Refunds", text="Refunded <now>.")
    add(api, name="Hello", text="Hi")
    sue = api.client("sue")
    page = sue.get("/admin/canned")
    assert page.status_code == 200 and "Refund done" in page.text and "Hello" in page.text
    assert "Refunded &lt;now&gt;." in page.text
    assert 'href="/admin/canned?folder=Billing/Refunds"' in page.text
    found = sue.get("/admin/canned", params={"folder": "Billing"}).text
    assert "Refund done" in found and ">Hello<" not in found
    found = sue.get("/admin/canned", params={"q": "hi"}).text
    assert ">Hello<" in found and "Refund done" not in found
    assert api.client("ann").get("/admin/canned").status_code == 403
    assert TestClient(api.app).get("/admin/canned", follow_redirects=False).status_code == 303


def field_error(html: str, fid: str) -> str:
    m = re.search(rf'<div class="field invalid">(?:(?!<div class="field).)*?id="{fid}".*?</div>', html, re.S)
    assert m, f"no error beside #{fid}"
    return m.group(0)


def test_editor_keeps_input_and_shows_errors_beside_fields(api: Api) -> None:
    sue = api.client("sue")
    r = sue.post("/admin/canned/new", data={"name": "", "folder": "Billing", "queue": "", "text": "Typed text"})
    assert r.status_code == 422
    assert "at least 1 character" in field_error(r.text, "f-name")
    assert "Typed text</textarea>" in r.text and 'value="Billing"' in r.text
    r = sue.post("/admin/canned/new", data={"name": "N", "queue": "nope", "text": "T"})
    assert r.status_code == 422 and "does not exist" in field_error(r.text, "f-queue")
    r = sue.post(
        "/admin/canned/new",
        data={"name": "Refund", "folder": "Billing/Refunds", "queue": "billing", "text": "Done."},
        follow_redirects=False,
    )
    assert r.status_code == 303
    target = r.headers["location"]
    edit = sue.get(target)
    assert edit.status_code == 200 and "Saved." in edit.text and 'value="Billing/Refunds"' in edit.text
    cid = int(target.split("/")[-1].split("?")[0])
    r = sue.post(f"/admin/canned/{cid}", data={"name": "Refund 2", "folder": "", "queue": "", "text": "Done!"},
                 follow_redirects=False)
    assert r.status_code == 303
    assert canned_svc.get_canned(api.db, cid)["name"] == "Refund 2"
    # Delete needs the box ticked.
    r = sue.post(f"/admin/canned/{cid}/delete", data={})
    assert r.status_code == 422 and "Tick the box" in field_error(r.text, "f-delete-confirm")
    r = sue.post(f"/admin/canned/{cid}/delete", data={"delete.confirm": "true"}, follow_redirects=False)
    assert r.status_code == 303 and sue.get(f"/admin/canned/{cid}").status_code == 404
    assert [x.action for x in audit_rows(api)] == [
        "canned_response.create", "canned_response.update", "canned_response.delete"
    ]


def test_editor_preview_fragment_escapes(api: Api) -> None:
    sue = api.client("sue")
    r = sue.post(
        "/admin/canned/preview",
        data={"text": "Hi {customer_name} <script>x</script>", "html": "<p>{agent_name}</p>", "queue": "vip"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    assert "Hi Alex Example &lt;script&gt;x&lt;/script&gt;" in r.text
    assert "&lt;p&gt;Sue&lt;/p&gt;" in r.text and "<script>" not in r.text
    assert api.client("ann").post("/admin/canned/preview", data={"text": "x"}).status_code == 403


def test_library_page_ignores_a_folder_no_one_could_make(api: Api) -> None:
    add(api, name="Hello", text="Hi")
    r = api.client("sue").get("/admin/canned", params={"folder": "x" * 61})
    assert r.status_code == 200 and ">Hello<" in r.text

"""Uploads (size limit, blob store), canned responses (list, search, render)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api, close_api, make_api

api = fx.api  # the shared fixture


def test_upload_is_stored_and_size_limited(any_settings: Any) -> None:
    a = make_api(any_settings, router=False, max_message_size=1000)
    try:
        c = a.client("ann")
        r = c.post("/api/v1/uploads", files={"file": ("a.bin", b"x" * 1000, "application/octet-stream")})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["size"] == 1000
        with a.db.connect() as conn:
            sha = conn.exec_driver_sql("SELECT sha256 FROM uploads").scalar_one()
        assert a.comps.blobs.get(sha) == b"x" * 1000
        r = c.post("/api/v1/uploads", files={"file": ("b.bin", b"x" * 1001, "application/octet-stream")})
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        assert "1000" in r.json()["error"]["message"]
        # downloads of unsafe types are attachments, not rendered
        r = c.post("/api/v1/uploads", files={"file": ("x.html", b"<script>", "text/html")})
        got = c.get(f"/api/v1/uploads/{r.json()['id']}")
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["content-disposition"].startswith("attachment;")
    finally:
        close_api(a)


def test_canned_responses_list_search_render(api: Api) -> None:
    sue = api.client("sue")
    text = "Dear {customer_name}, {agent_name} from {queue_name} here about {reference}. {unknown}"
    hello = sue.post("/api/v1/canned-responses", json={"name": "Hello", "text": text}).json()
    sue.post("/api/v1/canned-responses", json={"name": "Refund", "text": "Refunded.", "queue": "billing"})
    bad = sue.post("/api/v1/canned-responses", json={"name": "x", "text": "y", "queue": "nope"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "queue"
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    ann = api.client("ann")
    names = [x["name"] for x in ann.get("/api/v1/canned-responses").json()["canned_responses"]]
    assert names == ["Hello", "Refund"]
    assert [x["name"] for x in ann.get("/api/v1/canned-responses", params={"q": "refun"}).json()["canned_responses"]] == ["Refund"]
    assert [x["name"] for x in ann.get("/api/v1/canned-responses", params={"queue": "support"}).json()["canned_responses"]] == ["Hello"]
    r = ann.post(f"/api/v1/canned-responses/{hello['id']}/render", json={"conversation_id": cid})
    assert r.status_code == 200, r.text
    ref = ann.get(f"/api/v1/conversations/{cid}").json()["reference"]
    assert r.json()["text"] == f"Dear Alice Customer, Ann from support here about {ref}. {{unknown}}"
    assert ann.post("/api/v1/canned-responses/999/render", json={"conversation_id": cid}).status_code == 404
    assert sue.delete(f"/api/v1/canned-responses/{hello['id']}").status_code == 204
    assert ann.delete("/api/v1/canned-responses/1").status_code == 403


@pytest.mark.parametrize("field", ["to", "cc", "bcc"])
def test_recipient_limit_counts_every_field(api: Api, field: str) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    body = {"to": [f"t{i}@x.example" for i in range(30)], field: [f"f{i}@x.example" for i in range(21)]}
    if field == "to":
        body = {"to": [f"t{i}@x.example" for i in range(51)]}
    r = api.client("ann").put(f"/api/v1/conversations/{cid}/draft", json=body)
    assert r.status_code == 422


def test_canned_html_keeps_a_hostile_customer_name_as_text(api: Api) -> None:
    sue = api.client("sue")
    canned = sue.post(
        "/api/v1/canned-responses",
        json={"name": "Hi", "text": "Hi {customer_name}", "html": "<p>Hi {customer_name}</p>"},
    ).json()
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", sender='"<img src=x onerror=alert(1)>" <eve@customer.example>')
    r = api.client("ann").post(f"/api/v1/canned-responses/{canned['id']}/render", json={"conversation_id": cid})
    assert r.status_code == 200, r.text
    assert r.json()["html"] == "<p>Hi &lt;img src=x onerror=alert(1)&gt;</p>"
    assert r.json()["text"] == "Hi <img src=x onerror=alert(1)>"

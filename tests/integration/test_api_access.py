"""Access rules: an agent cannot read or act on another agent's conversation
through any endpoint (reads, actions, drafts, canned rendering, attachments,
uploads, event stream); supervisors and admins see everything; an agent keeps
the history of threads they took part in."""

from __future__ import annotations

import sqlalchemy as sa

from postroom.store.schema import attachments
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture

PDF = b"%PDF-1.4 secret contract\n"


def _ann_conversation_with_attachment(api: Api) -> tuple[int, int]:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", attachment=("contract.pdf", PDF, "application/pdf"))
    with api.db.connect() as conn:
        att = conn.execute(sa.select(attachments.c.id)).scalar_one()
    return cid, int(att)


def test_agent_cannot_reach_another_agents_conversation_through_any_endpoint(api: Api) -> None:
    cid, att = _ann_conversation_with_attachment(api)
    canned = api.client("sue").post("/api/v1/canned-responses", json={"name": "hi", "text": "Hi {customer_name}"}).json()
    bob = api.client("bob")
    base = f"/api/v1/conversations/{cid}"
    denied = [
        bob.get(base),
        bob.get(f"{base}/draft"),
        bob.put(f"{base}/draft", json={"text": "x"}),
        bob.delete(f"{base}/draft"),
        bob.get(f"{base}/wrapup-codes"),
        bob.post(f"{base}/accept"),
        bob.post(f"{base}/decline"),
        bob.post(f"{base}/transfer", json={"queue": "billing"}),
        bob.post(f"{base}/park"),
        bob.post(f"{base}/unpark"),
        bob.post(f"{base}/disconnect"),
        bob.post(f"{base}/wrapup", json={"code": "x"}),
        bob.post(f"/api/v1/canned-responses/{canned['id']}/render", json={"conversation_id": cid}),
        bob.get(f"/api/v1/attachments/{att}"),
    ]
    for r in denied:
        assert r.status_code == 404, (r.request.method, r.request.url, r.status_code, r.text)
        assert r.json()["error"]["code"] == "not_found"
        assert "contract" not in r.text and "Printer" not in r.text
    assert bob.get("/api/v1/conversations").json()["conversations"] == []
    assert bob.get("/api/v1/conversations", params={"q": "printer"}).json()["conversations"] == []
    assert api.conv(cid).state == "connected"  # nothing bob sent changed it
    # ann herself, a supervisor and an admin can read both
    for who in ("ann", "sue", "adam"):
        c = api.client(who)
        assert c.get(base).status_code == 200
        r = c.get(f"/api/v1/attachments/{att}")
        assert r.status_code == 200 and r.content == PDF


def test_attachment_download_headers(api: Api) -> None:
    _, att = _ann_conversation_with_attachment(api)
    r = api.client("ann").get(f"/api/v1/attachments/{att}")
    assert r.headers["content-type"] == "application/pdf"
    assert "contract.pdf" in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"
    body = api.client("ann").get(f"/api/v1/conversations/{api.conv_ids()[0]}").json()
    assert body["messages"][0]["attachments"][0]["url"] == f"/api/v1/attachments/{att}"


def test_agent_keeps_the_history_of_threads_they_took_part_in(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    ann = api.client("ann")
    ann.post(f"/api/v1/conversations/{cid}/transfer", json={"queue": "billing"})
    api.wait_state(cid, "queued")
    # no longer held, but ann took part: she still reads it; bob never did
    assert ann.get(f"/api/v1/conversations/{cid}").status_code == 200
    assert api.client("bob").get(f"/api/v1/conversations/{cid}").status_code == 404


def test_agent_sees_an_offer_made_to_them(api: Api) -> None:
    api.on_queue("bob")
    cid = api.deliver()
    api.wait_state(cid, "alerting", "bob")
    assert api.client("bob").get(f"/api/v1/conversations/{cid}").status_code == 200
    assert api.client("ann").get(f"/api/v1/conversations/{cid}").status_code == 404


def test_uploads_are_private_to_their_owner(api: Api) -> None:
    r = api.client("ann").post("/api/v1/uploads", files={"file": ("note.txt", b"hello", "text/plain")})
    assert r.status_code == 201, r.text
    up = r.json()["id"]
    assert api.client("ann").get(f"/api/v1/uploads/{up}").content == b"hello"
    assert api.client("bob").get(f"/api/v1/uploads/{up}").status_code == 404
    # and bob cannot attach it to a draft either
    api.on_queue("bob")
    cid = api.offered_and_accepted("bob")
    r = api.client("bob").put(f"/api/v1/conversations/{cid}/draft", json={"attachments": [up]})
    assert r.status_code == 404


def test_inline_image_probe_tells_an_outsider_nothing(api: Api) -> None:
    _, att = _ann_conversation_with_attachment(api)
    with api.db.begin() as conn:
        conn.execute(attachments.update().where(attachments.c.id == att).values(content_id="logo@x"))
        message_id = conn.execute(sa.select(attachments.c.message_id)).scalar_one()
    url = f"/api/v1/messages/{message_id}/cid/"
    present, absent = (api.client("bob").get(url + name) for name in ("logo@x", "nothing@x"))
    assert present.status_code == absent.status_code == 404
    assert present.json() == absent.json() and "logo" not in present.text
    assert api.client("ann").get(url + "logo@x").content == PDF

"""Workspace pages and fragments with access rules of their own: the new-email page
(which queues, who holds it, who may not send), the supervisors' queue view, one
message's delivery status; and the API additions they use (delivery status on
messages, a draft's uploads by name, canned responses for a new email).
SQLite and PostgreSQL."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient

from postroom.services import users as user_svc
from postroom.store.schema import messages, outbox
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import FAST, PASSWORDS, Api

api = fx.api  # the shared fixture


def new_email(api: Api, user: str = "ann", **body: object) -> dict[str, object]:
    body.setdefault("queue", "support")
    body.setdefault("subject", "Your order 1234")
    body.setdefault("text", "Hello Ada, your order has shipped.")
    body.setdefault("to", ["ada@customer.example"])
    r = api.client(user).post("/api/v1/conversations", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, object] = r.json()
    return out


def options(html: str, select_id: str) -> list[tuple[str, str]]:
    """(value, attributes) of each option of one <select>."""
    m = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', html, re.S)
    assert m, f"no select #{select_id}"
    return re.findall(r'<option value="([^"]*)"([^>]*)>', m.group(1))


def nav(html: str) -> str:
    m = re.search(r'<nav class="pages".*?</nav>', html, re.S)
    assert m
    return m.group(0)


# -- the header ------------------------------------------------------------------------


def test_header_links_follow_role_and_queues(api: Api) -> None:
    ann = nav(api.client("ann").get("/").text)
    assert 'href="/new"' in ann and 'href="/queues"' not in ann
    sue = nav(api.client("sue").get("/").text)
    assert 'href="/new"' in sue and 'href="/queues"' in sue
    adam = nav(api.client("adam").get("/").text)
    assert 'href="/queues"' in adam
    # An agent in no queue has nothing to send from: no button, and the page says why.
    user_svc.add_user(
        api.db, api.comps.clock, "cleo", role="agent", password="cleo-secret-1", hasher=FAST,
        queues=[], known_queues=["support", "billing", "vip"],
    )
    PASSWORDS["cleo"] = "cleo-secret-1"
    try:
        cleo = api.client("cleo")
        assert 'href="/new"' not in nav(cleo.get("/").text)
        r = cleo.get("/new")
        assert r.status_code == 403
        assert "You are not a member of any queue" in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
    finally:
        del PASSWORDS["cleo"]


# -- new email ---------------------------------------------------------------------------


def test_new_email_page_offers_an_agents_queues_with_their_from_address(api: Api) -> None:
    r = api.client("ann").get("/new")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert options(r.text, "n-queue") == [("support", ' data-from="support@example.com" selected ')]
    assert '<output id="n-from" for="n-queue" aria-labelledby="n-from-label">support@example.com</output>' in r.text
    assert 'id="n-agent"' not in r.text  # an agent holds what they send
    assert 'data-send-url="/api/v1/conversations"' in r.text
    assert "data-manual" in r.text and "data-restore" not in r.text
    assert 'id="discard-button"' not in r.text  # a new email has no draft
    assert '<script src="/static/workspace/new.js" defer></script>' in r.text
    # without a session: the sign-in page
    with TestClient(api.app) as anonymous:
        r = anonymous.get("/new", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_new_email_page_lets_a_supervisor_pick_any_queue_and_the_agent(api: Api) -> None:
    r = api.client("sue").get("/new")
    assert r.status_code == 200
    queues = options(r.text, "n-queue")
    assert [v for v, _ in queues] == ["support", "billing", "vip"]
    # billing's route is a wildcard without reply_from, vip has none: no From address
    assert "disabled" not in queues[0][1] and "selected" in queues[0][1]
    assert "disabled" in queues[1][1] and "disabled" in queues[2][1]
    assert "(no address to send from)" in r.text
    holders = options(r.text, "n-agent")
    # Sue has no agent profile: she must choose who holds it.
    assert holders[0] == ("", "")
    assert [v for v, _ in holders[1:]] == ["ann", "bob"]
    assert "selected" not in "".join(a for _, a in holders)
    # ?queue= preselects a queue one may send from, and ignores others
    assert "selected" in options(api.client("sue").get("/new?queue=support").text, "n-queue")[0][1]
    assert "selected" not in options(api.client("sue").get("/new?queue=vip").text, "n-queue")[2][1]


def test_canned_responses_render_for_a_new_email_from_a_queue(api: Api) -> None:
    sue = api.client("sue")
    canned = sue.post(
        "/api/v1/canned-responses",
        json={"name": "Hi", "text": "Hi {customer_name}, {agent_name} of {queue_name} here {reference}"},
    ).json()
    ann = api.client("ann")
    r = ann.post(f"/api/v1/canned-responses/{canned['id']}/render", json={"queue": "support"})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "Hi , Ann of support here "
    r = ann.post(f"/api/v1/canned-responses/{canned['id']}/render", json={})
    assert r.status_code == 400 and "queue for a new email" in r.json()["error"]["message"]
    r = ann.post(f"/api/v1/canned-responses/{canned['id']}/render", json={"queue": "nope"})
    assert r.status_code == 422 and "does not exist" in r.json()["error"]["message"]
    assert r.json()["error"]["field"] == "queue"


# -- delivery status ----------------------------------------------------------------------


def _fail(api: Api, message_pk: int, error: str) -> None:
    with api.db.begin() as conn:
        conn.execute(
            outbox.update()
            .where(outbox.c.message_id == message_pk)
            .values(status="failed", last_error=error, attempts=3, next_attempt_at=None)
        )


def test_outbound_messages_show_their_delivery_status(api: Api) -> None:
    started = new_email(api)
    cid = started["conversation_id"]
    with api.db.connect() as conn:
        pk = conn.execute(
            sa.select(messages.c.id).where(messages.c.conversation_id == cid)
        ).scalar_one()
    ann = api.client("ann")
    # No sender runs here: the message waits in the outbox.
    conv = ann.get(f"/api/v1/conversations/{cid}").json()
    assert conv["messages"][0]["delivery"] == {
        "status": "queued",
        "attempts": 0,
        "last_error": None,
        "sent_at": None,
    }
    thread = ann.get(f"/workspace/parts/thread/{cid}").text
    assert f'data-delivery="{pk}" data-status="queued"' in thread
    # Until the customer answers, a reply goes to whom the new email went.
    page = ann.get(f"/c/{cid}").text
    defaults = re.search(r"data-defaults='([^']*)'", page)
    assert defaults is not None
    assert '"reply": {"cc": [], "subject": "", "to": ["ada@customer.example"]}' in defaults.group(1).replace("&#34;", '"')
    part = ann.get(f"/workspace/parts/delivery/{pk}")
    assert part.status_code == 200 and 'data-status="queued"' in part.text

    _fail(api, pk, "550 5.1.1 <ada@customer.example>: no such user")
    part = ann.get(f"/workspace/parts/delivery/{pk}")
    assert 'data-status="failed"' in part.text
    assert "failed: <span class=\"delivery-error\">550 5.1.1 &lt;ada@customer.example&gt;: no such user" in part.text
    assert ann.get(f"/api/v1/conversations/{cid}").json()["messages"][0]["delivery"]["status"] == "failed"
    assert 'data-status="failed"' in ann.get(f"/workspace/parts/thread/{cid}").text
    # Who may not see the conversation may not see its messages' status either.
    assert api.client("bob").get(f"/workspace/parts/delivery/{pk}").status_code == 404
    assert api.client("sue").get(f"/workspace/parts/delivery/{pk}").status_code == 200
    assert ann.get("/workspace/parts/delivery/999999").status_code == 404


def test_received_messages_have_no_delivery_status(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    conv = api.client("ann").get(f"/api/v1/conversations/{cid}").json()
    inbound = [m for m in conv["messages"] if m["direction"] == "in"]
    assert inbound and all(m["delivery"] is None for m in inbound)
    r = api.client("ann").get(f"/workspace/parts/delivery/{inbound[0]['id']}")
    assert r.status_code == 200 and 'data-status="unknown"' in r.text


# -- drafts list their uploads ------------------------------------------------------------


def test_a_draft_names_its_uploads(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    ann = api.client("ann")
    up = ann.post("/api/v1/uploads", files={"file": ("label.pdf", b"%PDF-1.4 label\n", "application/pdf")})
    assert up.status_code == 201, up.text
    uid = up.json()["id"]
    r = ann.put(f"/api/v1/conversations/{cid}/draft", json={"text": "see label", "attachments": [uid]})
    assert r.status_code == 200, r.text
    draft = ann.get(f"/api/v1/conversations/{cid}/draft").json()
    assert draft["data"]["attachments"] == [uid]
    assert draft["attachment_files"] == [
        {"id": uid, "filename": "label.pdf", "content_type": "application/pdf", "size": 15}
    ]


# -- the queue view -----------------------------------------------------------------------


def test_queue_view_is_for_supervisors_and_admins(api: Api) -> None:
    api.deliver("Nobody is on queue")  # waits in support
    for user in ("sue", "adam"):
        page = api.client(user).get("/queues")
        assert page.status_code == 200, page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'hx-get="/workspace/parts/queues"' in page.text
        part = api.client(user).get("/workspace/parts/queues")
        assert part.status_code == 200
        row = re.search(r'<tr data-queue="support">(.*?)</tr>', part.text, re.S)
        assert row is not None
        assert '<td data-figure="waiting" class="hot"><a href="/supervisor/queues/support"' in row.group(1)
        assert '>1</a></td>' in row.group(1)
        assert re.search(r'<td data-figure="longest_waiting">\d+ s</td>', row.group(1))
        assert "80 % within 24 h" in row.group(1)
        assert '<td data-figure="service_level" class="">—</td>' in row.group(1)  # none answered
        assert '<tr data-agent="ann">' in part.text and '<tr data-agent="bob">' in part.text
    for path in ("/queues", "/workspace/parts/queues"):
        r = api.client("ann").get(path)
        assert r.status_code == 403, path
        assert "supervisors and administrators" in r.text
        assert "data-queue" not in r.text
    r = api.client("ann").get("/workspace/parts/queues", headers={"HX-Request": "true"})
    assert r.status_code == 403


def test_queue_view_counts_parked_work_outside_capacity(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    part = lambda: api.client("sue").get("/workspace/parts/queues").text  # noqa: E731
    assert re.search(r'<tr data-agent="ann">.*?<td data-figure="held">1 / 1</td>', part(), re.S)
    assert '<td data-figure="service_level" class="">100 %</td>' in part()  # answered at once
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/park").status_code == 200
    api.wait_state(cid, "parked")
    assert re.search(r'<tr data-agent="ann">.*?<td data-figure="held">0 / 1</td>', part(), re.S)

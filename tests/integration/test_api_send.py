"""The workspace's send endpoint (POST /api/v1/conversations/{id}/send) and its quote
preview: the queue's quote_original as the default and the agent's choice over it,
forwards with the original and its attachments, pictures sent inline, and the
refusals (someone else's uploads or conversation, pictures without HTML).
SQLite and PostgreSQL."""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings
from postroom.store.schema import messages
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api, close_api, make_api

api = fx.api  # the shared fixture: support quotes by default

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


@pytest.fixture
def api_no_quote(any_settings: Settings) -> Iterator[Api]:
    """Support does not quote by default and sends as "Example Support"."""
    queues = tuple(
        replace(q, quote_original=False, display_name="Example Support")
        if q.name == "support"
        else q
        for q in any_settings.queues
    )
    a = make_api(replace(any_settings, queues=queues))
    yield a
    close_api(a)


def sent(api: Api, message_pk: int | None = None) -> EmailMessage:
    """The composed bytes of our newest (or the given) outbound message."""
    with api.db.connect() as conn:
        query = sa.select(messages.c.raw_sha256).where(messages.c.direction == "out")
        if message_pk is not None:
            query = query.where(messages.c.id == message_pk)
        sha = conn.execute(query.order_by(messages.c.id.desc()).limit(1)).scalar_one()
    msg = email.message_from_bytes(api.comps.blobs.get(sha), policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def plain(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def send(api: Api, cid: int, user: str = "ann", **body: Any) -> Any:
    body.setdefault("text", "Thanks, on it.")
    return api.client(user).post(f"/api/v1/conversations/{cid}/send", json=body)


def test_queue_default_quotes_and_the_agent_can_leave_it_out(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", body="The printer smokes.\n")
    preview = api.client("ann").get(f"/api/v1/conversations/{cid}/quote").json()
    assert preview["default"] is True
    assert "> The printer smokes." in preview["quote"]["text"]
    assert send(api, cid).status_code == 201
    text = plain(sent(api))
    assert text.startswith("Thanks, on it.\n\nOn Fri, 20 Nov 2026 at 10:00 UTC, Alice Customer")
    assert "> The printer smokes.\n" in text
    assert sent(api)["From"] == "support <support@example.com>"
    assert send(api, cid, quote=False, text="Second.").status_code == 201
    assert plain(sent(api)) == "Second.\n"


def test_a_queue_without_quote_original_quotes_only_when_asked(api_no_quote: Api) -> None:
    api = api_no_quote
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", body="Where is my order?\n")
    assert api.client("ann").get(f"/api/v1/conversations/{cid}/quote").json()["default"] is False
    assert send(api, cid).status_code == 201
    first = sent(api)
    assert plain(first) == "Thanks, on it.\n"
    assert first["From"] == "Example Support <support@example.com>"
    assert send(api, cid, quote=True, text="Quoted.").status_code == 201
    assert "> Where is my order?" in plain(sent(api))


def test_forward_carries_the_original_and_its_attachment(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted(
        "ann", attachment=("invoice.pdf", b"%PDF-1.4 x\n", "application/pdf")
    )
    preview = api.client("ann").get(f"/api/v1/conversations/{cid}/quote?kind=forward").json()
    assert preview["default"] is True and preview["quote"]["attachments"] == ["invoice.pdf"]
    r = send(api, cid, kind="forward", to=["ledger@finance.example"], text="fyi")
    assert r.status_code == 201, r.text
    msg = sent(api)
    assert "---------- Forwarded message ---------" in plain(msg)
    assert [a.get_filename() for a in msg.iter_attachments()] == ["invoice.pdf"]
    # quote=false forwards only the agent's text.
    r = send(api, cid, kind="forward", to=["ledger@finance.example"], text="bare", quote=False)
    assert r.status_code == 201
    bare = sent(api)
    assert plain(bare) == "bare\n" and list(bare.iter_attachments()) == []


def test_pictures_in_a_reply_go_inline(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    r = api.client("ann").post("/api/v1/uploads", files={"file": ("shot.png", PNG, "image/png")})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    html = f'<div>See:</div><figure><img src="/api/v1/uploads/{uid}" width="8"></figure>'
    r = send(api, cid, html=html, inline=[uid], quote=False)
    assert r.status_code == 201, r.text
    msg = sent(api)
    [related] = [p for p in msg.walk() if p.get_content_type() == "multipart/related"]
    html_part, image = list(related.iter_parts())
    assert image.get_content_type() == "image/png" and image.get_payload(decode=True) == PNG
    cid_value = str(image["Content-ID"]).strip("<>")
    assert cid_value.startswith(f"upload-{uid}.")
    assert f'src="cid:{cid_value}"' in str(html_part.get_content())


def test_send_refuses_other_peoples_uploads_and_pictures_without_html(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    r = api.client("bob").post("/api/v1/uploads", files={"file": ("b.png", PNG, "image/png")})
    bobs = r.json()["id"]
    r = send(api, cid, html=f'<img src="/api/v1/uploads/{bobs}">', inline=[bobs])
    assert r.status_code in (403, 404), r.text
    r = api.client("ann").post("/api/v1/uploads", files={"file": ("a.png", PNG, "image/png")})
    r = send(api, cid, inline=[r.json()["id"]])
    assert r.status_code == 400 and "HTML" in r.json()["error"]["message"]
    # The quote preview follows the access rule: bob holds nothing here.
    assert api.client("bob").get(f"/api/v1/conversations/{cid}/quote").status_code in (403, 404)
    with api.db.connect() as conn:
        outbound = conn.execute(
            sa.select(sa.func.count()).select_from(messages).where(messages.c.direction == "out")
        ).scalar_one()
    assert outbound == 0

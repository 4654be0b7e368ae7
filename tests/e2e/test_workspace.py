"""The agent workspace in a real browser against a real server: the offer loop
with reply and wrap-up, a customer reply going to the last agent, and hostile
mail rendered inert."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import (
    OFFER_TIMEOUT_MS,
    Page,
    accept_offer,
    csp_violations,
    eventually,
    expect,
    go_offline,
    go_on_queue,
    login,
    send_mail,
    shot,
    watch_csp,
    wrap_up,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_offer_accept_reply_with_canned_response_and_wrap_up(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    supervisor.call(
        "POST",
        "/api/v1/canned-responses",
        {
            "name": "Greeting",
            "text": "Hello {customer_name}, this is {agent_name} from {queue_name}.",
            "queue": "support",
        },
    )
    console_errors = watch_csp(page)
    page.goto(server.url + "/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot(page, "login")
    login(page, server, "ann")
    go_on_queue(page)
    send_mail(
        server,
        "support@example.com",
        make_email(
            sender="Alice Customer <alice@customer.example>",
            subject="Printer on fire",
            body="Hello, my printer is on fire. The invoice is attached.\n",
            attachment=("invoice.pdf", b"%PDF-1.4 not really\n", "application/pdf"),
        ),
    )
    offer = page.locator(".offer", has_text="Printer on fire")
    expect(offer).to_be_visible(timeout=OFFER_TIMEOUT_MS)
    expect(offer).to_contain_text("New conversation: Printer on fire")
    shot(page, "offer")
    cid = accept_offer(page, "Printer on fire")
    thread = page.locator("#conv-thread")
    expect(thread.locator(".message")).to_have_count(1)
    expect(thread.get_by_role("link", name="invoice.pdf")).to_be_visible()
    expect(thread).to_contain_text("alice@customer.example")
    expect(page.locator("#mine")).to_contain_text("Printer on fire")

    # Reply with a canned response and an attachment.
    page.keyboard.press("Alt+r")
    composer = page.locator("#composer")
    expect(composer).to_be_visible()
    expect(page.get_by_label("To", exact=True)).to_have_value("alice@customer.example")
    page.locator("#canned summary").click()
    page.get_by_role("button", name="Greeting").click()
    expect(page.locator("#canned-preview-text")).to_have_text(
        "Hello Alice Customer, this is Ann from support."
    )
    page.get_by_role("button", name="Insert", exact=True).click()
    editor = page.get_by_role("textbox", name="Message text")
    expect(editor).to_have_attribute("spellcheck", "true")
    editor.press("End")
    editor.type(" Please see the attached label.")
    expect(page.locator("#draft-status")).to_contain_text("Draft saved", timeout=5_000)
    page.reload()  # the draft comes back
    expect(page.locator("#draft-status")).to_contain_text("Draft restored")
    expect(editor).to_contain_text("this is Ann from support. Please see the attached label.")
    expect(page.locator("body[data-stream=open]")).to_have_count(1, timeout=10_000)
    # The check before sending: an attachment is mentioned but none is attached.
    editor.press("Control+Enter")
    check = page.locator("#check-dialog")
    expect(check).to_be_visible()
    expect(check).to_contain_text("nothing is attached")
    check.get_by_role("button", name="Go back").click()
    page.locator("#c-files").set_input_files(
        files=[{"name": "label.txt", "mimeType": "text/plain", "buffer": b"return label\n"}]
    )
    expect(page.locator("#c-attachments")).to_contain_text("label.txt (13 bytes)")
    shot(page, "composer")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#toast")).to_contain_text("Sent")
    expect(thread.locator(".message.out")).to_have_count(1, timeout=10_000)

    def delivered() -> bytes | None:
        for raw in server.sent_mail():
            if b"Printer on fire" in raw and b"alice@customer.example" in raw:
                return raw
        return None

    msg = email.message_from_bytes(eventually(delivered), policy=email.policy.default)
    assert msg["To"] == "alice@customer.example"
    assert "Hello Alice Customer, this is Ann from support." in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert [a.get_filename() for a in msg.iter_attachments()] == ["label.txt"]

    # The editor works under the page's CSP: nothing blocked, nothing logged.
    assert csp_violations(page) == []
    assert console_errors == []

    wrap_up(page, "resolved")
    conv = supervisor.call("GET", f"/api/v1/conversations/{cid}")
    assert conv["state"] == "closed" and conv["wrapup_code"] == "resolved"
    shot(page, "wrapped-up")
    go_offline(page)


def test_customer_reply_threads_and_goes_to_the_last_agent(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    login(page, server, "carl")
    go_on_queue(page)
    first = make_email(
        sender="Bo Buyer <bo@buyer.example>",
        to="sales@example.com",
        subject="Price for 40 chairs",
        body="What would 40 chairs cost?\n",
        message_id="<chairs-1@buyer.example>",
    )
    send_mail(server, "sales@example.com", first, "bo@buyer.example")
    cid = accept_offer(page, "Price for 40 chairs")
    wrap_up(page, "sold")
    # Dora is on queue and idle too; the reply still goes to Carl, the last agent.
    supervisor.call("PUT", "/api/v1/users/dora/presence", {"presence": "on_queue"})
    reply = make_email(
        sender="Bo Buyer <bo@buyer.example>",
        to="sales@example.com",
        subject="Re: Price for 40 chairs",
        body="And 50 chairs?\n",
        message_id="<chairs-2@buyer.example>",
        in_reply_to="<chairs-1@buyer.example>",
        references="<chairs-1@buyer.example>",
    )
    send_mail(server, "sales@example.com", reply, "bo@buyer.example")
    offer = page.locator(".offer", has_text="Price for 40 chairs")
    expect(offer).to_contain_text(re.compile(r"Customer replied in thread PR-\d+: Price for 40 chairs"), timeout=OFFER_TIMEOUT_MS)
    second = accept_offer(page, "Price for 40 chairs")
    assert second != cid
    thread = page.locator("#conv-thread")
    expect(thread.locator(".message")).to_have_count(2)
    expect(thread.locator(".message").first).to_contain_text("And 50 chairs?")
    expect(thread.locator(".message").nth(1)).to_contain_text(f"earlier conversation {cid}")
    # Carl's wrap-up of the first conversation is shown above the thread.
    expect(page.locator("#conv-wrapups")).to_contain_text("sold")
    expect(page.locator("#conv-wrapups")).to_contain_text("done in the browser test")
    a = supervisor.call("GET", f"/api/v1/conversations/{cid}")
    b = supervisor.call("GET", f"/api/v1/conversations/{second}")
    assert a["thread_id"] == b["thread_id"] and b["agent"] == "carl"
    shot(page, "thread")
    supervisor.call("PUT", "/api/v1/users/dora/presence", {"presence": "offline"})
    wrap_up(page, "no-interest")
    go_offline(page)


HOSTILE_HTML = """\
<p id="hello">Hello from a hostile sender</p>
<script>window.__pwned = 1; alert(1)</script>
<img src="x" onerror="window.__pwned = 2; alert(2)">
<a id="js" href="javascript:window.__pwned=3;alert(3)">click me</a>
<div id="hover" onmouseover="window.__pwned = 4; alert(4)">hover me</div>
<img id="tracker" src="https://remote.invalid/track.png" alt="tracker">
<svg onload="alert(5)"><circle r="5"/></svg>
<iframe src="javascript:alert(6)"></iframe>
<form action="https://evil.invalid/"><input name="q"><button>go</button></form>
<p style="background:url(javascript:alert(7))">styled</p>
"""
HOSTILE_NAME = '"><img src=x onerror=alert(9)>.html'


def test_hostile_mail_renders_inert(page: Page, server: Server) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, server, "eve")
    go_on_queue(page)
    raw = make_email(
        sender='"<img src=x onerror=alert(8)>" <mallory@evil.invalid>',
        to="security@example.com",
        subject="<script>window.__pwned = 7</script> urgent",
        body="plain part\n",
        html=HOSTILE_HTML,
        attachment=(HOSTILE_NAME, b"<script>alert(10)</script>", "text/html"),
    )
    send_mail(server, "security@example.com", raw, "mallory@evil.invalid")
    accept_offer(page, "urgent")
    expect(page.locator("#conv-title")).to_have_text("<script>window.__pwned = 7</script> urgent")
    frame = page.frame_locator("iframe.body-frame")
    expect(frame.get_by_text("Hello from a hostile sender")).to_be_visible()
    frame.get_by_text("hover me").hover()
    frame.get_by_text("click me").click()
    link = page.locator("#conv-thread .attachments a")
    expect(link).to_contain_text("img src=x onerror=alert(9)")  # shown as text
    body = page.request.get(server.url + (page.locator("iframe.body-frame").get_attribute("data-src") or ""))
    assert "script-src 'none'" in body.headers["content-security-policy"]
    assert "<script" not in body.text() and "onerror" not in body.text()
    expect(frame.locator("img[alt=tracker]")).not_to_have_attribute("src", re.compile("remote"))
    page.get_by_role("button", name="Show remote images").click()
    expect(frame.locator("img[alt=tracker]")).to_have_attribute("src", "https://remote.invalid/track.png")
    page.wait_for_timeout(300)
    shot(page, "hostile")
    for f in page.frames:
        assert f.evaluate("() => window.__pwned") is None
    assert dialogs == []
    assert page.evaluate("() => document.querySelectorAll('#main img').length") == 0
    go_offline(page)


def test_wrap_up_accept_transfer_park_leave_the_console_clean(page: Page, server: Server) -> None:
    """The page's CSP admits no inline style: nothing the workspace does on the way
    (dialogs, htmx swaps, the editor) may need one, and nothing may log an error."""
    console_errors = watch_csp(page)
    login(page, server, "ann")
    go_on_queue(page)
    for n, subject in enumerate(("Toner low", "Invoice question", "Call me later")):
        send_mail(
            server,
            "support@example.com",
            make_email(
                subject=subject, body=f"Message {n}.\n", html=f"<p>Message <b>{n}</b>.</p>",
                sender="Lee <lee@customer.example>",
            ),
            "lee@customer.example",
        )
        accept_offer(page, subject)
        # The composer opens and holds a draft while the conversation changes.
        page.get_by_role("button", name="Reply", exact=True).click()
        page.get_by_role("textbox", name="Message text").type("One moment, please.")
        expect(page.locator("#draft-status")).to_contain_text("Draft saved", timeout=5_000)
        # Resizing the notes box (as the browser does when it is dragged) gives it a
        # style attribute; the next swap of the conversation must not copy it over.
        page.evaluate("() => { document.getElementById('wrapup-notes').style.height = '120px'; }")
        if subject == "Toner low":
            wrap_up(page, "resolved")
        elif subject == "Invoice question":
            page.get_by_role("button", name="Transfer…").click()
            dialog = page.locator("#transfer-dialog")
            expect(dialog).to_be_visible()
            # Every agent is listed with what they can do now.
            expect(dialog.locator("#transfer-agent option[value=gil]")).to_contain_text("Gil — ")
            dialog.get_by_label("To a queue").select_option("billing")
            dialog.get_by_role("button", name="Transfer", exact=True).click()
            expect(page.locator("#toast")).to_contain_text("Transferred")
            expect(page.locator("#mine")).not_to_contain_text(subject)
        else:
            page.get_by_role("button", name="Park").click()
            expect(page.locator("#conv-state")).to_have_text("parked", timeout=10_000)
            expect(page.locator("#mine section", has_text="Parked")).to_contain_text(subject)
            wrap_up(page, "resolved")
    page.wait_for_timeout(500)  # late swaps and their styles
    assert csp_violations(page) == []
    assert console_errors == []
    go_offline(page)

"""Writing to customers in a real browser: a new email from a queue (From address,
signature swapped with the queue, send checks, attachment, what the relay gets),
the queue's signature in a reply's composer, and a sent message's delivery status
changing live when a bounce comes back."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

import pytest

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import (
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

SUPPORT_SIGNATURE = "Example Support (support)"  # conftest: support's signature_text
SALES_SIGNATURE = "Example Sales"  # conftest: sales' signature_html


def delivered(server: Server, *needles: bytes) -> EmailMessage:
    def find() -> bytes | None:
        for raw in server.sent_mail():
            if all(n in raw for n in needles):
                return raw
        return None

    msg = email.message_from_bytes(eventually(find), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def plain(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def dsn(message_id: str) -> bytes:
    """A delivery status notification (RFC 3464) saying our message failed."""
    return (
        b"From: MAILER-DAEMON@mx.customer.example\r\nTo: support@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn-e2e@mx.customer.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n"
        b"Final-Recipient: rfc822; gone@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <" + message_id.encode() + b">\r\nSubject: Your parcel\r\n\r\n--b--\r\n"
    )


def test_agent_sends_new_email_with_signature_and_attachment(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    console_errors = watch_csp(page)
    login(page, server, "gil")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="New email").click()
    expect(page).to_have_url(server.url + "/new")
    queue = page.get_by_label("Queue", exact=True)
    expect(queue).to_have_value("support")
    # Gil is in support and sales: only those two queues are offered.
    assert page.locator("#n-queue option").all_inner_texts() == ["support", "sales"]
    expect(page.locator("#n-from")).to_have_text("support@example.com")
    expect(page.locator("#n-agent")).to_have_count(0)  # an agent holds it themselves
    editor = page.locator("#c-editor")
    # The queue's signature is at the end when the page opens...
    expect(editor).to_contain_text(SUPPORT_SIGNATURE)
    expect(editor).to_contain_text("Gil")
    # ...and is swapped for the other queue's when the queue changes.
    queue.select_option("sales")
    expect(page.locator("#n-from")).to_have_text("sales@example.com")
    expect(editor).to_contain_text(SALES_SIGNATURE)
    expect(editor).not_to_contain_text(SUPPORT_SIGNATURE)
    expect(editor.locator("strong")).to_have_text("Gil")
    queue.select_option("support")
    expect(editor).to_contain_text(SUPPORT_SIGNATURE)
    expect(editor).not_to_contain_text(SALES_SIGNATURE)

    page.get_by_label("To", exact=True).fill("Nina Newcustomer <nina@customer.example>")
    page.get_by_label("Subject").fill("Your quote 88")
    editor.focus()
    page.keyboard.type("Dear Nina, please find our quote attached.")
    # What the agent types goes above the signature, not into it.
    expect(editor.locator("div").first).to_have_text("Dear Nina, please find our quote attached.")
    expect(editor).to_contain_text(SUPPORT_SIGNATURE)

    # The check before sending: an attachment is mentioned but none is attached.
    page.keyboard.press("Control+Enter")
    check = page.locator("#check-dialog")
    expect(check).to_be_visible()
    expect(check).to_contain_text("nothing is attached")
    check.get_by_role("button", name="Go back").click()
    page.locator("#c-files").set_input_files(
        files=[{"name": "quote-88.txt", "mimeType": "text/plain", "buffer": b"quote 88: 1200 EUR\n"}]
    )
    expect(page.locator("#c-attachments")).to_contain_text("quote-88.txt (19 bytes)")
    expect(page.locator("#c-limits")).to_contain_text("up to 50 files")
    shot(page, "new-email")
    # Sent twice in a row (an impatient double Ctrl+Enter): one email goes out.
    editor.focus()
    page.keyboard.press("Control+Enter")
    page.keyboard.press("Control+Enter")

    # The new conversation opens in the workspace, connected to Gil.
    expect(page).to_have_url(re.compile(r"/c/\d+$"), timeout=10_000)
    cid = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#conv-title")).to_have_text("Your quote 88")
    expect(page.locator("#conv-state")).to_have_text("connected")
    expect(page.locator("#mine")).to_contain_text("Your quote 88")
    out = page.locator("#conv-thread .message.out")
    expect(out).to_have_count(1)
    expect(out.locator("[data-delivery]")).to_have_attribute("data-status", "sent", timeout=10_000)
    conv = supervisor.call("GET", f"/api/v1/conversations/{cid}")
    assert conv["agent"] == "gil" and conv["state"] == "connected" and conv["queue"] == "support"
    found = supervisor.call("GET", "/api/v1/conversations?q=quote+88")
    assert [c["id"] for c in found["conversations"]] == [cid]

    msg = delivered(server, b"Your quote 88", b"nina@customer.example")
    assert msg["From"] == "support <support@example.com>"
    assert re.fullmatch(r"Your quote 88 \[#PR-\d+\]", str(msg["Subject"])), msg["Subject"]
    assert f"[#{conv['reference']}]" in str(msg["Subject"])
    assert msg["To"] == "Nina Newcustomer <nina@customer.example>"
    text = plain(msg)
    assert "Dear Nina, please find our quote attached." in text
    assert "-- \nGil\n" + SUPPORT_SIGNATURE in text
    assert [a.get_filename() for a in msg.iter_attachments()] == ["quote-88.txt"]

    assert csp_violations(page) == []
    assert console_errors == []
    wrap_up(page, "resolved")


def test_supervisor_new_email_names_the_agent_and_keeps_an_edited_signature(
    page: Page, server: Server
) -> None:
    console_errors = watch_csp(page)
    login(page, server, "sue")
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Queues")).to_be_visible()
    nav.get_by_role("link", name="New email").click()
    # Any queue with an address; Sue has no agent profile, so she names the holder.
    assert page.locator("#n-queue option").all_inner_texts() == [
        "support",
        "sales",
        "security",
        "billing",
        "returns",
    ]
    holder = page.get_by_label("Held by")
    expect(holder).to_have_value("")
    expect(holder.locator("option", has_text="Gil")).to_have_count(1)
    editor = page.locator("#c-editor")
    expect(editor).to_contain_text(SUPPORT_SIGNATURE)
    expect(editor).to_contain_text("Sue")
    page.get_by_label("To", exact=True).fill("olaf@customer.example")
    page.get_by_label("Subject").fill("Checking in")
    editor.focus()
    page.keyboard.type("Hello Olaf")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_have_text("Choose the agent who will hold the conversation.")
    expect(page).to_have_url(server.url + "/new")

    # Once the signature is edited, changing the queue leaves it alone.
    editor.focus()
    page.keyboard.press("Control+End")
    page.keyboard.type(" (on leave from Monday)")
    page.get_by_label("Queue", exact=True).select_option("sales")
    expect(page.locator("#toast")).to_contain_text("You changed the signature")
    expect(editor).to_contain_text(SUPPORT_SIGNATURE + " (on leave from Monday)")
    expect(editor).not_to_contain_text(SALES_SIGNATURE)
    expect(editor).to_contain_text("Hello Olaf")
    assert csp_violations(page) == []
    assert console_errors == []


def test_reply_composer_opens_with_the_queue_signature(page: Page, server: Server) -> None:
    console_errors = watch_csp(page)
    login(page, server, "gil")
    go_on_queue(page)
    send_mail(
        server,
        "sales@example.com",
        make_email(
            sender="Pia Prospect <pia@prospect.example>",
            to="sales@example.com",
            subject="Bulk discount?",
            body="Do you give a discount for 500 pieces?\n",
        ),
        "pia@prospect.example",
    )
    cid = accept_offer(page, "Bulk discount?")
    page.get_by_role("button", name="Reply", exact=True).click()
    editor = page.locator("#c-editor")
    expect(editor).to_be_focused()
    expect(editor).to_contain_text(SALES_SIGNATURE)
    expect(editor.locator("strong")).to_have_text("Gil")
    page.keyboard.type("Yes: 12 % from 500 pieces.")
    expect(editor.locator("div").first).to_have_text("Yes: 12 % from 500 pieces.")
    page.locator("#c-files").set_input_files(
        files=[{"name": "price-list.txt", "mimeType": "text/plain", "buffer": b"500 pieces: -12 %\n"}]
    )
    expect(page.locator("#c-attachments")).to_contain_text("price-list.txt (18 bytes)")

    def saved_with_attachment() -> bool:
        draft = page.request.get(f"{server.url}/api/v1/conversations/{cid}/draft").json()
        return bool(draft["data"] and draft["data"]["attachments"])

    eventually(saved_with_attachment, timeout=5)

    # A restored draft has its signature already: it does not get a second one. Its
    # attachment is listed by name and size again (the draft stores only upload ids).
    page.reload()
    expect(page.locator("#draft-status")).to_contain_text("Draft restored")
    expect(page.locator("#c-attachments")).to_contain_text("price-list.txt (18 bytes)")
    expect(editor).to_contain_text("Yes: 12 % from 500 pieces.")
    expect(editor.locator("strong")).to_have_count(1)
    assert (editor.inner_text()).count(SALES_SIGNATURE) == 1
    expect(page.locator("body[data-stream=open]")).to_have_count(1, timeout=10_000)

    # Reply all and forward open with the signature too.
    for kind, title in (("Reply all", "Reply all"), ("Forward", "Forward")):
        page.get_by_role("button", name=kind, exact=True).click()
        expect(page.locator("#composer-title")).to_have_text(title)
        expect(editor).not_to_contain_text("12 %")
        expect(editor.locator("strong")).to_have_count(1)
        expect(editor).to_contain_text(SALES_SIGNATURE)

    page.get_by_role("button", name="Reply", exact=True).click()
    page.keyboard.type("We can do 12 %.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    msg = delivered(server, b"pia@prospect.example", b"We can do 12")
    assert msg["From"] == "sales <sales@example.com>"
    assert re.search(r"We can do 12 %\.\n\n?-- \nGil\n" + SALES_SIGNATURE, plain(msg)), plain(msg)
    assert csp_violations(page) == []
    assert console_errors == []
    wrap_up(page, "sold")
    go_offline(page)


def test_delivery_status_changes_live_when_a_bounce_arrives(page: Page, server: Server) -> None:
    console_errors = watch_csp(page)
    gil = server.session("gil")
    started = gil.call(
        "POST",
        "/api/v1/conversations",
        {
            "queue": "support",
            "to": ["gone@customer.example"],
            "subject": "Your parcel",
            "text": "Your parcel is on its way.",
        },
    )
    cid = started["conversation_id"]
    login(page, server, "gil")
    page.goto(f"{server.url}/c/{cid}")
    expect(page.locator("body[data-stream=open]")).to_have_count(1, timeout=10_000)
    badge = page.locator("#conv-thread .message.out [data-delivery]")
    expect(badge).to_have_attribute("data-status", "sent", timeout=10_000)
    expect(badge).to_have_text("sent")
    # Marks that a reload or a re-rendered thread would lose.
    page.evaluate("() => { window.__kept = 1; document.querySelector('#conv-thread').__kept = 1; }")

    send_mail(server, "support@example.com", dsn(started["message_id"]), sender="")
    expect(badge).to_have_attribute("data-status", "bounced", timeout=15_000)
    expect(badge).to_have_text("bounced")
    expect(page.locator("#toast")).to_contain_text("A message you sent in this conversation bounced.")
    assert page.evaluate("() => window.__kept === 1 && document.querySelector('#conv-thread').__kept === 1")
    conv = gil.call("GET", f"/api/v1/conversations/{cid}")
    assert conv["messages"][0]["delivery"]["status"] == "bounced"
    shot(page, "delivery-bounced")
    assert csp_violations(page) == []
    assert console_errors == []
    wrap_up(page, "resolved")

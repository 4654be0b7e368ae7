"""The composer's rich-text editor (Trix) in a real browser: formatting that
survives the server's sanitizer, the text part derived from it, reply-all and
forward with edited recipients, files dropped on the text or the drop box going
to Postroom's attachments, the insertHTML hook, draft restore with formatting,
keyboard sending and no Content-Security-Policy violations; paragraphs and canned
responses kept apart from the queue's signature in the editor and in both parts of
the sent mail; the customer's message quoted and forwarded; pictures pasted into
the text sent inline."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import struct
import zlib
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest

from tests.e2e.conftest import ARTIFACTS, ApiSession, Server
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
    watch_csp,
    wrap_up,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SUBJECT = "Invoice 4711 is wrong"
SUPPORT_SIGNATURE = "-- \nAnn\nExample Support (support)"  # conftest: support's signature_text


def drop_file(page: Page, selector: str, name: str, content: str) -> None:
    """Drop one file on an element the way a browser does (dragenter, dragover, drop)."""
    data = page.evaluate_handle(
        """([name, content]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([content], name, {type: "text/plain"}));
            return dt;
        }""",
        [name, content],
    )
    target = page.locator(selector)
    for kind in ("dragenter", "dragover", "drop"):
        target.dispatch_event(kind, {"dataTransfer": data})


def settle(page: Page) -> None:
    """Let the editor render and see the new selection (Trix does both in the next
    animation frames); a formatting shortcut pressed before that can be undone by
    Trix's own selection update in headless Chromium."""
    page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r))))"
    )


def shortcut(page: Page, keys: str) -> None:
    settle(page)
    page.keyboard.press(keys)
    settle(page)


def delivered(server: Server, *needles: bytes) -> EmailMessage:
    def find() -> bytes | None:
        for raw in server.sent_mail():
            if all(n in raw for n in needles):
                return raw
        return None

    msg = email.message_from_bytes(eventually(find), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def body(msg: EmailMessage, kind: str) -> str:
    part = msg.get_body((kind,))
    assert part is not None, f"no text/{kind} part"
    return str(part.get_content())


class _Blocks(HTMLParser):
    """The text of each top-level element of an HTML part (tag, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.blocks: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            if self.depth and self.blocks:
                self.blocks[-1] = (self.blocks[-1][0], self.blocks[-1][1] + "\n")
            return
        if self.depth == 0:
            self.blocks.append((tag, ""))
        self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag != "br":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth and self.blocks:
            self.blocks[-1] = (self.blocks[-1][0], self.blocks[-1][1] + data)


def top_blocks(html: str) -> list[tuple[str, str]]:
    parser = _Blocks()
    parser.feed(html)
    return [(tag, text.replace("\xa0", " ")) for tag, text in parser.blocks]


def open_reply(page: Page, server: Server, subject: str, sender: str) -> None:
    """Ann (support) takes a new customer mail and opens the reply, signature in place."""
    login(page, server, "ann")
    go_on_queue(page)
    address = sender.partition("<")[2].rstrip(">")
    send_mail(
        server,
        "support@example.com",
        make_email(sender=sender, to="support@example.com", subject=subject, body="Hi there.\n"),
        address,
    )
    accept_offer(page, subject)
    page.get_by_role("button", name="Reply", exact=True).click()
    editor = page.locator("#c-editor")
    expect(editor).to_be_focused()
    expect(editor).to_contain_text("Example Support (support)")


def test_paragraphs_stay_apart_from_the_signature(page: Page, server: Server) -> None:
    console_errors = watch_csp(page)
    open_reply(page, server, "Two paragraphs", "Olga Reader <olga@reader.example>")
    editor = page.locator("#c-editor")
    page.keyboard.type("Hello,")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.type("Second paragraph.")
    # In the editor: one block per paragraph, an empty one between, the signature apart.
    expect(editor.locator(":scope > div")).to_have_text(
        ["Hello,", "", "Second paragraph.", "", re.compile(r"^--\s+Ann\s*Example Support")]
    )
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    msg = delivered(server, b"olga@reader.example", b"Second paragraph.")
    text = body(msg, "plain")
    assert text.startswith("Hello,\n\nSecond paragraph.\n\n" + SUPPORT_SIGNATURE + "\n"), text
    blocks = top_blocks(body(msg, "html"))
    assert blocks[:5] == [
        ("div", "Hello,"),
        ("div", "\n"),
        ("div", "Second paragraph."),
        ("div", "\n"),
        ("div", SUPPORT_SIGNATURE),
    ], blocks
    assert csp_violations(page) == []
    assert console_errors == []
    wrap_up(page, "resolved")
    go_offline(page)


def test_canned_response_keeps_the_blank_line_before_the_signature(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    supervisor.call(
        "POST",
        "/api/v1/canned-responses",
        {
            "name": "Opening hours",
            "text": "Dear {customer_name},\n\nwe are open from 9 to 5.\n",
            "queue": "support",
        },
    )
    open_reply(page, server, "When are you open?", "Hugo Early <hugo@early.example>")
    editor = page.locator("#c-editor")
    page.locator("#canned summary").click()
    page.get_by_role("button", name="Opening hours").click()
    expect(page.locator("#canned-preview-text")).to_contain_text("Dear Hugo Early,")
    page.get_by_role("button", name="Insert", exact=True).click()
    expect(editor.locator(":scope > div")).to_have_text(
        ["Dear Hugo Early,", "", "we are open from 9 to 5.", "", re.compile(r"^--\s+Ann")]
    )
    # Typing on goes on in the canned text's last line, not into the signature.
    page.keyboard.type(" See you!")
    expect(editor.locator(":scope > div").nth(2)).to_have_text("we are open from 9 to 5. See you!")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    msg = delivered(server, b"hugo@early.example", b"See you!")
    text = body(msg, "plain")
    assert text.startswith(
        "Dear Hugo Early,\n\nwe are open from 9 to 5. See you!\n\n" + SUPPORT_SIGNATURE + "\n"
    ), text
    assert top_blocks(body(msg, "html"))[3:5] == [("div", "\n"), ("div", SUPPORT_SIGNATURE)]
    wrap_up(page, "resolved")
    go_offline(page)


def test_reply_quotes_and_forward_includes_the_customers_message(
    page: Page, server: Server
) -> None:
    console_errors = watch_csp(page)
    login(page, server, "ann")
    go_on_queue(page)
    send_mail(
        server,
        "support@example.com",
        make_email(
            sender="Rita Quoted <rita@quoted.example>",
            to="support@example.com",
            subject="Router blinks red",
            body="My router blinks red.\n\nWhat now?\n",
            html="<p>My router <b>blinks red</b>.</p><p>What now?</p>",
            attachment=("photo.txt", b"a photo, really\n", "text/plain"),
        ),
        "rita@quoted.example",
    )
    cid = accept_offer(page, "Router blinks red")
    page.get_by_role("button", name="Reply", exact=True).click()
    editor = page.locator("#c-editor")
    expect(editor).to_be_focused()
    # The quote is not in the text: it is shown collapsed below it, included by default.
    include = page.get_by_label("Include the customer's message")
    expect(include).to_be_checked()
    quoted = page.locator("#c-quote-text")
    expect(quoted).to_be_hidden()
    page.get_by_text("… show quoted text").click()
    expect(quoted).to_contain_text("Rita Quoted <rita@quoted.example> wrote:")
    expect(quoted).to_contain_text("> My router blinks red.")
    expect(editor).not_to_contain_text("blinks red")
    editor.click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("Unplug it for a minute.")
    page.locator("#composer").screenshot(path=str(ARTIFACTS / "composer-quote.png"))
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    msg = delivered(server, b"rita@quoted.example", b"Unplug it")
    assert msg["From"] == "support <support@example.com>"
    text = body(msg, "plain")
    intro = "On Fri, 20 Nov 2026 at 10:00 UTC, Rita Quoted <rita@quoted.example> wrote:"
    assert text.startswith(
        "Unplug it for a minute.\n\n" + SUPPORT_SIGNATURE + "\n\n" + intro + "\n"
        "> My router blinks red.\n>\n> What now?\n"
    ), text
    html = body(msg, "html")
    blocks = top_blocks(html)
    assert [tag for tag, _ in blocks][-2:] == ["div", "blockquote"], blocks
    assert blocks[-2][1] == intro
    assert "<b>blinks red</b>" in html.partition('<blockquote type="cite">')[2]
    assert list(msg.iter_attachments()) == []

    # Unticked, the next reply goes without the quote.
    page.get_by_role("button", name="Reply", exact=True).click()
    expect(include).to_be_checked()
    include.uncheck()
    # The draft keeps the choice.
    draft_url = f"{server.url}/api/v1/conversations/{cid}/draft"
    eventually(
        lambda: (page.request.get(draft_url).json()["data"] or {}).get("quote") is False,
        timeout=5,
    )
    page.reload()
    expect(page.locator("#draft-status")).to_contain_text("Draft restored")
    expect(include).not_to_be_checked()
    expect(page.locator("body[data-stream=open]")).to_have_count(1, timeout=10_000)
    editor.click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("One more thing.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    second = delivered(server, b"rita@quoted.example", b"One more thing.")
    assert "wrote:" not in body(second, "plain")
    assert "<blockquote" not in body(second, "html")

    # Forward: the original's header block and body, and its attachment.
    page.get_by_role("button", name="Forward").click()
    forward = page.get_by_label("Include the original message and its attachments")
    expect(forward).to_be_checked()
    page.get_by_text("… show quoted text").click()
    expect(page.locator("#c-quote-files")).to_have_text("Attached: photo.txt")
    expect(quoted).to_contain_text("---------- Forwarded message ---------")
    page.get_by_label("To", exact=True).fill("Field Team <field@techs.example>")
    editor.click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("Can you visit her?")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    fwd = delivered(server, b"field@techs.example", b"Can you visit her?")
    text = body(fwd, "plain")
    assert (
        "---------- Forwarded message ---------\nFrom: Rita Quoted <rita@quoted.example>\n" in text
    )
    assert "Subject: Router blinks red\n" in text
    assert "\nMy router blinks red.\n\nWhat now?" in text
    assert "---------- Forwarded message ---------" in body(fwd, "html")
    [att] = list(fwd.iter_attachments())
    assert att.get_filename() == "photo.txt"
    assert att.get_content() == "a photo, really\n"
    assert csp_violations(page) == []
    assert console_errors == []
    wrap_up(page, "resolved")
    go_offline(page)


def tiny_png(rgb: tuple[int, int, int] = (200, 30, 30), size: int = 8) -> bytes:
    """A valid PNG of one colour (the browser decodes it to lay it out)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_picture_pasted_into_a_reply_goes_inline(page: Page, server: Server) -> None:
    console_errors = watch_csp(page)
    open_reply(page, server, "Which cable?", "Pia Pictures <pia@pictures.example>")
    editor = page.locator("#c-editor")
    page.keyboard.type("This cable:")
    png = tiny_png()
    # What Chromium hands the page for a screenshot pasted from the clipboard.
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "cable.png", {type: "image/png"}));
            document.querySelector("#c-editor").dispatchEvent(new ClipboardEvent("paste", {
                clipboardData: dt, bubbles: true, cancelable: true
            }));
        }""",
        base64.b64encode(png).decode(),
    )
    picture = editor.locator("img")
    expect(picture).to_have_attribute("src", re.compile(r"^/api/v1/uploads/\d+$"), timeout=10_000)
    expect(page.locator("#c-attachments li")).to_have_count(0)  # in the text, not a file
    # A file that is not a picture, pasted into the text, becomes an attachment.
    page.evaluate(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(["not a picture"], "notes.txt", {type: "text/plain"}));
            document.querySelector("#c-editor").dispatchEvent(new ClipboardEvent("paste", {
                clipboardData: dt, bubbles: true, cancelable: true
            }));
        }"""
    )
    expect(page.locator("#c-attachments")).to_contain_text("notes.txt")
    expect(picture).to_have_count(1)
    expect(page.locator("#draft-status")).to_contain_text("Draft saved", timeout=5_000)
    src = picture.get_attribute("src")
    # The draft keeps the picture where it was.
    page.reload()
    expect(page.locator("#draft-status")).to_contain_text("Draft restored")
    expect(picture).to_have_attribute("src", src or "")
    expect(page.locator("body[data-stream=open]")).to_have_count(1, timeout=10_000)
    editor.click()
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    msg = delivered(server, b"pia@pictures.example", b"This cable:")
    related = [p for p in msg.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1, [p.get_content_type() for p in msg.walk()]
    parts = list(related[0].iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/html", "image/png"]
    image = parts[1]
    assert image.get_payload(decode=True) == png
    content_id = str(image["Content-ID"]).strip("<>")
    html = str(parts[0].get_content())
    assert f'src="cid:{content_id}"' in html, html
    assert "/api/v1/uploads/" not in html
    assert [a.get_filename() for a in msg.iter_attachments() if a is not image] == ["notes.txt"]
    assert csp_violations(page) == []
    assert console_errors == []
    wrap_up(page, "resolved")
    go_offline(page)


def test_rich_text_reply_all_and_forward(page: Page, server: Server) -> None:
    console_errors = watch_csp(page)
    login(page, server, "fay")
    go_on_queue(page)
    send_mail(
        server,
        "billing@example.com",
        make_email(
            sender="Gus Payer <gus@payer.example>",
            to="billing@example.com",
            subject=SUBJECT,
            body="Hello, invoice 4711 charges us twice.\n",
            headers={"Cc": "Bob Partner <bob@partner.example>"},
        ),
        "gus@payer.example",
    )
    cid = accept_offer(page, SUBJECT)

    # Reply all: the customer in To, the other participant in Cc.
    page.get_by_role("button", name="Reply all").click()
    expect(page.locator("#composer-title")).to_have_text("Reply all")
    expect(page.get_by_label("To", exact=True)).to_have_value("gus@payer.example")
    expect(page.get_by_label("Cc", exact=True)).to_have_value("bob@partner.example")
    editor = page.get_by_role("textbox", name="Message text")
    expect(editor).to_be_focused()
    expect(editor).to_have_attribute("spellcheck", "true")
    expect(page.locator("trix-editor#c-editor")).to_have_count(1)
    expect(page.locator("#c-limits")).to_contain_text("up to 50 files")

    # Formatting from the toolbar and from the keyboard, inside the editor.
    toolbar = page.get_by_role("toolbar", name="Formatting")
    page.keyboard.type("Dear Gus, ")
    toolbar.get_by_role("button", name="Bold").click()
    page.keyboard.type("we are sorry")
    shortcut(page, "Control+b")
    page.keyboard.type(" and ")
    shortcut(page, "Control+i")
    page.keyboard.type("fix it")
    shortcut(page, "Control+i")
    page.keyboard.press("Enter")
    toolbar.get_by_role("button", name="Bulleted list").click()
    page.keyboard.type("credit note")
    page.keyboard.press("Enter")
    page.keyboard.type("new invoice")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # an empty item ends the list
    toolbar.get_by_role("button", name="Numbered list").click()
    page.keyboard.type("check")
    page.keyboard.press("Enter")
    page.keyboard.type("pay")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.type("Details: ")
    toolbar.get_by_role("button", name="Link").click()
    link_address = page.get_by_label("Link address")
    expect(link_address).to_be_visible()
    link_address.fill("https://example.org/billing-help")
    link_address.press("Enter")
    expect(link_address).to_be_hidden()
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    toolbar.get_by_role("button", name="Quote").click()
    page.keyboard.type("charges us twice")
    html = page.locator("#c-editor")
    expect(html.locator("strong")).to_have_text("we are sorry")
    expect(html.locator("em")).to_have_text("fix it")
    expect(html.locator("ul > li")).to_have_text(["credit note", "new invoice"])
    expect(html.locator("ol > li")).to_have_text(["check", "pay"])
    expect(html.locator("a[href='https://example.org/billing-help']")).to_have_count(1)
    expect(html.locator("blockquote")).to_have_text("charges us twice")

    # The hook a per-queue signature will use: HTML appended as a block of its own.
    page.evaluate("() => Postroom.insertHTML('<div>-- <br>Fay, <em>billing</em></div>', 'end')")
    expect(html.locator("div").last).to_contain_text("Fay, billing")
    expect(html.locator("blockquote")).to_have_text("charges us twice")

    # Files dropped on the text and on the drop box become attachments, not pictures.
    drop_file(page, "#c-editor", "statement.txt", "statement\n")
    expect(page.locator("#c-attachments")).to_contain_text("statement.txt (10 bytes)")
    drop_file(page, "#c-drop", "receipt.txt", "receipt\n")
    expect(page.locator("#c-attachments")).to_contain_text("receipt.txt (8 bytes)")
    expect(html.locator("figure, img")).to_have_count(0)

    # A recipient who was not in the thread so far.
    page.get_by_label("Bcc", exact=True).fill("audit@elsewhere.example")
    expect(page.locator("#draft-status")).to_contain_text("Draft saved", timeout=5_000)
    expect(page.locator("#toast")).to_be_hidden(timeout=10_000)
    page.locator("#composer").screenshot(path=str(ARTIFACTS / "composer-rich-text.png"))

    # The draft keeps the formatting (HTML) and comes back into the editor.
    page.reload()
    expect(page.locator("#draft-status")).to_contain_text("Draft restored")
    expect(page.locator("#composer-title")).to_have_text("Reply all")
    expect(page.get_by_label("Bcc", exact=True)).to_have_value("audit@elsewhere.example")
    expect(html.locator("strong")).to_have_text("we are sorry")
    expect(html.locator("ul > li")).to_have_count(2)
    expect(html.locator("a[href='https://example.org/billing-help']")).to_have_count(1)
    expect(page.locator("#c-attachments li")).to_have_count(2)
    expect(page.locator("body[data-stream=open]")).to_have_count(1, timeout=10_000)

    # Ctrl+Enter inside the editor sends, after the check.
    html.click()
    page.keyboard.press("Control+Enter")
    check = page.locator("#check-dialog")
    expect(check).to_be_visible()
    expect(check).to_contain_text("Not in this thread so far: audit@elsewhere.example.")
    check.get_by_role("button", name="Send anyway").click()
    expect(page.locator("#toast")).to_contain_text("Sent")
    expect(page.locator("#conv-thread .message.out")).to_have_count(1, timeout=10_000)

    msg = delivered(server, SUBJECT.encode(), b"bob@partner.example", b"credit note")
    assert msg["To"] == "gus@payer.example"
    assert msg["Cc"] == "bob@partner.example"
    sent_html = body(msg, "html")
    assert "<strong>we are sorry</strong>" in sent_html
    assert "<em>fix it</em>" in sent_html
    assert "<ul><li>credit note</li><li>new invoice</li></ul>" in sent_html
    assert "<ol><li>check</li><li>pay</li></ol>" in sent_html
    assert 'href="https://example.org/billing-help"' in sent_html
    assert "<blockquote>charges us twice" in sent_html
    text = body(msg, "plain")
    assert "Dear Gus, we are sorry and fix it" in text
    assert "- credit note\n- new invoice" in text
    assert "1. check\n2. pay" in text
    assert "https://example.org/billing-help" in text
    assert "> charges us twice" in text
    assert "-- \nFay, billing" in text
    own, _, quote = text.partition("\n\nOn Fri, 20 Nov 2026 at 10:00 UTC, Gus Payer")
    assert "<" not in own.replace("<https", "")
    assert quote.startswith(" <gus@payer.example> wrote:\n> Hello, invoice 4711"), quote
    assert sorted(a.get_filename() or "" for a in msg.iter_attachments()) == [
        "receipt.txt",
        "statement.txt",
    ]

    # Forward: recipients typed in, the subject prefilled; no "not in thread" check.
    page.get_by_role("button", name="Forward").click()
    expect(page.locator("#composer-title")).to_have_text("Forward")
    expect(page.get_by_label("To", exact=True)).to_have_value("")
    expect(page.get_by_label("Subject")).to_have_value(f"Fwd: {SUBJECT}")
    expect(html).to_have_text("")
    page.get_by_label("To", exact=True).fill("Ledger Team <ledger@finance.example>")
    html.click()
    # Underline from the keyboard, then Clear takes the formatting off the selection.
    shortcut(page, "Control+u")
    page.keyboard.type("scratch")
    expect(html.locator("u")).to_have_text("scratch")
    shortcut(page, "Control+a")
    toolbar.get_by_role("button", name="Clear formatting").click()
    expect(html.locator("u")).to_have_count(0)
    expect(html).to_have_text("scratch")
    shortcut(page, "Control+a")
    page.keyboard.press("Delete")
    expect(html).to_have_text("")
    # Rich text pasted from a web page: styles and pictures are left out.
    page.evaluate(
        """() => {
            const dt = new DataTransfer();
            dt.setData("text/html", '<style>p { color: red }</style><p style="color: red">pasted <img src="https://x.invalid/p.png"> <b>words</b></p>');
            dt.setData("text/plain", "pasted words");
            // what Chromium sends a contenteditable on Ctrl+V (Trix reads beforeinput)
            document.querySelector("#c-editor").dispatchEvent(new InputEvent("beforeinput", {
                inputType: "insertFromPaste", dataTransfer: dt, bubbles: true, cancelable: true
            }));
        }"""
    )
    expect(page.locator("#toast")).to_contain_text("Pictures in pasted text are left out")
    expect(html.locator("strong")).to_have_text("words")
    expect(html.locator("img, figure, [style]")).to_have_count(0)
    shortcut(page, "Control+a")
    page.keyboard.press("Delete")
    expect(html).to_have_text("")
    page.keyboard.type("Please look at this ")
    # Toolbar buttons work from the keyboard too (Trix itself only listens for mouse
    # presses); focus goes back to the text.
    settle(page)
    toolbar.get_by_role("button", name="Bold").focus()
    page.keyboard.press("Enter")
    expect(editor).to_be_focused()
    page.keyboard.type("today")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text("Sent")
    fwd = delivered(server, b"ledger@finance.example", b"Fwd: ")
    assert "Please look at this today" in body(fwd, "plain")
    assert "<strong>today</strong>" in body(fwd, "html")

    # How the text part is derived from the editor's HTML.
    cases = {
        "<div>a<br><br>b</div>": "a\n\nb",
        "<div>one<br></div><div>two</div>": "one\ntwo",
        "<ul><li>x<ul><li>y</li></ul></li><li>z</li></ul>": "- x\n  - y\n- z",
        '<ol start="3"><li>c<br>more</li><li>d</li></ol>': "3. c\n   more\n4. d",
        "<blockquote>q<blockquote>r</blockquote></blockquote>": "> q\n> > r",
        '<a href="mailto:a@b.example">a@b.example</a> <a href="https://x.example/">site</a>': (
            "a@b.example site (https://x.example/)"
        ),
        "<div>x&nbsp;&nbsp;y</div><div>-- <br>Sig</div>": "x  y\n-- \nSig",
        "<div>&lt;b&gt; &amp; <strong>bold</strong></div>": "<b> & bold",
    }
    got = page.evaluate("cases => cases.map(html => Postroom.htmlToText(html))", list(cases))
    assert dict(zip(cases, got, strict=True)) == cases

    # The one CSP exception: a fresh nonce per page for Trix's <style> elements.
    policies = [
        page.request.get(server.url + f"/c/{cid}").headers["content-security-policy"] for _ in "ab"
    ]
    for policy in policies:
        assert "script-src 'self';" in policy
        assert re.search(r"style-src 'self' 'nonce-[\w-]{20,}';", policy), policy
    assert policies[0] != policies[1]
    assert (
        page.evaluate(
            "() => document.querySelector('meta[name=trix-csp-nonce]').getAttribute('nonce')"
        )
        == ""
    )
    assert csp_violations(page) == []
    assert console_errors == []
    wrap_up(page, "paid")
    go_offline(page)

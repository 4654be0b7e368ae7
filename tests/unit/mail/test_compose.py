"""Composing outbound mail: MIME structure, threading headers, Thread-Index, limits."""

from __future__ import annotations

import base64
import email
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default

import pytest

from postroom.domain.errors import (
    InvalidAddressError,
    MessageTooLargeError,
    NoRecipientError,
    OutboundError,
    TooManyAttachmentsError,
    TooManyRecipientsError,
)
from postroom.mail import compose as mc
from postroom.mail.parse import parse_message

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GUID = bytes(range(16))
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def draft(**kw: object) -> mc.OutboundDraft:
    base = mc.OutboundDraft(
        from_address="support@example.com",
        from_name="Example Support",
        to=("Alice Customer <alice@customer.example>",),
        subject="Re: Printer on fire [#PR-7]",
        text="Hello Alice,\nwe are on it.\n",
        message_id="pr.PR-7.0123abcd@postroom.local",
        date=AT,
        in_reply_to="m2@customer.example",
        references=("m1@customer.example", "m2@customer.example"),
        thread_index=mc.child_thread_index(
            mc.new_thread_index(AT - timedelta(hours=1), GUID), AT, 9
        ),
        thread_topic="Printer on fire",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def stdlib(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_text_only_reply_has_threading_headers() -> None:
    raw = mc.compose(draft())
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = stdlib(raw)
    assert msg.get_content_type() == "text/plain"
    assert msg["From"] == "Example Support <support@example.com>"
    assert msg["Message-ID"] == "<pr.PR-7.0123abcd@postroom.local>"
    assert msg["In-Reply-To"] == "<m2@customer.example>"
    assert msg["References"] == "<m1@customer.example> <m2@customer.example>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"] == "Fri, 20 Nov 2026 12:00:00 +0000"
    assert msg["Thread-Topic"] == "Printer on fire"
    assert "Auto-Submitted" not in msg
    parsed = parse_message(raw)
    assert parsed.subject == "Re: Printer on fire [#PR-7]"
    assert parsed.message_id == "pr.PR-7.0123abcd@postroom.local"
    assert parsed.in_reply_to == ("m2@customer.example",)
    assert parsed.references == ("m1@customer.example", "m2@customer.example")
    assert parsed.auto_submitted is None
    assert parsed.text.startswith("Hello Alice,")


def test_bcc_never_appears_in_headers_but_is_an_envelope_recipient() -> None:
    d = draft(cc=("bob@customer.example",), bcc=("Boss <boss@example.com>",))
    raw = mc.compose(d)
    assert b"boss@" not in raw.lower() and b"Bcc" not in raw
    assert stdlib(raw)["Cc"] == "bob@customer.example"
    assert mc.envelope_recipients(d) == (
        "alice@customer.example",
        "bob@customer.example",
        "boss@example.com",
    )


def test_html_inline_image_and_attachment_structure() -> None:
    d = draft(
        html='<p>Hello <b>Alice</b> <img src="cid:logo@pr"></p>',
        attachments=(
            mc.OutboundAttachment("logo.png", "image/png", PNG, content_id="logo@pr"),
            mc.OutboundAttachment("Rechnung März.pdf", "application/pdf", b"%PDF-1.4\n" * 50),
        ),
    )
    raw = mc.compose(d)
    msg = stdlib(raw)
    assert msg.get_content_type() == "multipart/mixed"
    alt, pdf = list(msg.iter_parts())
    assert alt.get_content_type() == "multipart/alternative"
    text, related = list(alt.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = list(related.iter_parts())
    assert html.get_content_type() == "text/html"
    assert image["Content-ID"] == "<logo@pr>" and image.get_content() == PNG
    assert pdf.get_filename() == "Rechnung März.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert sum(1 for p in msg.walk() if "MIME-Version" in p) == 1
    parsed = parse_message(raw, cid_url=lambda cid: f"/cid/{cid}")
    assert parsed.html is not None and "/cid/logo@pr" in parsed.html
    byname = {a.filename: a for a in parsed.attachments}
    assert byname["logo.png"].inline and byname["logo.png"].content_id == "logo@pr"
    assert byname["Rechnung März.pdf"].data == b"%PDF-1.4\n" * 50
    assert not byname["Rechnung März.pdf"].inline


def test_html_alternative_without_attachments() -> None:
    msg = stdlib(mc.compose(draft(html="<p>Hi</p>")))
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_same_draft_same_bytes() -> None:
    d = draft(html="<p>x</p>", attachments=(mc.OutboundAttachment("a.txt", "text/plain", b"a"),))
    assert mc.compose(d) == mc.compose(d)


def test_content_cannot_break_the_boundaries() -> None:
    seedless = mc.compose(draft(html="<p>x</p>"))
    boundary = stdlib(seedless).get_boundary()
    assert boundary is not None
    tricky = draft(html="<p>x</p>", text=f"--{boundary}\nnot a part\n")
    msg = stdlib(mc.compose(tricky))
    assert msg.get_boundary() != boundary
    assert len(list(msg.iter_parts())) == 2


def test_automatic_mail_is_marked_per_rfc_3834() -> None:
    raw = mc.compose(draft(automatic=True))
    msg = stdlib(raw)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert parse_message(raw).auto_submitted == "auto-replied"


def test_header_injection_is_flattened() -> None:
    raw = mc.compose(draft(subject="Hi\r\nBcc: evil@example.com"))
    assert b"\r\nBcc:" not in raw
    assert stdlib(raw)["Subject"] == "Hi Bcc: evil@example.com"


def test_non_ascii_subject_and_name_are_encoded() -> None:
    raw = mc.compose(draft(subject="Grüße [#PR-7]", from_name="Équipe Support"))
    assert raw.isascii()
    parsed = parse_message(raw)
    assert parsed.subject == "Grüße [#PR-7]"
    assert parsed.from_ is not None and parsed.from_.name == "Équipe Support"


def test_limits_raise_named_errors_that_say_what_to_do() -> None:
    limits = mc.Limits(max_recipients=2, max_attachments=1, max_message_size=2000)
    with pytest.raises(TooManyRecipientsError, match="max_recipients"):
        mc.compose(draft(cc=("b@x.example", "c@x.example")), limits)
    atts = tuple(mc.OutboundAttachment(f"{i}.txt", "text/plain", b"x") for i in range(2))
    with pytest.raises(TooManyAttachmentsError, match="max_attachments"):
        mc.compose(draft(attachments=atts), limits)
    big = (mc.OutboundAttachment("big.bin", "application/octet-stream", b"\0" * 5000),)
    with pytest.raises(MessageTooLargeError, match="max_message_size") as err:
        mc.compose(draft(attachments=big), limits)
    assert isinstance(err.value, OutboundError)
    with pytest.raises(NoRecipientError):
        mc.compose(draft(to=()))
    with pytest.raises(InvalidAddressError, match="user@domain"):
        mc.compose(draft(to=("not an address",)))
    with pytest.raises(InvalidAddressError):
        mc.compose(draft(to=("a@b.example\r\nBcc: x@y.example",)))


def test_only_bcc_gets_undisclosed_recipients() -> None:
    msg = stdlib(mc.compose(draft(to=(), bcc=("x@y.example",))))
    assert msg["To"] == "undisclosed-recipients:;"


# -- Thread-Index ------------------------------------------------------------------


def test_thread_index_header_block_layout() -> None:
    index = mc.new_thread_index(AT, GUID)
    assert len(index) == 22 and index[0] == 0x01
    assert index[6:] == GUID
    ft = mc.filetime(AT)
    assert int.from_bytes(index[1:6], "big") == ft >> 24  # the 40 high bits, big-endian
    # 1601-01-01 is FILETIME 0; one second is 10^7 units.
    assert mc.filetime(datetime(1601, 1, 1, tzinfo=UTC)) == 0
    assert mc.filetime(datetime(1601, 1, 1, 0, 0, 1, tzinfo=UTC)) == 10_000_000


def test_thread_index_child_blocks_encode_the_time_since_the_header() -> None:
    root = mc.new_thread_index(AT, GUID)
    one = mc.child_thread_index(root, AT + timedelta(hours=2), 0xAB)
    two = mc.child_thread_index(one, AT + timedelta(days=3), 0x01)
    assert len(one) == 27 and len(two) == 32 and two.startswith(one)
    assert one[-1] == 0xAB
    info = mc.parse_thread_index(two)
    assert info.guid == GUID
    start = info.started_filetime
    for offset, expected in zip(
        info.reply_offsets, (timedelta(hours=2), timedelta(days=3)), strict=True
    ):
        wanted = mc.filetime(AT + expected) - start
        assert wanted - (1 << 18) < offset <= wanted  # 2^18 units: about 26 ms resolution
    assert not (two[22] & 0x80)  # delta code 0: less than 1.7 years
    far = mc.child_thread_index(root, AT + timedelta(days=800), 0)
    assert far[22] & 0x80  # delta code 1: coarser units
    far_info = mc.parse_thread_index(far)
    wanted = mc.filetime(AT + timedelta(days=800)) - start
    assert wanted - (1 << 23) < far_info.reply_offsets[0] <= wanted


def test_thread_index_header_round_trips_through_base64() -> None:
    raw = mc.compose(draft())
    value = stdlib(raw)["Thread-Index"]
    decoded = mc.decode_thread_index(str(value))
    assert decoded == draft().thread_index
    assert base64.b64encode(decoded or b"").decode() == value
    assert mc.decode_thread_index("not base64!") is None
    assert mc.decode_thread_index(base64.b64encode(b"\x01" * 10).decode()) is None
    with pytest.raises(ValueError):
        mc.child_thread_index(b"\x01\x02", AT, 0)


# -- reply helpers ---------------------------------------------------------------------


def test_references_chain_follows_rfc_5322() -> None:
    assert mc.references_chain("c@x", ("a@x", "b@x")) == ("a@x", "b@x", "c@x")
    assert mc.references_chain("c@x", (), ("b@x",)) == ("b@x", "c@x")
    assert mc.references_chain("c@x") == ("c@x",)
    assert mc.references_chain(None) == ()
    long = tuple(f"m{i}@x" for i in range(50))
    chain = mc.references_chain("last@x", long, limit=10)
    assert len(chain) == 10 and chain[0] == "m0@x" and chain[-1] == "last@x"


def test_reply_subject_and_topic() -> None:
    assert mc.reply_subject("Printer on fire", "PR-7") == "Re: Printer on fire [#PR-7]"
    assert mc.reply_subject("RE: AW: Printer [#PR-7]", "PR-7") == "Re: Printer [#PR-7]"
    assert mc.reply_subject("", "PR-7") == "Re: [#PR-7]"
    assert mc.thread_topic("Re: Printer on fire [#PR-7]", "PR-7") == "Printer on fire"


def test_render_template_fills_known_fields_only() -> None:
    out = mc.render_template(
        "Hi {name}, about “{subject}”: reference {reference}. {unknown} {name.__class__}",
        reference="PR-12",
        name="Alice",
        subject="Printer",
    )
    assert out == "Hi Alice, about “Printer”: reference PR-12. {unknown} {name.__class__}"


def test_recipients_keep_their_display_names() -> None:
    raw = mc.compose(
        draft(to=("Alice Customer <alice@customer.example>",), cc=("Jürgen Müller <j@Kunde.example>", "b@x.example"))
    )
    assert raw.isascii()
    msg = stdlib(raw)
    assert msg["To"] == "Alice Customer <alice@customer.example>"
    assert msg["Cc"] == "Jürgen Müller <j@kunde.example>, b@x.example"
    assert mc.envelope_recipients(draft()) == ("alice@customer.example",)


# -- the message answered: quote and forward -------------------------------------------

ORIGINAL = mc.Original(
    sender="Ada <ada@customer.example>",
    date=AT,
    subject="Printer on fire",
    to="support@example.com",
    text="Line one\r\n\r\n> older\nlast\n",
    html="<p>Line <b>one</b></p>",
)


def test_quote_block_prefixes_lines_and_wraps_html_in_a_cite_blockquote() -> None:
    text, html = mc.quote_block(ORIGINAL)
    intro = "On Fri, 20 Nov 2026 at 12:00 UTC, Ada <ada@customer.example> wrote:"
    assert text == intro + "\n> Line one\n>\n> > older\n> last\n"
    assert html == (
        '<div class="pr-quote-intro">On Fri, 20 Nov 2026 at 12:00 UTC, '
        "Ada &lt;ada@customer.example&gt; wrote:</div>"
        '<blockquote type="cite"><p>Line <b>one</b></p></blockquote>'
    )


def test_quote_of_hostile_header_values_stays_one_escaped_line() -> None:
    evil = replace(ORIGINAL, sender="<script>x</script>\r\nBcc: a@b.example", html=None, date=None)
    text, html = mc.quote_block(evil)
    assert text.splitlines()[0] == "<script>x</script> Bcc: a@b.example wrote:"
    assert "<script>" not in html and "&lt;script&gt;" in html
    # Without HTML the text becomes escaped blocks, one per line.
    assert "<div>&gt; older</div>" in html and "<div><br></div>" in html


def test_forward_block_names_the_original_headers_then_its_body() -> None:
    text, html = mc.forward_block(replace(ORIGINAL, cc="Bob <bob@partner.example>"))
    assert text == (
        "---------- Forwarded message ---------\n"
        "From: Ada <ada@customer.example>\n"
        "Date: Fri, 20 Nov 2026 12:00:00 +0000\n"
        "Subject: Printer on fire\n"
        "To: support@example.com\n"
        "Cc: Bob <bob@partner.example>\n"
        "\n"
        "Line one\r\n\r\n> older\nlast\n"
    )
    assert html.startswith(
        '<div class="pr-forward">---------- Forwarded message ---------<br>'
        "From: Ada &lt;ada@customer.example&gt;<br>"
    )
    assert html.endswith("<div><br></div><div><p>Line <b>one</b></p></div>")


def test_append_block_keeps_an_empty_line_and_leaves_text_only_mail_text_only() -> None:
    block = ("QUOTE\n", "<blockquote>Q</blockquote>")
    assert mc.append_block("Hi\n\n", "<div>Hi</div>", block) == (
        "Hi\n\nQUOTE\n",
        "<div>Hi</div><div><br></div><blockquote>Q</blockquote>",
    )
    assert mc.append_block("Hi", None, block) == ("Hi\n\nQUOTE\n", None)
    assert mc.append_block("", "", block) == ("QUOTE\n", "<blockquote>Q</blockquote>")


def test_from_display_name_is_rfc2047_when_not_ascii_and_cannot_add_headers() -> None:
    raw = mc.compose(draft(from_name="Süpport, Team\r\nBcc: x@evil.example"))
    head = raw.split(b"\r\n\r\n")[0]
    assert b"\r\nBcc:" not in head
    msg = email.message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    [addr] = msg["From"].addresses
    assert (addr.display_name, addr.addr_spec) == (
        "Süpport, Team Bcc: x@evil.example",
        "support@example.com",
    )
    assert mc.display_address("Example Support", "support@example.com") == (
        "Example Support <support@example.com>"
    )
    assert mc.display_address("", "support@example.com") == "support@example.com"
    # The same for a recipient's name: still one address when parsed back.
    raw = mc.compose(draft(to=('"Jörg, Bcc: x@evil.example" <joerg@customer.example>',)))
    to = email.message_from_bytes(raw, policy=default)["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == [
        ("Jörg, Bcc: x@evil.example", "joerg@customer.example")
    ]

"""parse_message on small hand-written messages, one behaviour per test."""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import timedelta

from postroom.mail.parse import decode_bytes, parse_message

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40


def msg(headers: str, body: str = "hello\n") -> bytes:
    return (headers.strip("\n") + "\n\n" + body).replace("\n", "\r\n").encode("latin-1")


# --- headers --------------------------------------------------------------------


def test_rfc2047_subject_utf8_base64_and_latin1_q() -> None:
    raw = msg(
        "Subject: =?utf-8?B?QmVzdGVsbHVuZyDDvGJlciA1MOKCrA==?=\n"
        " =?iso-8859-1?Q?_f=FCr_Sie?=\n"
        "From: a@example.com\n"
    )
    assert parse_message(raw).subject == "Bestellung über 50€ für Sie"


def test_rfc2047_names_in_addresses_and_lowercase_domain() -> None:
    raw = msg(
        "From: =?iso-8859-1?Q?J=FCrgen_M=FCller?= <Juergen.M@Example.DE>\n"
        "To: =?utf-8?B?Wm/DqyBEdXBvbnQ=?= <zoe@EXAMPLE.org>, Plain <p@x.test>\n"
        'Cc: "Doe, John" <jd@Example.com>\n'
    )
    parsed = parse_message(raw)
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.address) == ("Jürgen Müller", "Juergen.M@example.de")
    assert [(a.name, a.address) for a in parsed.to] == [
        ("Zoë Dupont", "zoe@example.org"),
        ("Plain", "p@x.test"),
    ]
    assert [(a.name, a.address) for a in parsed.cc] == [("Doe, John", "jd@example.com")]


def test_encoded_word_with_unknown_charset_does_not_raise() -> None:
    parsed = parse_message(msg("Subject: =?x-bogus?Q?caf=E9?=\n"))
    assert parsed.subject == "café"  # fallback: utf-8 fails, cp1252 decodes é


def test_raw_8bit_header_decodes_utf8_then_cp1252() -> None:
    utf8 = b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nx"
    latin = b"Subject: Gr\xfc\xdfe\r\n\r\nx"
    assert parse_message(utf8).subject == "Grüße"
    assert parse_message(latin).subject == "Grüße"


def test_date_keeps_its_zone() -> None:
    parsed = parse_message(msg("Date: Tue, 7 Apr 2026 10:00:01 -0430\n"))
    assert parsed.date is not None
    assert parsed.date.utcoffset() == -timedelta(hours=4, minutes=30)
    assert (parsed.date.hour, parsed.date.minute) == (10, 0)


def test_bad_date_is_none_with_defect() -> None:
    parsed = parse_message(msg("Date: next Tuesday-ish\n"))
    assert parsed.date is None
    assert any("Date" in d for d in parsed.defects)


def test_message_ids_without_brackets_folded_and_bare() -> None:
    raw = msg(
        "Message-ID: <abc.123@mail.example.com>\n"
        "In-Reply-To: <parent@example.com> (Jane's message)\n"
        "References: <r1@example.com>\n"
        "\t<r2@example.com>\n"
        "  <r3@example.com>\n"
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "abc.123@mail.example.com"
    assert parsed.in_reply_to == ("parent@example.com",)
    assert parsed.references == ("r1@example.com", "r2@example.com", "r3@example.com")
    bare = parse_message(msg("Message-ID: bare-id@example.com\nReferences: a@x b@y\n"))
    assert bare.message_id == "bare-id@example.com"
    assert bare.references == ("a@x", "b@y")


def test_auto_submitted_lower_cased() -> None:
    parsed = parse_message(msg("Auto-Submitted: Auto-Replied\n"))
    assert parsed.auto_submitted == "auto-replied"
    assert parse_message(msg("Subject: x\n")).auto_submitted is None


def test_headers_decoded_in_order() -> None:
    raw = msg("X-B: 2\nSubject: =?utf-8?Q?h=C3=A9?=\nX-A: 1\n")
    parsed = parse_message(raw)
    assert list(parsed.headers) == [("X-B", "2"), ("Subject", "hé"), ("X-A", "1")]
    assert parsed.header("x-a") == "1"


# --- bodies ---------------------------------------------------------------------


def test_unknown_charset_decoded_with_fallback_and_defect() -> None:
    raw = b"Content-Type: text/plain; charset=x-klingon\r\n\r\nCaf\xc3\xa9\r\n"
    parsed = parse_message(raw)
    assert parsed.text.strip() == "Café"
    assert any("unknown charset" in d for d in parsed.defects)


def test_mislabelled_utf8_falls_back_to_cp1252_with_defect() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nM\xfcller \x80 5\r\n"
    parsed = parse_message(raw)
    assert parsed.text.strip() == "Müller € 5"
    assert any("declared charset" in d for d in parsed.defects)


def test_utf7_and_utf16_parts() -> None:
    utf7 = b"Content-Type: text/plain; charset=utf-7\r\n\r\nHi Mom -+Jjo--!\r\n"
    assert parse_message(utf7).text.strip() == "Hi Mom -☺-!"
    payload = base64.b64encode("Grüße ☺".encode("utf-16")).decode()
    utf16 = (
        "Content-Type: text/plain; charset=utf-16\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{payload}\r\n"
    ).encode()
    assert parse_message(utf16).text == "Grüße ☺"


def test_bad_base64_recorded_as_defect_and_decoded_best_effort() -> None:
    raw = msg(
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
        "SGVsbG8gd29y*bGQ\n",  # '*' is not base64 and the padding is missing
    )
    parsed = parse_message(raw)
    assert parsed.text.startswith("Hello wor")
    assert any("base64" in d for d in parsed.defects)


def test_quoted_printable_body() -> None:
    raw = msg(
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n",
        "Gr=FC=DFe, soft=\nbreak\n",
    )
    assert parse_message(raw).text.strip() == "Grüße, softbreak"


ALTERNATIVE = msg(
    'From: a@example.com\nContent-Type: multipart/alternative; boundary="b1"\n',
    "--b1\nContent-Type: text/plain; charset=utf-8\n\nPlain version\n"
    "--b1\nContent-Type: text/html; charset=utf-8\n\n"
    "<p onclick='x()'>HTML <b>version</b></p><script>alert(1)</script>\n"
    "--b1--\n",
)


def test_multipart_alternative_picks_plain_text_and_sanitized_html() -> None:
    parsed = parse_message(ALTERNATIVE)
    assert parsed.text.strip() == "Plain version"
    assert parsed.html is not None
    assert "<b>version</b>" in parsed.html
    assert "script" not in parsed.html and "onclick" not in parsed.html
    assert parsed.attachments == ()


def test_html_only_message_gets_text_from_html_and_reply_without_quote() -> None:
    raw = msg(
        "Content-Type: text/html; charset=utf-8\n",
        "<div>Thanks, that fixed it!</div>"
        "<div class='gmail_quote'>On Mon, Jane wrote:<blockquote>Try a restart</blockquote></div>",
    )
    parsed = parse_message(raw)
    assert "Thanks, that fixed it!" in parsed.text
    assert "Try a restart" in parsed.text
    assert parsed.reply_text == "Thanks, that fixed it!"


RELATED = msg(
    'Content-Type: multipart/related; boundary="rel"\n',
    "--rel\nContent-Type: text/html; charset=utf-8\n\n"
    '<p>Logo: <img src="cid:logo@example.com"></p>\n'
    "--rel\nContent-Type: image/png\nContent-ID: <logo@example.com>\n"
    "Content-Transfer-Encoding: base64\n\n" + base64.b64encode(PNG).decode() + "\n--rel--\n",
)


def test_multipart_related_cid_image_is_inline_attachment_and_rewritten() -> None:
    parsed = parse_message(RELATED, cid_url=lambda cid: f"/att/{cid}")
    assert parsed.html is not None
    assert 'src="/att/logo@example.com"' in parsed.html
    [image] = parsed.attachments
    assert image.content_id == "logo@example.com"
    assert image.inline is True
    assert image.content_type == "image/png"
    assert image.sniffed_type == "image/png"
    assert image.size == len(PNG)
    assert image.sha256 == hashlib.sha256(PNG).hexdigest()
    assert image.filename == "attachment-1.png"


def test_cid_kept_when_no_cid_url() -> None:
    parsed = parse_message(RELATED)
    assert parsed.html is not None and 'src="cid:logo@example.com"' in parsed.html


def test_rfc2231_filenames_with_charset_and_continuations() -> None:
    raw = msg(
        'Content-Type: multipart/mixed; boundary="m"\n',
        "--m\nContent-Type: text/plain\n\nbody\n"
        "--m\nContent-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=utf-8''R%C3%A9sum%C3%A9.pdf\n\n%PDF-1.4\n"
        "--m\nContent-Type: application/octet-stream\n"
        "Content-Disposition: attachment;\n filename*0*=iso-8859-1''Gr%FC%DFe;\n"
        ' filename*1="-long-name.txt"\n\ndata\n'
        '--m\nContent-Type: text/plain; name="=?utf-8?B?w6TDtsO8LnR4dA==?="\n'
        "Content-Disposition: attachment\n\nencoded-word name\n"
        "--m--\n",
    )
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == [
        "Résumé.pdf",
        "Grüße-long-name.txt",
        "äöü.txt",
    ]
    assert parsed.attachments[0].sniffed_type == "application/pdf"
    assert parsed.attachments[0].inline is False


def test_nested_message_rfc822_is_attachment_with_parsed_message() -> None:
    inner = "From: inner@example.com\nSubject: Original order\n\nInner body\n"
    raw = msg(
        'Subject: Fwd\nContent-Type: multipart/mixed; boundary="outer"\n',
        "--outer\nContent-Type: text/plain\n\nSee attached.\n"
        "--outer\nContent-Type: message/rfc822\n\n" + inner + "--outer--\n",
    )
    parsed = parse_message(raw)
    assert parsed.text.strip() == "See attached."
    [attached] = parsed.attachments
    assert attached.content_type == "message/rfc822"
    assert attached.filename == "Original order.eml"
    assert attached.nested is not None
    assert attached.nested.subject == "Original order"
    assert attached.nested.text.strip() == "Inner body"


def test_hostile_filenames_are_made_safe() -> None:
    parts = "".join(
        "--m\nContent-Type: application/octet-stream\n"
        f'Content-Disposition: attachment; filename="{n}"\n\nx\n'
        for n in ("../../etc/passwd", "C:\\\\Windows\\\\evil.exe", "a\tb\x01c.txt", "")
    )
    raw = msg('Content-Type: multipart/mixed; boundary="m"\n', parts + "--m--\n")
    names = [a.filename for a in parse_message(raw).attachments]
    assert names == ["passwd", "evil.exe", "a bc.txt", "attachment-4.bin"]


def _tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    # TNEF attribute: level, id, type, length, data, 16-bit additive checksum (MS-OXTNEF 2.1.3).
    header = struct.pack("<BHHI", level, name, kind, len(data))
    return header + data + struct.pack("<H", sum(data) & 0xFFFF)


def build_tnef(filename: str, payload: bytes) -> bytes:
    return (
        struct.pack("<IH", 0x223E9F78, 0x0001)
        + _tnef_object(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))  # attTnefVersion
        + _tnef_object(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))  # attOemCodepage
        + _tnef_object(2, 0x9002, 0x0006, b"\x00" * 14)  # attAttachRendData: new attachment
        + _tnef_object(2, 0x8010, 0x0001, filename.encode() + b"\x00")  # attAttachTitle
        + _tnef_object(2, 0x800F, 0x0006, payload)  # attAttachData
    )


def _with_winmail(data: bytes) -> bytes:
    return msg(
        'Content-Type: multipart/mixed; boundary="m"\n',
        "--m\nContent-Type: text/plain\n\nSee attachment\n"
        '--m\nContent-Type: application/ms-tnef; name="winmail.dat"\n'
        "Content-Transfer-Encoding: base64\n\n" + base64.b64encode(data).decode() + "\n--m--\n",
    )


def test_tnef_winmail_dat_is_unpacked() -> None:
    parsed = parse_message(_with_winmail(build_tnef("report.pdf", b"%PDF-1.4 report")))
    [inner] = parsed.attachments
    assert inner.filename == "report.pdf"
    assert inner.data == b"%PDF-1.4 report"
    assert inner.content_type == "application/pdf"
    assert not parsed.defects


def test_broken_tnef_kept_as_original_with_defect() -> None:
    parsed = parse_message(_with_winmail(b"not a tnef stream at all"))
    [original] = parsed.attachments
    assert original.filename == "winmail.dat"
    assert any("TNEF" in d for d in parsed.defects)


def test_missing_closing_boundary_keeps_last_part() -> None:
    raw = msg(
        'Content-Type: multipart/mixed; boundary="m"\n',
        "--m\nContent-Type: text/plain\n\nbody\n--m\nContent-Type: image/png\n\nxyz",
    )
    parsed = parse_message(raw)
    assert parsed.text.strip() == "body"
    assert len(parsed.attachments) == 1
    assert any("never closed" in d for d in parsed.defects)


def test_reply_text_strips_quotes() -> None:
    raw = msg("Subject: x\n", "Yes please.\n\nOn Mon, 6 Apr 2026, Support wrote:\n> Want it?\n")
    parsed = parse_message(raw)
    assert parsed.reply_text == "Yes please."
    assert "Want it?" in parsed.text


def test_empty_and_garbage_input_never_raise() -> None:
    for raw in (b"", b"\r\n", b"\x00\xff" * 10, b"Content-Type: multipart/mixed\r\n\r\n--"):
        parsed = parse_message(raw)
        assert not any(d.startswith("parser failure") for d in parsed.defects)


def test_decode_bytes_rejects_non_text_codecs() -> None:
    # "base64" is a codec name too, but bytes->bytes: must not be used as a charset.
    assert decode_bytes(b"aGk=", "base64") == "aGk="


def test_deep_nesting_is_cut_with_a_defect_not_a_crash() -> None:
    body = "x\n"
    for level in range(300):
        body = (
            f'Content-Type: multipart/mixed; boundary="b{level}"\n\n'
            f"--b{level}\n{body}\n--b{level}--\n"
        )
    nested_messages = "Subject: leaf\n\nleaf\n"
    for _ in range(300):
        nested_messages = "Content-Type: message/rfc822\n\n" + nested_messages
    for raw in (
        msg("Subject: deep\n" + body.split("\n\n", 1)[0], body.split("\n\n", 1)[1]),
        nested_messages.encode(),
    ):
        parsed = parse_message(raw)
        assert not any(d.startswith("parser failure") for d in parsed.defects)
        assert any("too deep" in d for d in parsed.defects)

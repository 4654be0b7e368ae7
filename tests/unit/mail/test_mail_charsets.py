"""CJK and stateful charsets in headers and bodies, built with the stdlib and read
back with parse_message: the exact text must come out."""

from __future__ import annotations

import email.base64mime
import email.quoprimime
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mail.charsets import decode, decode_iso2022_jp_ms, jis_to_sjis
from postroom.mail.parse import parse_message

# (label as written in mail, Python codec that writes it, text)
CASES = [
    ("iso-2022-jp", "iso2022_jp", "注文番号の件について、至急ご確認ください。"),
    ("ISO-2022-JP", "iso2022_jp", "お問い合わせありがとうございます"),
    ("iso-2022-jp-2", "iso2022_jp_2", "注文の件について Grüße 한국"),
    ("iso-2022-jp-ext", "iso2022_jp_ext", "注文の件 ﾃｽﾄ"),
    ("iso-2022-kr", "iso2022_kr", "주문 번호에 대해 문의드립니다"),
    ("gb2312", "gb2312", "关于订单号的问题，请尽快确认。"),
    ("gbk", "gbk", "關於訂單的問題，请确认"),
    ("gb18030", "gb18030", "关于订单 𠀀 㐀 的问题"),
    ("big5", "big5", "關於訂單號碼的問題，請盡快確認。"),
    ("big5-hkscs", "big5hkscs", "香港增補字符集 𨋢"),
    ("shift_jis", "shift_jis", "注文番号の件について、至急ご確認ください。ﾃｽﾄ"),
    ("Shift_JIS", "cp932", "注文番号①の件 №１２"),  # labelled Shift_JIS, written by Windows
    ("cp932", "cp932", "注文番号①②の件 ㈱ Ⅳ"),
    ("euc-jp", "euc_jp", "注文番号の件についてﾃｽﾄ"),
    ("euc-kr", "euc_kr", "주문 번호에 대해 문의드립니다"),
    ("ks_c_5601-1987", "cp949", "주문 번호 똠방각하"),  # 똠: CP949 only, not EUC-KR
    ("gb2312", "gb18030", "订单 𠀀"),  # labelled GB2312, really GB18030
    ("big5", "big5hkscs", "訂單 𨋢"),  # labelled Big5, really Big5-HKSCS
]
IDS = [f"{label}-{codec}" for label, codec, _ in CASES]


def b_word(data: bytes, label: str) -> str:
    return email.base64mime.header_encode(data, label)


def q_word(data: bytes, label: str) -> str:
    return email.quoprimime.header_encode(data, label)


def message(subject: str, body: bytes, label: str | None, subtype: str = "plain") -> bytes:
    msg = EmailMessage()
    msg["From"] = "kunde@example.jp"
    msg["To"] = "support@example.org"
    params = {"charset": label} if label else {}
    msg.set_content(body, maintype="text", subtype=subtype, cte="base64", params=params)
    raw = msg.as_bytes()
    # The stdlib would re-encode a str Subject as UTF-8: put the words in as written.
    return raw.replace(b"MIME-Version", f"Subject: {subject}\r\nMIME-Version".encode(), 1)


@pytest.mark.parametrize(("label", "codec", "text"), CASES, ids=IDS)
@pytest.mark.parametrize("word", [b_word, q_word], ids=["B", "Q"])
def test_subject_and_text_body(label: str, codec: str, text: str, word: object) -> None:
    assert callable(word)
    data = text.encode(codec)
    parsed = parse_message(message(word(data, label), data, label))
    assert parsed.subject == text
    assert parsed.text == text
    assert not [d for d in parsed.defects if "charset" in d]


@pytest.mark.parametrize(("label", "codec", "text"), CASES, ids=IDS)
def test_html_body_with_charset_parameter(label: str, codec: str, text: str) -> None:
    html = f"<html><body><p>{text}</p></body></html>".encode(codec)
    parsed = parse_message(message("x", html, label, "html"))
    assert parsed.text.strip() == text
    assert parsed.html is not None and text in parsed.html


@pytest.mark.parametrize(("label", "codec", "text"), CASES, ids=IDS)
@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="{label}">',
        "<meta http-equiv=Content-Type content='text/html; charset={label}'>",
        '<META HTTP-EQUIV="content-type" CONTENT="text/html;charset=&quot;{label}&quot;">',
    ],
)
def test_html_body_with_charset_only_in_meta(label: str, codec: str, text: str, meta: str) -> None:
    head = "<html><head>" + meta.format(label=label) + "<style>p { margin: 0 }</style></head>"
    html = (head + f"<body><p>{text}</p></body></html>").encode(codec)
    parsed = parse_message(message("x", html, None, "html"))
    assert parsed.text.strip() == text
    assert not [d for d in parsed.defects if "charset" in d]


def test_iso_2022_jp_word_split_inside_an_escape_sequence() -> None:
    # RFC 2047 wants every word to stand alone; Outlook splits the bytes anywhere.
    text = "注文番号の件について"
    data = text.encode("iso2022_jp")
    for cut in (1, 2, 3, 4, 5, len(data) - 2, len(data) - 1):
        subject = b_word(data[:cut], "ISO-2022-JP") + "\r\n " + b_word(data[cut:], "iso-2022-jp")
        assert parse_message(message(subject, b"x", "us-ascii")).subject == text, cut


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from("日本語の件注文確認お問い合わせありがとうございますアイウ、。ABC 1"),
        min_size=1,
        max_size=30,
    ),
    cut=st.integers(min_value=0, max_value=200),
    word=st.sampled_from([b_word, q_word]),
)
def test_iso_2022_jp_words_split_anywhere(text: str, cut: int, word: object) -> None:
    assert callable(word)
    text = " ".join(text.split()) or "x"
    data = text.encode("iso2022_jp")
    cut = min(cut, len(data) - 1)
    first, second = data[:cut], data[cut:]
    subject = (word(first, "iso-2022-jp") + "\r\n " if first else "") + word(second, "iso-2022-jp")
    assert parse_message(message(subject, data, "iso-2022-jp")).subject == text


# --- ISO-2022-JP as Outlook writes it (CP50220) ----------------------------------


def sjis_to_jis(lead: int, trail: int) -> tuple[int, int]:
    """The inverse mapping, written independently of the parser's."""
    if lead >= 0xE0:
        lead -= 0x40
    row = (lead - 0x81) * 2 + 0x21
    if trail >= 0x9F:
        return row + 1, trail - 0x7E
    return row, trail - (0x20 if trail > 0x7F else 0x1F)


# Windows writes IBM extensions (CP932 0xFA-0xFC) as their NEC-selected twins
# (0xED-0xEE), which have JIS codes.
_NEC_SELECTED = {
    bytes((lead, trail)).decode("cp932", "replace"): bytes((lead, trail))
    for lead in (0xED, 0xEE)
    for trail in [*range(0x40, 0x7F), *range(0x80, 0xFD)]
}
_NEC_SELECTED.pop("\ufffd", None)


def cp50220(text: str) -> bytes:
    """ISO-2022-JP bytes as Windows writes them, through CP932."""
    out = bytearray()
    two_byte = False
    for char in text:
        data = char.encode("cp932")
        if data[0] >= 0xFA:
            data = _NEC_SELECTED[char]
        if len(data) == 1:
            if two_byte:
                out += b"\x1b(B"
                two_byte = False
            out += data
        else:
            if not two_byte:
                out += b"\x1b$B"
                two_byte = True
            out += bytes(sjis_to_jis(data[0], data[1]))
    if two_byte:
        out += b"\x1b(B"
    return bytes(out)


def test_jis_to_sjis_inverts_every_cp932_double_byte_code() -> None:
    checked = 0
    for lead in [*range(0x81, 0xA0), *range(0xE0, 0xF0)]:
        for trail in [*range(0x40, 0x7F), *range(0x80, 0xFD)]:
            if bytes((lead, trail)).decode("cp932", "replace") == "\ufffd":
                continue
            first, second = sjis_to_jis(lead, trail)
            assert 0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E
            assert jis_to_sjis(first, second) == (lead, trail)
            checked += 1
    assert checked > 7000


OUTLOOK = "①②③ №１ ㈱ Ⅰ ≒ 髙﨑 注文の件"


def test_outlook_iso_2022_jp_with_nec_and_ibm_extensions() -> None:
    data = cp50220(OUTLOOK)
    with pytest.raises(UnicodeDecodeError):
        data.decode("iso2022_jp")  # what Python alone makes of it
    parsed = parse_message(message(b_word(data, "iso-2022-jp"), data, "iso-2022-jp"))
    assert parsed.subject == OUTLOOK
    assert parsed.text == OUTLOOK
    assert parsed.defects == ()


def test_outlook_iso_2022_jp_html_part() -> None:
    data = cp50220(f"<p>{OUTLOOK}</p>")
    parsed = parse_message(message("x", data, "ISO-2022-JP", "html"))
    assert parsed.text.strip() == OUTLOOK


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x1b$B%F%9%H\x1b(B \x1b(I\x43\x3d\x44\x1b(B", "テスト ﾃｽﾄ"),  # JIS X 0201 kana
        (b"\x1b$B%F\x0e\x43\x3d\x0f%H\x1b(B", "テﾃｽト"),  # SO/SI kana (CP50221)
        (b"\x1b&@\x1b$B%F%9%H\x1b(B", "テスト"),  # JIS X 0208-1990 prefix
        (b"\x1b$@%F%9%H\x1b(J!", "テスト!"),  # JIS C 6226-1978, then JIS Roman
        (b"\x1b$B-!\r\n-\"\x1b(B", "①\r\n②"),  # sloppy: line end in two-byte mode
    ],
)
def test_iso_2022_jp_ms_decoder(data: bytes, text: str) -> None:
    assert decode_iso2022_jp_ms(data) == (text, True)


def test_iso_2022_jp_ms_decoder_marks_what_it_cannot_read() -> None:
    text, clean = decode_iso2022_jp_ms(b"\x1b$B%F%\x1b(B ok \x1b$)Z")
    assert not clean and text.endswith(" ok ") and "\ufffd" in text


# --- no label, wrong label, unknown label ---------------------------------------


def test_raw_iso_2022_jp_in_headers_and_unlabelled_body() -> None:
    raw = (
        b"From: " + "山田".encode("iso2022_jp") + b" <yamada@example.jp>\r\n"
        b"Subject: " + "注文の件".encode("iso2022_jp") + b"\r\n\r\n"
        + "本文です".encode("iso2022_jp") + b"\r\n"
    )  # fmt: skip
    parsed = parse_message(raw)
    assert parsed.subject == "注文の件"
    assert parsed.from_ is not None and parsed.from_.name == "山田"
    assert parsed.text == "本文です\n"


def test_iso_2022_kr_body_labelled_us_ascii() -> None:
    data = "주문 번호".encode("iso2022_kr")
    parsed = parse_message(message("x", data, "us-ascii"))
    assert parsed.text == "주문 번호"


def test_iso_2022_jp_mislabelled_as_latin1_is_read_and_noted() -> None:
    data = "注文の件".encode("iso2022_jp")
    parsed = parse_message(message("x", data, "iso-8859-1"))
    assert parsed.text == "注文の件"
    assert any("is iso-2022-jp" in d for d in parsed.defects)


@pytest.mark.parametrize(
    ("data", "label", "text"),
    [
        ("注文の件".encode(), "x-unknown-cjk", "注文の件"),  # unknown: UTF-8 is tried
        ("注文の件".encode("iso2022_jp"), "x-unknown-cjk", "注文の件"),  # escapes sniffed
        ("Grüße".encode("cp1252"), "x-bogus", "Grüße"),
    ],
)
def test_unknown_labels_fall_back_with_a_defect(data: bytes, label: str, text: str) -> None:
    defects: list[str] = []
    assert decode(data, label, defects) == text
    assert defects and label in defects[0]


def test_bytes_invalid_in_the_declared_cjk_charset_are_noted() -> None:
    data = b"\x82\xa0\x81\x7f ok"  # not Shift_JIS, not CP932
    parsed = parse_message(message("x", data, "shift_jis"))
    assert "ok" in parsed.text
    assert any("does not decode as declared charset" in d for d in parsed.defects)

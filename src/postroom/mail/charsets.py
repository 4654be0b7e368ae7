"""Charsets: bytes of a header word or a body part -> text, never raising.

The job: map the charset labels mail really carries to Python codecs, decode with
the declared one, and when that fails fall back in an order that fits the label:

- **Supersets first.** Mail labelled GB2312 or GBK is routinely GB18030, Shift_JIS
  is Windows' CP932, EUC-KR is CP949 (Outlook's label for it is
  ``ks_c_5601-1987``), Big5 is CP950 or Big5-HKSCS. The declared codec is tried
  first, so text that is valid in it keeps its exact mapping.
- **ISO-2022-JP as Outlook writes it** (Windows' CP50220): Python's ``iso2022_jp``
  codecs reject the NEC and IBM extensions (circled digits, ``№``, roman numerals,
  IBM kanji) that Outlook sends under that label. Such text is decoded by
  switching character sets at each escape sequence and mapping every JIS X 0208
  pair to Shift_JIS, which CP932 decodes with those extensions.
- **Escape sequences without a label.** 7-bit text holding ISO-2022-JP (or -KR)
  escape sequences, labelled US-ASCII or not at all (old Japanese mailers write
  raw ISO-2022-JP even in headers), is decoded as such.
- Then UTF-8, then CP1252, then Latin-1, which always succeeds.

An unknown label, or bytes that do not decode as declared, add a defect.

What it must not do: any I/O, or keep state between calls.
"""

from __future__ import annotations

import codecs

# Labels seen in mail that Python does not know, or knows under a narrower codec.
_ALIASES = {
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
    "unknown": "utf-8",
    "default": "utf-8",
    "ansi_x3.4-1968": "ascii",
    "x-user-defined": "cp1252",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac_roman",
    # Korean: Windows' ks_c_5601-1987 is CP949 (Python maps the ks_c_5601 labels
    # to the narrower EUC-KR).
    "ks_c_5601-1987": "cp949",
    "ks_c_5601-1989": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "x-windows-949": "cp949",
    "windows-949": "cp949",
    # Japanese
    "x-sjis": "shift_jis",
    "windows-31j": "cp932",
    "x-ms-cp932": "cp932",
    "cp50220": "iso2022_jp",
    "cp50221": "iso2022_jp",
    "cp50222": "iso2022_jp",
    "iso-2022-jp-ms": "iso2022_jp",
    "x-euc-jp": "euc_jp",
    "euc-jp-ms": "euc_jp",
    "eucjp-ms": "euc_jp",
    # Chinese
    "x-gbk": "gbk",
    "cn-gb": "gb2312",
    "x-euc-cn": "gb2312",
    "gb_2312-80": "gb2312",
    "csgb2312": "gb2312",
    "windows-936": "gbk",
    "cn-big5": "big5",
    "x-x-big5": "big5",
}
# Tried, in order, when the declared codec fails: what senders mean by that label.
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "euc_kr": ("cp949",),
    "shift_jis": ("cp932",),
    "big5": ("cp950", "big5hkscs"),
    "cp950": ("big5hkscs",),
    "euc_jp": ("euc_jis_2004",),
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext"),
}
_ISO2022_JP = frozenset(
    {"iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_3", "iso2022_jp_ext",
     "iso2022_jp_2004"}
)  # fmt: skip
_ESC = 0x1B
_SO, _SI = 0x0E, 0x0F
# Escape sequences that switch ISO-2022-JP between its character sets.
_JP_ESCAPES = {
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",  # JIS X 0201 Roman: ASCII but for yen and overline
    b"\x1b(I": "kana",  # JIS X 0201 half-width katakana
    b"\x1b$@": "jis",  # JIS C 6226-1978
    b"\x1b$B": "jis",  # JIS X 0208-1983
    b"\x1b$(Q": "jis",  # JIS X 0213 plane 1: its JIS X 0208 part maps alike
    b"\x1b$(O": "jis",
}


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, or None for an unknown or non-text one."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # Only text encodings: "base64", "rot13", "zlib" etc. are codecs too.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode(data: bytes, label: str | None, defects: list[str] | None = None) -> str:
    """Text from bytes with the declared charset and the fallbacks of the docstring."""
    codec = codec_for(label)
    if b"\x1b" in data and data.isascii() and not (codec or "").startswith("iso2022"):
        sniffed = sniff_iso2022(data)
        if sniffed is not None:
            if defects is not None and codec is None and label:
                defects.append(f"unknown charset {label!r}; the text is {sniffed}")
            elif defects is not None and codec not in (None, "ascii", "utf-8"):
                defects.append(f"text declared as {label!r} is {sniffed}; decoded as such")
            return decode(data, sniffed, defects)
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, ValueError, LookupError):
            pass
        for wider in _SUPERSETS.get(codec, ()):
            try:
                return data.decode(wider)
            except UnicodeDecodeError:
                pass
        if codec in _ISO2022_JP:
            text, clean = decode_iso2022_jp_ms(data)
            if clean:
                return text
            if defects is not None:
                defects.append(f"text does not decode as declared charset {label!r}")
            return text
        if defects is not None:
            defects.append(f"text does not decode as declared charset {label!r}")
    elif label and defects is not None:
        defects.append(f"unknown charset {label!r}")
    if codec != "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def sniff_iso2022(data: bytes) -> str | None:
    """"iso-2022-jp" or "iso-2022-kr" when 7-bit ``data`` holds their escape sequences."""
    if b"\x1b$)C" in data:
        return "iso-2022-kr"
    if any(escape in data for escape in (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(I")):
        return "iso-2022-jp"
    return None


def jis_to_sjis(first: int, second: int) -> tuple[int, int]:
    """The Shift_JIS bytes of a JIS X 0208 pair (both bytes 0x21-0x7E).

    Rows 0x21-0x5E map to lead bytes 0x81-0x9F, rows 0x5F-0x7E to 0xE0-0xEF; an
    odd row takes the lower half of the trail bytes (0x40-0x9E, skipping 0x7F),
    an even row the upper half (0x9F-0xFC). Row 13 (NEC special characters) and
    rows 0x79-0x7C (NEC-selected IBM extensions) land where CP932 has them.
    """
    lead = (first - 0x21) // 2 + 0x81
    if lead > 0x9F:
        lead += 0x40
    if first % 2:
        trail = second + 0x1F
        if trail >= 0x7F:
            trail += 1
    else:
        trail = second + 0x7E
    return lead, trail


def decode_iso2022_jp_ms(data: bytes) -> tuple[str, bool]:
    """ISO-2022-JP with Microsoft's extensions (CP50220/CP50221), via CP932.

    Returns the text and whether every byte decoded (otherwise U+FFFD stands in).
    Unknown escape sequences are dropped; SO/SI switch half-width katakana on
    and off, as CP50221 writes them.
    """
    out: list[str] = []
    clean = True
    mode = "ascii"
    shifted = False  # between SO and SI
    pending = bytearray()  # Shift_JIS bytes of the current two-byte run
    i = 0
    n = len(data)

    def flush() -> None:
        nonlocal clean
        if pending:
            text = bytes(pending).decode("cp932", "replace")
            clean = clean and "\ufffd" not in text
            out.append(text)
            pending.clear()

    while i < n:
        byte = data[i]
        if byte == _ESC:
            for escape, target in _JP_ESCAPES.items():
                if data.startswith(escape, i):
                    flush()
                    mode = target
                    i += len(escape)
                    break
            else:
                # ESC & @ (a JIS X 0208-1990 prefix) and unknown sequences: skip the
                # ESC, its intermediate bytes and its final byte.
                flush()
                start = i
                i += 1
                while i < n and 0x20 <= data[i] <= 0x2F:
                    i += 1
                if i < n and 0x30 <= data[i] <= 0x7E:
                    i += 1
                clean = clean and data[start:i] == b"\x1b&@"
            continue
        if byte in (_SO, _SI):
            flush()
            shifted = byte == _SO
            i += 1
            continue
        if (mode == "kana" or shifted) and 0x21 <= byte <= 0x5F:
            pending.append(byte + 0x80)  # half-width katakana: 0xA1-0xDF in CP932
            i += 1
            continue
        if mode == "jis" and 0x21 <= byte <= 0x7E:
            if i + 1 < n and 0x21 <= data[i + 1] <= 0x7E:
                pending.extend(jis_to_sjis(byte, data[i + 1]))
                i += 2
            else:
                flush()
                out.append("\ufffd")
                clean = False
                i += 1
            continue
        flush()
        if byte < 0x80:
            out.append(chr(byte))
        else:
            out.append("\ufffd")
            clean = False
        i += 1
    flush()
    return "".join(out), clean

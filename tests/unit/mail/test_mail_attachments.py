"""safe_filename and sniff_type."""

from __future__ import annotations

import pytest

from postroom.mail.attachments import safe_filename, sniff_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\evil.exe", "evil.exe"),
        ("C:evil.exe", "evil.exe"),
        ("/abs/path/report.pdf", "report.pdf"),
        (".htaccess", "htaccess"),
        ("...hidden.txt", "hidden.txt"),
        ("bad\x00name\x1b.txt", "badname.txt"),
        ("inv\u202eexe.pdf", "invexe.pdf"),
        ("what?<>|*.txt", "what_____.txt"),
        ("trailing. . .", "trailing"),
        ("CON.txt", "_CON.txt"),
        ("lpt1", "_lpt1"),
        ("Résumé.pdf", "Résumé.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, "application/octet-stream", 1) == expected


@pytest.mark.parametrize("name", [None, "", "   ", "../", "\x01\x02", "..."])
def test_fallback_name_uses_index_and_content_type(name: str | None) -> None:
    assert safe_filename(name, "image/png", 3) == "attachment-3.png"
    assert safe_filename(name, "application/x-unknown", 2) == "attachment-2.bin"


def test_long_names_keep_extension() -> None:
    result = safe_filename("a" * 500 + ".pdf", "application/pdf", 1)
    assert len(result) <= 120
    assert result.endswith(".pdf")


def test_sniff_type() -> None:
    assert sniff_type(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20) == "image/png"
    assert sniff_type(b"%PDF-1.7\n") == "application/pdf"
    assert sniff_type(b"just text") is None
    assert sniff_type(b"") is None

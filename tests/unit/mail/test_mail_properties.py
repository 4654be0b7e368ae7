"""Property tests: the parser never raises, safe names are always safe."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.mail.attachments import safe_filename
from postroom.mail.parse import parse_message

from .test_mail_parse import ALTERNATIVE, RELATED, _with_winmail, build_tnef

SEEDS = [ALTERNATIVE, RELATED, _with_winmail(build_tnef("a.txt", b"hello"))]


def _no_internal_failure(raw: bytes) -> None:
    parsed = parse_message(raw)
    # parse_message has a last-resort handler; reaching it means a bug was hidden.
    assert not any(d.startswith("parser failure") for d in parsed.defects), parsed.defects


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_fail(raw: bytes) -> None:
    _no_internal_failure(raw)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            snippet = draw(
                st.sampled_from([b"\r\n", b"--", b"=?utf-8?B?", b"?=", b";", b'"', b"\x00", b":"])
            )
            data[pos:pos] = snippet
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "truncate":
            del data[pos:]
        elif op == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 200))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_never_fail(raw: bytes) -> None:
    _no_internal_failure(raw)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), st.text()), st.integers(1, 10_000))
def test_safe_filename_is_always_safe(name: str | None, index: int) -> None:
    result = safe_filename(name, "application/pdf", index)
    assert result
    assert "/" not in result and "\\" not in result
    assert not result.startswith(".")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in result)
    assert len(result) <= 120

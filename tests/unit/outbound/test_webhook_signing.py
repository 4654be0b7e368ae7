"""Webhook signatures: the header format, the HMAC over "<t>.<body>", and the
receiver's check (right secret, untouched body, timestamp within the tolerance)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from postroom.outbound.webhooks import signature, signature_header, verify

SECRET = "whsec_test-secret-0123456789"
BODY = b'{"id":7,"type":"conversation_created"}'


def test_the_header_carries_the_time_and_the_hmac_of_time_dot_body() -> None:
    header = signature_header(SECRET, 1_800_000_000, BODY)
    expected = hmac.new(SECRET.encode(), b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={expected}"
    assert signature(SECRET, 1_800_000_000, BODY) == expected


def test_a_fresh_signature_verifies() -> None:
    header = signature_header(SECRET, 1_800_000_000, BODY)
    assert verify(SECRET, header, BODY, now=1_800_000_010)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("another-secret-0123456789", BODY, 1_800_000_010),  # wrong secret
        (SECRET, BODY + b" ", 1_800_000_010),  # body changed
        (SECRET, BODY, 1_800_000_000 + 301),  # replayed after the tolerance
        (SECRET, BODY, 1_800_000_000 - 301),  # from the future
    ],
)
def test_a_changed_body_other_secret_or_old_timestamp_does_not(
    secret: str, body: bytes, now: int
) -> None:
    header = signature_header(SECRET, 1_800_000_000, BODY)
    assert not verify(secret, header, body, now=now)


def test_the_timestamp_is_signed_too() -> None:
    header = signature_header(SECRET, 1_800_000_000, BODY)
    moved = header.replace("t=1800000000", "t=1800000100")
    assert not verify(SECRET, moved, BODY, now=1_800_000_100)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=x,v1=abc", "t=1800000000", "garbage"])
def test_malformed_headers_do_not_verify(header: str) -> None:
    assert not verify(SECRET, header, BODY, now=1_800_000_000)

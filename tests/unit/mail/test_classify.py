"""Auto-generated mail kinds (RFC 3834 and friends) and bounce recognition."""

from __future__ import annotations

import pytest

from postroom.mail.classify import auto_kind, bounced_message_ids, is_bounce
from postroom.mail.parse import parse_message
from tests.mailfactory import make_email


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, "auto-submitted:auto-replied"),
        ({"Auto-Submitted": "auto-generated; owner-email=x@y"}, "auto-submitted:auto-generated"),
        ({"X-Autoreply": "yes"}, "autoreply"),
        ({"X-Autorespond": "Out of office"}, "autoreply"),
        ({"Precedence": "bulk"}, "precedence:bulk"),
        ({"Precedence": "junk"}, "precedence:junk"),
        ({"Precedence": "list"}, "precedence:list"),
        ({"List-Id": "<news.example.com>"}, "list"),
        ({"Return-Path": "<>"}, "null-sender"),
    ],
)
def test_auto_generated_kinds(headers: dict[str, str], kind: str) -> None:
    assert auto_kind(parse_message(make_email(headers=headers)), "someone@example.com") == kind


def test_person_mail_is_not_flagged() -> None:
    msg = parse_message(make_email(headers={"Auto-Submitted": "no", "Precedence": "first-class"}))
    assert auto_kind(msg, "alice@customer.example") is None


def test_null_envelope_sender_is_flagged() -> None:
    assert auto_kind(parse_message(make_email()), "") == "null-sender"


DSN = (
    b"From: MAILER-DAEMON@mx.example\r\nTo: support@example.com\r\nSubject: Undelivered\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type="delivery-status"; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
    b"Final-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Message-ID: <orig-1@postroom.local>\r\nFrom: support@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    b"--b--\r\n"
)


def test_bounce_is_recognized_and_names_the_original() -> None:
    msg = parse_message(DSN)
    assert is_bounce(msg)
    assert auto_kind(msg, "") == "bounce"
    assert bounced_message_ids(msg) == ("orig-1@postroom.local",)


def test_other_multipart_report_is_not_a_bounce() -> None:
    raw = DSN.replace(b'report-type="delivery-status"', b"report-type=disposition-notification")
    assert not is_bounce(parse_message(raw))

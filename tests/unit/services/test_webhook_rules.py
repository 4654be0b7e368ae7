"""The webhook rules shared by the API and the admin page: URLs, event types,
secrets, and which events a subscription matches."""

from __future__ import annotations

import pytest

from postroom.domain.errors import InvalidWebhookError
from postroom.services.admin import webhooks as svc


@pytest.mark.parametrize(
    "url",
    ["https://crm.example.com/hooks/postroom", "http://127.0.0.1:8080/x?y=1", " https://a.b/ "],
)
def test_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    assert svc.check_url(url) == url.strip()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "give the URL"),
        ("ftp://example.com/x", "https:// or http://"),
        ("javascript:alert(1)", "https:// or http://"),
        ("crm.example.com/hook", "https:// or http://"),
        ("https:///path", "names no host"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com:99999/", "cannot be read"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com/" + "a" * 2000, "longer than"),
    ],
)
def test_other_urls_are_refused_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(InvalidWebhookError, match=says):
        svc.check_url(url)


def test_event_types_are_known_kinds_or_star() -> None:
    assert svc.check_event_types(["offer_created", "conversation_closed", "offer_created"]) == [
        "offer_created",
        "conversation_closed",
    ]
    assert svc.check_event_types(["offer_created", "*"]) == ["*"]
    with pytest.raises(InvalidWebhookError, match="'offer_creatd' is not an event kind"):
        svc.check_event_types(["offer_creatd"])
    with pytest.raises(InvalidWebhookError, match="at least one"):
        svc.check_event_types([" "])


def test_matching() -> None:
    assert svc.matches(["*"], "anything_new")
    assert svc.matches(["offer_created"], "offer_created")
    assert not svc.matches(["offer_created"], "conversation_closed")


def test_secrets_given_are_long_enough_and_generated_ones_differ() -> None:
    with pytest.raises(InvalidWebhookError, match="16 to 200"):
        svc.check_secret("short")
    a, b = svc.new_secret(), svc.new_secret()
    assert a != b and a.startswith("whsec_") and len(a) > 30


def test_the_body_is_stable_json_with_the_documented_fields() -> None:
    kw = dict(
        delivery_id=3, webhook_id=2, kind="offer_created", event_id=9, at=None,
        conversation_id=5, data={"agent": "ann"},
    )
    one, two = svc.body_for(**kw), svc.body_for(**kw)  # type: ignore[arg-type]
    assert one == two
    assert one == (
        b'{"at":null,"conversation_id":5,"data":{"agent":"ann"},"delivery_id":3,'
        b'"id":9,"type":"offer_created","webhook_id":2}'
    )


def test_an_outgoing_delivery_never_shows_its_secret() -> None:
    out = svc.Outgoing(1, 2, "https://x.example/", secret="whsec_do-not-log")
    assert "do-not-log" not in repr(out)

"""Rendering a queue's signature (services/signatures.render): fields, escaping,
sanitizing, and the missing form derived from the other."""

from postroom.domain.routes import QueueConfig
from postroom.services.signatures import render

VALUES = {
    "agent_name": "Ann <Agent>",
    "queue_name": "support",
    "customer_name": "Ada",
    "reference": "PR-7",
}


def test_text_and_html_get_the_canned_response_fields() -> None:
    q = QueueConfig(
        "support",
        signature_text="{agent_name}\n{queue_name} team, re {reference} for {customer_name} {other}",
        signature_html="<p>{agent_name} &middot; {queue_name}</p>",
    )
    sig = render(q, VALUES)
    assert sig.text == "Ann <Agent>\nsupport team, re PR-7 for Ada {other}"
    # a value is text in the HTML, never markup
    assert sig.html == "<p>Ann &lt;Agent&gt; · support</p>"


def test_html_is_sanitized() -> None:
    q = QueueConfig(
        "support",
        signature_html='<p onclick="x()">Hi<script>alert(1)</script></p><img src="javascript:y">',
    )
    sig = render(q, VALUES)
    assert sig.html is not None
    assert "script" not in sig.html and "onclick" not in sig.html and "javascript" not in sig.html
    assert "Hi" in sig.html


def test_a_text_only_signature_gets_an_html_form_and_the_other_way_round() -> None:
    text_only = render(QueueConfig("support", signature_text="{agent_name}\n<Support>"), VALUES)
    assert text_only.html == "<p>Ann &lt;Agent&gt;<br>&lt;Support&gt;</p>"
    html_only = render(QueueConfig("support", signature_html="<p>Best,<br>{queue_name}</p>"), VALUES)
    assert html_only.text is not None
    assert html_only.text.split() == ["Best,", "support"]


def test_no_signature_renders_to_nothing() -> None:
    sig = render(QueueConfig("support"), VALUES)
    assert (sig.text, sig.html) == (None, None)

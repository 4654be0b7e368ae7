"""Queue signatures for the composer: the configured templates, rendered for an agent.

A queue's `signature_text` and `signature_html` ([[queues]] in the
configuration) use the fields canned responses use ({agent_name},
{queue_name}, {customer_name}, {reference}); they are filled in with the same
substitution (services/canned.py). The HTML is sanitized like every
HTML Postroom sends, and a signature configured in only one form gets the
other derived, so that any composer can insert it. It changes nothing and
knows nothing of HTTP.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from postroom.domain.routes import QueueConfig
from postroom.mail.quotes import html_to_text
from postroom.mail.sanitize import sanitize_html
from postroom.services import canned as canned_svc
from postroom.services.users import User


@dataclass(frozen=True, slots=True)
class Signature:
    text: str | None
    html: str | None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "html": self.html}


def render(queue: QueueConfig, values: Mapping[str, str]) -> Signature:
    """The queue's signature with the fields filled in. Pure.

    Values are escaped in the HTML (a customer named ``<b>`` stays text);
    unknown fields stay as written, as in canned responses. Without a
    signature both parts are None.
    """
    text, html = canned_svc.substitute_both(queue.signature_text, queue.signature_html, values)
    if html is not None:
        html = sanitize_html(html, cid_url=None)
    if text is None and html is not None:
        text = html_to_text(html).strip("\n")
    if html is None and text is not None:
        html = "<p>" + html_lib.escape(text).replace("\n", "<br>") + "</p>"
    return Signature(text, html)


def render_for(
    db: sa.Engine,
    user: User,
    queue: QueueConfig,
    conversation_id: int | None = None,
    *,
    prefix: str = "PR",
) -> Signature:
    """The queue's signature for `user`, in a conversation they can see (or a new email)."""
    values = canned_svc.substitution_values(
        db, user, conversation_id, queue=queue.name, prefix=prefix
    )
    return render(queue, values)

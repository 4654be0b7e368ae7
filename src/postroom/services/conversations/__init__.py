"""Conversations as people read them, one job per module:

* `access` — the access rule (who may see which conversation) and stream audiences;
* `reads` — the filtered list and one conversation with its messages;
* `browse` — finding conversations: filters, full-text search, sorts, cursors;
* `customer` — the customer panel: the sender's and their domain's conversations;
* `origins` — why an offer is being made, for the offer banner;
* `drafts` — drafts and uploads, with their limits;
* `events` — the events a stream sends and which a user may see;
* `wrapup` — wrap-up codes and notes.

Nothing here changes a conversation's state (that is the router's, through
services/agents.py) and nothing knows of HTTP. The names below are the public API;
callers import this package (`from postroom.services import conversations`).
"""

from __future__ import annotations

from postroom.services.conversations.access import (
    Holder,
    audiences,
    ensure_visible,
    holder,
    visible_clause,
    visible_ids,
)
from postroom.services.conversations.browse import BrowseFilter, InvalidCursor, Page, browse
from postroom.services.conversations.common import HELD, STATES
from postroom.services.conversations.customer import customer_panel
from postroom.services.conversations.drafts import (
    LimitExceeded,
    check_limits,
    delete_draft,
    get_draft,
    owned_uploads,
    save_draft,
    save_upload,
    upload_for_download,
)
from postroom.services.conversations.events import (
    STREAM_KINDS,
    event_json,
    event_visible_to,
    events_after,
    last_event_id,
    visible_events,
)
from postroom.services.conversations.origins import offer_origins
from postroom.services.conversations.reads import (
    ConversationFilter,
    attachment_for_download,
    customer_and_queue,
    get_conversation,
    list_conversations,
    message_delivery,
)
from postroom.services.conversations.wrapup import (
    check_wrapup_code,
    record_wrapup_notes,
    wrapup_notes,
)

__all__ = [
    "HELD",
    "STATES",
    "STREAM_KINDS",
    "BrowseFilter",
    "ConversationFilter",
    "Holder",
    "InvalidCursor",
    "LimitExceeded",
    "Page",
    "attachment_for_download",
    "audiences",
    "browse",
    "check_limits",
    "check_wrapup_code",
    "customer_and_queue",
    "customer_panel",
    "delete_draft",
    "ensure_visible",
    "event_json",
    "event_visible_to",
    "events_after",
    "get_conversation",
    "get_draft",
    "holder",
    "last_event_id",
    "list_conversations",
    "message_delivery",
    "offer_origins",
    "owned_uploads",
    "record_wrapup_notes",
    "save_draft",
    "save_upload",
    "upload_for_download",
    "visible_clause",
    "visible_events",
    "visible_ids",
    "wrapup_notes",
]

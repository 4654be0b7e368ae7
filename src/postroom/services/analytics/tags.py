"""The conversation tags projection: tags from `conversation_created` events into
`analytics_conversation_tags`.

The job: `TagSink` is a `Sink` of the analytics projector (projector.py): a
conversation's tags (the rules' `tags` action, which intake writes on the
conversation and its `conversation_created` event) become one row per tag, keyed
like the other analytics tables (``c<id>``), in the projector's transaction. The
aggregates query joins the metric facts to it for the `tag` dimension.

What it must not do: write `events` or any table but its own, or know HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from postroom.analytics.details import EventRecord, key_of
from postroom.store.schema import analytics_conversation_tags

TAG_MAX = 100
_T = analytics_conversation_tags


def tags_of(e: EventRecord) -> tuple[str, tuple[str, ...]] | None:
    """(conversation key, its distinct tags) of a `conversation_created` record."""
    key = key_of(e)
    if e.kind != "conversation_created" or key is None:
        return None
    raw = (e.data or {}).get("tags") or []
    if not isinstance(raw, list):
        return key, ()
    tags = {str(t)[:TAG_MAX] for t in raw if isinstance(t, str) and t}
    return key, tuple(sorted(tags))


class TagSink:
    """Conversation tags, kept by the analytics projector."""

    def apply(self, conn: sa.Connection, taken: Sequence[EventRecord]) -> None:
        found: dict[str, tuple[str, ...]] = {}
        for e in taken:
            got = tags_of(e)
            if got is not None:
                found[got[0]] = got[1]
        if not found:
            return
        keys = sorted(found)
        for i in range(0, len(keys), 500):
            conn.execute(_T.delete().where(_T.c.conversation_key.in_(keys[i : i + 500])))
        rows = [{"conversation_key": k, "tag": t} for k, tags in found.items() for t in tags]
        if rows:
            conn.execute(_T.insert(), rows)

    def reset(self, conn: sa.Connection) -> None:
        conn.execute(_T.delete())

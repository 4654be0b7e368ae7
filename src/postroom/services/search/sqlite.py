"""The SQLite search adapter: the FTS5 table `message_fts` (migration 0014), one row
per message (rowid = messages.id), one column per indexed field, ranked by bm25
with the field weights below. Knows nothing of conversations or users.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from postroom.domain.search_query import Query, Term
from postroom.services.search.port import Document
from postroom.store.schema import messages

COLUMNS = ("subject", "sender", "recipients", "reference", "attachments", "body")
WEIGHTS = (10.0, 5.0, 3.0, 5.0, 3.0, 1.0)  # bm25 weight of each column, in order

_DELETE = sa.text("DELETE FROM message_fts WHERE rowid = :message_id")
_INSERT = sa.text(
    "INSERT INTO message_fts (rowid, subject, sender, recipients, reference, attachments, body)"
    " VALUES (:message_id, :subject, :sender, :recipients, :reference, :attachments, :body)"
)


def _phrase(term: Term) -> str:
    # Tokens are letters and digits only (domain/search_query.py), so a quoted FTS5
    # string of them is always valid: no operator or quote can reach the expression.
    return '"' + " ".join(term.words) + '"'


def match_expression(query: Query) -> str:
    """The FTS5 MATCH text for the query's words, phrases and to: terms."""
    parts = [_phrase(t) for t in query.terms]
    parts += ["recipients : " + _phrase(t) for t in query.recipients]
    return " AND ".join(parts)


class SqliteIndex:
    def index(self, conn: sa.Connection, docs: Sequence[Document]) -> None:
        if not docs:
            return
        conn.execute(_DELETE, [{"message_id": d.message_id} for d in docs])
        conn.execute(_INSERT, [d.row() for d in docs])

    def matches(self, query: Query) -> sa.FromClause:
        weights = ", ".join(str(w) for w in WEIGHTS)
        fts = sa.table("message_fts", sa.column("rowid"))
        hits = (
            sa.select(
                fts.c.rowid.label("message_id"),
                sa.literal_column(f"bm25(message_fts, {weights})").label("score"),
            )
            .select_from(fts)
            .where(sa.literal_column("message_fts").op("MATCH")(match_expression(query)))
            # bm25() works only in the query that reads the FTS table: keep the
            # planner from flattening it into the caller's joins.
            .cte("fts_hits")
            .prefix_with("MATERIALIZED")
        )
        return (
            sa.select(hits.c.message_id, messages.c.conversation_id, hits.c.score)
            .select_from(hits.join(messages, messages.c.id == hits.c.message_id))
            .subquery("hits")
        )

    def has_tag(self, tags: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
        each = sa.func.json_each(tags).table_valued("value")
        return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == tag))

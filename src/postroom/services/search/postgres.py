"""The PostgreSQL search adapter: the `messages.search_document` tsvector (migration
0014, with a GIN index), built with the `simple` configuration (no stemming, as on
SQLite) from the fields' tokens with weights A (subject), B (sender, reference,
attachment names), C (recipients) and D (text); ranked by ts_rank. Knows nothing
of conversations or users.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from postroom.domain.search_query import Query
from postroom.services.search.port import Document
from postroom.store.schema import messages

DOCUMENT_SQL = (
    "setweight(to_tsvector('simple', :subject), 'A')"
    " || setweight(to_tsvector('simple', :sender || ' ' || :reference || ' ' || :attachments),"
    " 'B')"
    " || setweight(to_tsvector('simple', :recipients), 'C')"
    " || setweight(to_tsvector('simple', :body), 'D')"
)
_UPDATE = sa.text(f"UPDATE messages SET search_document = {DOCUMENT_SQL} WHERE id = :message_id")


def tsquery(query: Query) -> sa.ColumnElement[Any]:
    """The tsquery of the query's words, phrases and to: terms (all must match)."""
    simple: sa.ColumnElement[Any] = sa.literal_column("'simple'::regconfig")
    parts: list[sa.ColumnElement[Any]] = [
        sa.func.phraseto_tsquery(simple, sa.cast(" ".join(t.words), sa.Text))
        for t in query.terms
    ]
    for t in query.recipients:
        # Tokens are letters and digits only: safe in to_tsquery's syntax.
        words = " <-> ".join(f"{w}:C" for w in t.words)
        parts.append(sa.func.to_tsquery(simple, sa.cast(words, sa.Text)))
    combined = parts[0]
    for p in parts[1:]:
        combined = combined.op("&&")(p)
    return combined


class PostgresIndex:
    def index(self, conn: sa.Connection, docs: Sequence[Document]) -> None:
        if docs:
            conn.execute(_UPDATE, [d.row() for d in docs])

    def matches(self, query: Query) -> sa.FromClause:
        tsq = tsquery(query)
        doc = messages.c.search_document
        return (
            sa.select(
                messages.c.id.label("message_id"),
                messages.c.conversation_id,
                (-sa.func.ts_rank(doc, tsq)).label("score"),
            )
            .where(doc.op("@@", return_type=sa.Boolean)(tsq))
            .subquery("hits")
        )

    def has_tag(self, tags: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
        found: sa.ColumnElement[bool] = sa.func.jsonb_exists(
            sa.cast(tags, postgresql.JSONB), tag, type_=sa.Boolean
        )
        return found

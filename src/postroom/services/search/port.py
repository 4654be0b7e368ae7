"""The search port: what an index stores for a message (`Document`), what every
adapter does (`SearchIndex`), and the adapter for a database (`for_dialect`).

Adapters receive only tokens (domain/search_query.py `tokens`), never what a person
typed, so no input can make a MATCH or tsquery expression fail. Scores are "lower
is better" on every adapter (FTS5's bm25 is negative, PostgreSQL's ts_rank is
negated). This module holds no SQL of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from postroom.domain.search_query import Query


@dataclass(frozen=True, slots=True)
class Document:
    """One message as indexed: each field as space-separated tokens."""

    message_id: int
    subject: str
    sender: str
    recipients: str
    reference: str
    attachments: str
    body: str

    def row(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "subject": self.subject,
            "sender": self.sender,
            "recipients": self.recipients,
            "reference": self.reference,
            "attachments": self.attachments,
            "body": self.body,
        }


class SearchIndex(Protocol):
    def index(self, conn: sa.Connection, docs: Sequence[Document]) -> None:
        """(Re)write the documents, in the caller's transaction."""

    def matches(self, query: Query) -> sa.FromClause:
        """Messages matching the query's words, phrases and to: terms: columns
        `message_id`, `conversation_id` and `score` (lower is better). Only for
        `query.has_text`."""

    def has_tag(self, tags: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
        """A conversation's JSON list of tags holds `tag`."""


def for_dialect(name: str) -> SearchIndex:
    """The adapter for a SQLAlchemy dialect name ("sqlite", "postgresql")."""
    if name == "postgresql":
        from postroom.services.search.postgres import PostgresIndex

        return PostgresIndex()
    from postroom.services.search.sqlite import SqliteIndex

    return SqliteIndex()

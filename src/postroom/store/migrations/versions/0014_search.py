"""search: the full-text index of messages, indexes for browsing, back-fill

SQLite gets the FTS5 table `message_fts` (one row per message, rowid = messages.id);
PostgreSQL the `messages.search_document` tsvector with a GIN index (the column
exists on SQLite too, always NULL, so both match store/schema.py). Every stored
message is indexed here, in batches; references are written with the default
prefix "PR".

Revision ID: 0014_search
Revises: 0012_analytics_intervals
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from postroom.domain.search_query import FIELDS, index_fields

revision = "0014_search"
down_revision = "0012_analytics_intervals"
branch_labels = None
depends_on = None

BATCH = 2000

# The same statements as services/search/sqlite.py and postgres.py (a migration
# keeps its own copy: it must not change when those do).
_FTS = (
    "CREATE VIRTUAL TABLE message_fts USING fts5("
    + ", ".join(FIELDS)
    + ", tokenize = 'unicode61 remove_diacritics 0')"
)
_SQLITE_INSERT = (
    "INSERT INTO message_fts (rowid, " + ", ".join(FIELDS) + ") VALUES (:message_id, "
    + ", ".join(":" + f for f in FIELDS) + ")"
)
_PG_UPDATE = (
    "UPDATE messages SET search_document = "
    "setweight(to_tsvector('simple', :subject), 'A')"
    " || setweight(to_tsvector('simple', :sender || ' ' || :reference || ' ' || :attachments),"
    " 'B')"
    " || setweight(to_tsvector('simple', :recipients), 'C')"
    " || setweight(to_tsvector('simple', :body), 'D') WHERE id = :message_id"
)


def _backfill(conn: sa.Connection, statement: str) -> None:
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, subject, sender, headers, text, thread_id FROM messages"
                " WHERE id > :last AND status IN ('processed', 'duplicate')"
                " ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            return
        ids = [int(r.id) for r in rows]
        names: dict[int, list[str]] = {}
        for mid, filename in conn.execute(
            sa.text(
                "SELECT message_id, filename FROM attachments WHERE message_id IN :ids"
                " ORDER BY message_id, position"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": ids},
        ):
            names.setdefault(int(mid), []).append(filename)
        batch: list[dict[str, Any]] = []
        for r in rows:
            headers = r.headers
            if isinstance(headers, str):
                headers = json.loads(headers)
            fields = index_fields(
                subject=r.subject,
                sender=r.sender,
                headers=headers,
                text=r.text,
                thread_id=r.thread_id,
                filenames=names.get(int(r.id), []),
                prefix="PR",
            )
            batch.append({"message_id": int(r.id), **fields})
        conn.execute(sa.text(statement), batch)
        last = ids[-1]


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column(
        "messages",
        sa.Column(
            "search_document", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql")
        ),
    )
    op.create_index(
        "ix_conversations_created_at_id", "conversations", ["created_at", "id"]
    )
    op.create_index("ix_thread_participants_address", "thread_participants", ["address"])
    if conn.dialect.name == "postgresql":
        _backfill(conn, _PG_UPDATE)
        op.create_index(
            "ix_messages_search_document",
            "messages",
            ["search_document"],
            postgresql_using="gin",
        )
    else:
        op.execute(_FTS)
        _backfill(conn, _SQLITE_INSERT)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.drop_index("ix_messages_search_document", table_name="messages")
    else:
        op.execute("DROP TABLE message_fts")
    op.drop_index("ix_thread_participants_address", table_name="thread_participants")
    op.drop_index("ix_conversations_created_at_id", table_name="conversations")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("search_document")

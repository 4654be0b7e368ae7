"""Migration 0014 indexes the messages stored before it, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from postroom.runtime.settings import Settings
from postroom.services.conversations.browse import BrowseFilter, browse
from postroom.services.users import User
from postroom.store import db

SUE = User(id="sue", name="Sue", email=None, role="supervisor")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_messages_stored_before_the_migration_are_found(any_settings: Settings) -> None:
    url = any_settings.effective_database_url
    engine = db.create_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # the session database is migrated: step back first
            cfg = db.alembic_config(url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0012_analytics_intervals")
    else:
        cfg = db.alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0012_analytics_intervals")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO threads (id, subject, created_at, last_activity_at)"
                " VALUES (7, 'Old', :at, :at)"
            ),
            {"at": AT},
        )
        conn.execute(
            sa.text(
                "INSERT INTO conversations (id, thread_id, state, queue, priority, skills, tags,"
                " created_at, enqueued_at) VALUES (3, 7, 'closed', 'support', 0, '[]', '[]',"
                " :at, :at)"
            ),
            {"at": AT},
        )
        conn.execute(
            sa.text(
                "INSERT INTO messages (id, direction, source, raw_sha256, raw_size, envelope_to,"
                " received_at, status, sender, subject, thread_id, conversation_id, text,"
                " headers) VALUES (5, 'in', 'import', :sha, 1, '[]', :at, 'processed',"
                " 'old@customer.example', 'Old mail', 7, 3, 'an antique gramophone',"
                " '[[\"To\", \"Desk <desk@example.com>\"]]')"
            ),
            {"at": AT, "sha": "0" * 64},
        )
    db.migrate(engine)
    for q in ("gramophone", "to:desk", "PR-7", '"old mail"', "customer"):
        found = browse(engine, SUE, BrowseFilter(q=q)).conversations
        assert [c["id"] for c in found] == [3], q
    engine.dispose()

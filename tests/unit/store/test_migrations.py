"""The Alembic migrations build exactly the schema store/schema.py declares."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from postroom.store import db
from postroom.store.schema import metadata


def test_migrated_database_matches_the_declared_schema(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": _not_the_search_index}
        )
        assert compare_metadata(context, metadata) == []
        # The full-text index (migration 0014) lives outside the metadata.
        names = set(sa.inspect(conn).get_table_names())
        assert "message_fts" in names


def _not_the_search_index(name: str | None, type_: str, _parents: object) -> bool:
    """SQLite's FTS5 table and its shadow tables are not declared in schema.py."""
    return not (type_ == "table" and (name or "").startswith("message_fts"))

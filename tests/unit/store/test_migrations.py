"""The Alembic migrations build exactly the schema store/schema.py declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from postroom.store import db
from postroom.store.schema import metadata


def test_migrated_database_matches_the_declared_schema(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []

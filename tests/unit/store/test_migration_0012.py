"""Migration 0012_analytics_intervals empties the analytics tables and the projector's
checkpoint, so the projector projects the event log again and fills the interval rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from postroom.store import db


def test_the_analytics_tables_are_emptied_and_events_kept(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    cfg = db.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010_analytics")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO events (id, at, kind, data) VALUES (1, :t, 'x', '{}')"),
                     {"t": now})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO analytics_checkpoint (id, last_event_id, gaps, updated_at) "
            "VALUES (1, 1, '{}', :t)"
        ), {"t": now})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO analytics_observations (conversation_key, metric, at, value) "
            "VALUES ('c1', 'nOffered', :t, 1.0)"
        ), {"t": now})  # fmt: skip
    db.migrate(engine)
    with engine.connect() as conn:
        count = "SELECT count(*) FROM "
        assert conn.execute(sa.text(count + "events")).scalar() == 1
        for table in ("analytics_checkpoint", "analytics_observations"):
            assert conn.execute(sa.text(count + table)).scalar() == 0
    engine.dispose()

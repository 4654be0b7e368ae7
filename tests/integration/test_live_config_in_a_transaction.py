"""The live configuration can be read while the same thread holds a write transaction
(the sender asks for queue names while it queues an acknowledgement): on SQLite the
read begins deferred instead of waiting for the write lock its own thread holds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from postroom.services.configuration import LiveConfig
from postroom.store import db
from postroom.store.schema import events


def test_a_refresh_inside_a_write_transaction_does_not_wait_for_it(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate(engine)
    live = LiveConfig(engine)
    try:
        with engine.begin() as conn:
            conn.execute(events.insert().values(at=datetime.now(UTC), kind="x", data={}))
            assert live.refresh() is not None  # used to wait 30 s, then fail: "database is locked"
    finally:
        engine.dispose()

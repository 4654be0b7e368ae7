"""Open the database: engine creation, SQLite pragmas, migrations on start.

Knows about dialects so nothing else has to. It does not define tables
(schema.py) or queries (repositories).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config


def _sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Autocommit at the driver level so that SQLAlchemy's "begin" listener can
    # issue BEGIN IMMEDIATE itself: deferred BEGIN fails read-then-write
    # transactions with "database is locked" under several writers.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


READ_ONLY = {"postroom_read_only": True}  # execution options of a read that must not wait


def _sqlite_begin(conn: sa.Connection) -> None:
    # A read-only connection (`conn.execution_options(**READ_ONLY)`) begins deferred: in
    # WAL mode it never waits for a writer — not even for a write transaction of its
    # own thread that is still open on another connection (which would wait forever).
    if conn.get_execution_options().get("postroom_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for `url`; SQLite files get WAL and BEGIN IMMEDIATE."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("postroom.store").joinpath("migrations"))
    )
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (runs on every start)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


LIKE_ESCAPE = "\\"


def like_escaped(text: str) -> str:
    """`text` for a LIKE pattern (with ESCAPE LIKE_ESCAPE): % and _ match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_contains(text: str) -> str:
    """A LIKE pattern finding `text` (lower-cased) literally anywhere; compare it
    with a lower-cased column and ESCAPE LIKE_ESCAPE."""
    return f"%{like_escaped(text.lower())}%"

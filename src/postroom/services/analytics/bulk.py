"""Bulk inserts for the analytics tables, through the database driver.

The job: `insert(conn, table, columns, rows)` writes many rows of plain tuples in the
connection's transaction — SQLite: one `executemany` on the driver's cursor; PostgreSQL:
`COPY ... FROM STDIN` — without SQLAlchemy's per-row work (the analytics projector
writes a few rows per event, millions in a rebuild). `sqlite_time` gives a time as
SQLAlchemy stores it in SQLite, so the rows read back the same as the ORM's.

What it must not do: commit, or take rows from anything but its caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


def sqlite_time(t: datetime | None) -> str | None:
    """`t` in SQLAlchemy's SQLite DATETIME storage format (UTC, microseconds always)."""
    if t is None:
        return None
    if t.tzinfo is not UTC and t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.isoformat(" ", "microseconds")[:26]


@contextmanager
def sqlite_bulk_mode(engine: sa.Engine) -> Iterator[None]:
    """SQLite, while a rebuild runs: `synchronous=NORMAL` and a 256 MB page cache on the
    connections it checks out, put back on check-in. Safe for a rebuild: all it writes
    derives from `events`; in WAL mode NORMAL never corrupts the file, a power cut can
    only undo the last commits — the checkpoint with them — and the projector redoes
    them. Other engines and dialects are left alone."""
    if engine.dialect.name != "sqlite":
        yield
        return

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        dbapi_conn.execute("PRAGMA cache_size=-262144")

    def checkin(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn is not None:
            dbapi_conn.execute("PRAGMA synchronous=FULL")
            dbapi_conn.execute("PRAGMA cache_size=-2000")

    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)
    try:
        yield
    finally:
        sa.event.remove(engine, "checkout", checkout)
        sa.event.remove(engine, "checkin", checkin)


def utc_session(conn: sa.Connection) -> None:
    """PostgreSQL: times come back in UTC for the rest of this transaction (the driver
    then gives `datetime.UTC` times, which need no conversion)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")


def insert(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert `rows` (values in `columns` order; times as `sqlite_time` on SQLite)."""
    if not rows:
        return
    names = ", ".join(columns)
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":  # psycopg 3
        with dbapi.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(columns))
    cur = dbapi.cursor()
    try:
        cur.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
    finally:
        cur.close()

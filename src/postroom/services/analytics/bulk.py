"""Bulk inserts for the analytics tables, through the database driver.

The job: `insert(conn, table, columns, rows)` writes many rows of plain tuples in the
connection's transaction — SQLite: one `executemany` on the driver's cursor; PostgreSQL:
`COPY ... FROM STDIN` — without SQLAlchemy's per-row work (the analytics projector
writes a few rows per event, millions in a rebuild). `sqlite_time` gives a time as
SQLAlchemy stores it in SQLite, so the rows read back the same as the ORM's.

What it must not do: commit, or take rows from anything but its caller.
"""

from __future__ import annotations

from collections.abc import Sequence
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

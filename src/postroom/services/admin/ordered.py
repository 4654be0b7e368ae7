"""Ordered configuration rows (routes and rules): the next position, a new order
from a list of ids, a move up or down.

Runs inside the caller's transaction; it never validates a row's content, writes
audit entries or bumps the configuration's version (the callers do).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from postroom.domain.errors import ConflictError, NotFoundError

MAX_ITEMS = 10_000  # ids in one reorder request


def ids_in_order(conn: sa.Connection, table: sa.Table) -> list[int]:
    query = sa.select(table.c.id).order_by(table.c.position, table.c.id)
    return [int(i) for (i,) in conn.execute(query)]


def next_position(conn: sa.Connection, table: sa.Table) -> int:
    top = conn.execute(sa.select(sa.func.max(table.c.position))).scalar_one_or_none()
    return 0 if top is None else int(top) + 1


def write_order(conn: sa.Connection, table: sa.Table, ids: Sequence[int]) -> None:
    for pos, pk in enumerate(ids):
        conn.execute(table.update().where(table.c.id == pk).values(position=pos))


def reorder(conn: sa.Connection, table: sa.Table, wanted: Sequence[int], what: str) -> list[int]:
    """Put the rows in the order of `wanted`, which must name every row once."""
    current = ids_in_order(conn, table)
    if len(wanted) != len(set(wanted)) or set(wanted) != set(current):
        missing = sorted(set(current) - set(wanted))
        unknown = sorted(set(wanted) - set(current))
        details = []
        if missing:
            details.append(f"missing {', '.join(map(str, missing[:20]))}")
        if unknown:
            details.append(f"unknown {', '.join(map(str, unknown[:20]))}")
        if len(wanted) != len(set(wanted)):
            details.append("some ids are given twice")
        raise ConflictError(
            f"give every {what} id exactly once, in the new order ({'; '.join(details)}); "
            f"reload the list: it may have changed since you read it",
            field="ids",
        )
    write_order(conn, table, wanted)
    return list(wanted)


def move(conn: sa.Connection, table: sa.Table, pk: int, delta: int, what: str) -> list[int]:
    """Move one row `delta` places (negative: up, towards the first); clamped at the ends."""
    current = ids_in_order(conn, table)
    if pk not in current:
        raise NotFoundError(f"{what} {pk} does not exist")
    old = current.index(pk)
    new = max(0, min(len(current) - 1, old + delta))
    current.insert(new, current.pop(old))
    write_order(conn, table, current)
    return current

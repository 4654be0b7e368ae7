"""Routes as admins change them: create, read, update, delete and reorder.

A route maps an inbound address (exact, or `*@domain`) to a queue and the
attributes its mail starts with. Each change is validated with the shared
schema (services/admin/schema.py), checked against what is stored (the queue
exists, the address is not taken), written with its audit entry and
`configuration.changed()` in one transaction, so intake on every node routes
the next message with it. The IMAP password is write-only: reads never show it
(`RouteModel.public()`), and an update that leaves it out keeps the stored one.

It never knows HTTP or forms (web/admin/routes.py translates) and never
evaluates routes (domain/routes.py `find_route` does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc

from postroom.domain.errors import ConflictError, InvalidConfigField, NotFoundError
from postroom.services import configuration
from postroom.services.admin import ordered
from postroom.services.admin.audit import Actor, record
from postroom.services.admin.schema import RouteChange, RouteModel
from postroom.store.schema import queues, routes


def _model(row: sa.Row[Any]) -> RouteModel:
    return RouteModel.model_validate(row.config)


def _out(row: sa.Row[Any]) -> dict[str, Any]:
    return {"id": int(row.id), "position": int(row.position), **_model(row).public()}


def _row(conn: sa.Connection, route_id: int) -> sa.Row[Any]:
    row = conn.execute(sa.select(routes).where(routes.c.id == route_id)).first()
    if row is None:
        raise NotFoundError(f"route {route_id} does not exist; list the routes to find its id")
    return row


def list_routes(db: sa.Engine) -> list[dict[str, Any]]:
    """Every route in order (the IMAP password hidden)."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(routes).order_by(routes.c.position, routes.c.id))
        return [_out(row) for row in rows]


def get_route(db: sa.Engine, route_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        return _out(_row(conn, route_id))


def find_route(db: sa.Engine, address: str) -> dict[str, Any]:
    """The route whose address is `address` (as written: `*@domain` for a wildcard)."""
    wanted = address.strip().lower()
    with db.connect() as conn:
        row = conn.execute(sa.select(routes).where(routes.c.address == wanted)).first()
    if row is None:
        raise NotFoundError(f"no route has the address {wanted!r}")
    return _out(row)


def _check(conn: sa.Connection, model: RouteModel, route_id: int | None) -> None:
    known = [n for (n,) in conn.execute(sa.select(queues.c.name).order_by(queues.c.name))]
    if model.queue not in known:
        choices = ", ".join(repr(n) for n in known[:20]) or "none yet"
        raise InvalidConfigField(
            "queue",
            f"queue {model.queue!r} does not exist; create it first or choose one of: {choices}",
        )
    taken = sa.select(routes.c.id).where(routes.c.address == model.address)
    if route_id is not None:
        taken = taken.where(routes.c.id != route_id)
    if conn.execute(taken).first() is not None:
        raise ConflictError(
            f"another route already has the address {model.address}; edit that route instead",
            field="address",
        )


@contextlib.contextmanager
def _address_race(address: str) -> Iterator[None]:
    """Two admins adding the same address at once: the second is told, not a 500."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        raise ConflictError(
            f"another route already has the address {address}; reload the list", field="address"
        ) from exc


def _stored_password(row: sa.Row[Any] | None) -> str | None:
    if row is None:
        return None
    imap = (row.config or {}).get("imap") or {}
    password = imap.get("password")
    return password if isinstance(password, str) else None


def _resolve(change: RouteChange, stored: str | None) -> RouteModel:
    if change.imap is not None and change.imap.password is None and stored is None:
        raise InvalidConfigField(
            "imap.password", "give the mailbox's password (none is stored for this route yet)"
        )
    return change.with_password(stored)


def create_route(
    db: sa.Engine,
    at: datetime,
    actor: Actor,
    change: RouteChange,
    *,
    position: int | None = None,
) -> dict[str, Any]:
    """Add a route (last, or at `position` counted from 0); the stored route."""
    model = _resolve(change, None)
    with _address_race(model.address), db.begin() as conn:
        _check(conn, model, None)
        pk = conn.execute(
            routes.insert()
            .values(**configuration.route_row(model, ordered.next_position(conn, routes)))
            .returning(routes.c.id)
        ).scalar_one()
        if position is not None:
            order = [i for i in ordered.ids_in_order(conn, routes) if i != pk]
            order.insert(max(0, min(position, len(order))), int(pk))
            ordered.write_order(conn, routes, order)
        row = _row(conn, int(pk))
        record(conn, at, actor, "route.create", "route", str(pk), None, _out(row))
        configuration.changed(conn, at)
        return _out(row)


def update_route(
    db: sa.Engine, at: datetime, actor: Actor, route_id: int, change: RouteChange
) -> dict[str, Any]:
    """Replace a route's settings (its place in the order stays). An IMAP mailbox
    given without a password keeps the stored password."""
    with _address_race(change.address), db.begin() as conn:
        before = _row(conn, route_id)
        model = _resolve(change, _stored_password(before))
        _check(conn, model, route_id)
        values = configuration.route_row(model, int(before.position))
        conn.execute(routes.update().where(routes.c.id == route_id).values(**values))
        after = _row(conn, route_id)
        record(conn, at, actor, "route.update", "route", str(route_id), _out(before), _out(after))
        configuration.changed(conn, at)
        return _out(after)


def delete_route(db: sa.Engine, at: datetime, actor: Actor, route_id: int) -> None:
    """Remove a route: mail to its address is refused (SMTP) or quarantined from
    the next message on; conversations that came in through it keep their data."""
    with db.begin() as conn:
        before = _row(conn, route_id)
        conn.execute(routes.delete().where(routes.c.id == route_id))
        record(conn, at, actor, "route.delete", "route", str(route_id), _out(before), None)
        configuration.changed(conn, at)


def _order_entry(conn: sa.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(routes.c.id, routes.c.address).order_by(routes.c.position, routes.c.id)
    )
    return [{"id": int(r.id), "address": r.address} for r in rows]


def reorder_routes(
    db: sa.Engine, at: datetime, actor: Actor, ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Put the routes in the order of `ids` (every route id once); the routes."""
    with db.begin() as conn:
        before = _order_entry(conn)
        ordered.reorder(conn, routes, ids, "route")
        record(conn, at, actor, "route.reorder", "route", None, before, _order_entry(conn))
        configuration.changed(conn, at)
    return list_routes(db)


def move_route(
    db: sa.Engine, at: datetime, actor: Actor, route_id: int, delta: int
) -> list[dict[str, Any]]:
    """Move one route up (delta < 0) or down; the routes in their new order."""
    with db.begin() as conn:
        before = _order_entry(conn)
        ordered.move(conn, routes, route_id, delta, "route")
        record(conn, at, actor, "route.reorder", "route", str(route_id), before, _order_entry(conn))
        configuration.changed(conn, at)
    return list_routes(db)

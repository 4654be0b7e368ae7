"""Business-hours calendars as an administrator changes them: list, read, put, delete.

Validated with the shared schema (CalendarModel), stored with
`configuration.calendar_row`, audited and announced with
`configuration.changed()` in one transaction: the router re-reads the queues,
and a queue whose first target counts in a changed calendar gets new
deadlines (`QueueConfigured`). A calendar that a queue's target names cannot
be deleted (ConflictError naming the queues). No HTTP here and no routing
decisions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import ConflictError, NotFoundError
from postroom.services import configuration
from postroom.services.admin import audit
from postroom.services.admin.schema import (
    MAX_CALENDARS,
    CalendarModel,
    QueueModel,
    ValidationError,
    describe,
)
from postroom.services.users import InvalidField
from postroom.store.schema import calendars, queues


def _model(row: sa.Row[Any]) -> CalendarModel:
    try:
        return CalendarModel.model_validate({**row.config, "name": row.name})
    except ValidationError as exc:  # (only a hand-edited row)
        raise ConflictError(f"stored calendar {row.name!r} is invalid: {describe(exc)}") from exc


def list_calendars(conn: sa.Connection) -> list[CalendarModel]:
    return [_model(r) for r in conn.execute(sa.select(calendars).order_by(calendars.c.name))]


def names(conn: sa.Connection) -> set[str]:
    return {str(n) for (n,) in conn.execute(sa.select(calendars.c.name))}


def get_calendar(conn: sa.Connection, name: str) -> CalendarModel:
    row = conn.execute(sa.select(calendars).where(calendars.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no calendar {name!r}")
    return _model(row)


def require(conn: sa.Connection, q: QueueModel) -> None:
    """Refuse (InvalidField on `service_targets.N.calendar`) a target naming a calendar
    that does not exist."""
    known = names(conn)
    for i, t in enumerate(q.service_targets or ()):
        if t.calendar is not None and t.calendar not in known:
            raise InvalidField(
                f"service_targets.{i}.calendar",
                f"unknown calendar {t.calendar!r}; add it first (/admin/calendars, or PUT "
                f"/api/v1/routing/calendars/{t.calendar}) or count this target in calendar time",
            )


def queues_using(conn: sa.Connection, name: str) -> list[str]:
    """The queues with a target that counts in calendar `name`, by name."""
    found = []
    for row in conn.execute(sa.select(queues.c.name, queues.c.config).order_by(queues.c.name)):
        targets = (row.config or {}).get("service_targets") or []
        if any(isinstance(t, dict) and t.get("calendar") == name for t in targets):
            found.append(str(row.name))
    return found


def put_calendar(
    db: sa.Engine, at: datetime, actor: audit.Actor, name: str, c: CalendarModel
) -> tuple[CalendarModel, bool]:
    """Create or replace calendar `name` (the body's name must be it); (the calendar,
    whether it was created)."""
    if c.name != name:
        raise InvalidField(
            "name",
            "a calendar's name is its id and cannot change; create one with the new name, "
            "point the targets at it, then delete this one",
        )
    with db.begin() as conn:
        row = conn.execute(sa.select(calendars).where(calendars.c.name == name)).first()
        after = c.model_dump(mode="json")
        if row is None:
            if len(names(conn)) >= MAX_CALENDARS:
                raise ConflictError(
                    f"there are already {MAX_CALENDARS} calendars; delete one you no longer use"
                )
            conn.execute(calendars.insert().values(**configuration.calendar_row(c)))
            audit.record(conn, at, actor, "calendar.create", "calendar", name, None, after)
        else:
            before = _model(row).model_dump(mode="json")
            if before == after:
                return c, False  # nothing changes: no audit entry, no new version
            conn.execute(
                calendars.update()
                .where(calendars.c.name == name)
                .values(**configuration.calendar_row(c))
            )
            audit.record(conn, at, actor, "calendar.update", "calendar", name, before, after)
        configuration.changed(conn, at)
    return c, row is None


def delete_calendar(db: sa.Engine, at: datetime, actor: audit.Actor, name: str) -> None:
    """Delete the calendar; refused (ConflictError naming them) while queues use it."""
    with db.begin() as conn:
        before = get_calendar(conn, name)
        used = queues_using(conn, name)
        if used:
            shown = ", ".join(repr(q) for q in used)
            raise ConflictError(
                f"calendar {name!r} is used by the service-level targets of queue(s) {shown}; "
                "give those targets another calendar (or none) first"
            )
        conn.execute(calendars.delete().where(calendars.c.name == name))
        audit.record(
            conn, at, actor, "calendar.delete", "calendar", name,
            before.model_dump(mode="json"), None,
        )  # fmt: skip
        configuration.changed(conn, at)

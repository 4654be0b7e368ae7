"""Queues as an administrator changes them: list, read, create, change, delete.

Validated with the shared schema (QueueModel), wrap-up codes and ring skills
checked against the catalogs and targets' calendars against the calendars,
stored with `configuration.queue_row`, audited and announced with
`configuration.changed()` in one transaction: the router re-reads the queues
and sends the engine `QueueConfigured` for changed ones.

A queue's name is its id: it cannot be renamed (create the new queue, move
the work with a delete that names it as the target). A queue that still holds
conversations is deleted only with a target queue; the router then moves them
(a `queue_moved` request, see services/routing.py). A queue that routes or
rules still name cannot be deleted. No HTTP here and no routing decisions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import ConflictError, NotFoundError
from postroom.services import configuration
from postroom.services.admin import audit, calendars, catalog
from postroom.services.admin.schema import QueueModel, ValidationError, describe
from postroom.services.users import InvalidField
from postroom.store.schema import agents, conversations, queues, routes, routing_inbox, rules

OPEN_STATES = ("queued", "alerting", "connected", "parked", "wrapup")


def _model(row: sa.Row[Any]) -> QueueModel:
    try:
        return QueueModel.model_validate({**row.config, "name": row.name})
    except ValidationError as exc:  # (only a hand-edited row)
        raise ConflictError(f"stored queue {row.name!r} is invalid: {describe(exc)}") from exc


def list_queues(conn: sa.Connection) -> list[QueueModel]:
    return [_model(r) for r in conn.execute(sa.select(queues).order_by(queues.c.name))]


def get_queue(conn: sa.Connection, name: str) -> QueueModel:
    row = conn.execute(sa.select(queues).where(queues.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no queue {name!r}")
    return _model(row)


def _check_catalogs(conn: sa.Connection, q: QueueModel) -> None:
    catalog.require(conn, "wrapup_code", q.wrapup_codes, "wrapup_codes")
    calendars.require(conn, q)
    for i, ring in enumerate(q.rings):
        catalog.require(conn, "skill", ring.skills_to_remove, f"rings.{i}.skills_to_remove")


def create_queue(db: sa.Engine, at: datetime, actor: audit.Actor, q: QueueModel) -> QueueModel:
    with db.begin() as conn:
        if conn.execute(sa.select(queues.c.id).where(queues.c.name == q.name)).first():
            raise InvalidField("name", f"there is already a queue {q.name!r}; pick another name")
        _check_catalogs(conn, q)
        conn.execute(queues.insert().values(**configuration.queue_row(q)))
        after = q.model_dump(mode="json")
        audit.record(conn, at, actor, "queue.create", "queue", q.name, None, after)
        configuration.changed(conn, at)
    return q


def update_queue(
    db: sa.Engine, at: datetime, actor: audit.Actor, name: str, q: QueueModel
) -> QueueModel:
    if q.name != name:
        raise InvalidField(
            "name",
            "a queue's name is its id and cannot change; create a queue with the new name "
            "and delete this one with it as the target",
        )
    with db.begin() as conn:
        before = get_queue(conn, name)
        _check_catalogs(conn, q)
        conn.execute(
            queues.update().where(queues.c.name == name).values(**configuration.queue_row(q))
        )
        audit.record(
            conn,
            at,
            actor,
            "queue.update",
            "queue",
            name,
            before.model_dump(mode="json"),
            q.model_dump(mode="json"),
        )
        configuration.changed(conn, at)
    return q


def open_counts(conn: sa.Connection, name: str) -> dict[str, int]:
    """How many conversations of the queue are in each open state."""
    return {
        str(state): int(n)
        for state, n in conn.execute(
            sa.select(conversations.c.state, sa.func.count())
            .where(conversations.c.queue == name, conversations.c.state.in_(OPEN_STATES))
            .group_by(conversations.c.state)
        )
    }


def _naming(conn: sa.Connection, name: str) -> list[str]:
    found = [
        f"route {addr}"
        for (addr,) in conn.execute(sa.select(routes.c.address).where(routes.c.queue == name))
    ]
    for rule_name, config in conn.execute(sa.select(rules.c.name, rules.c.config)):
        if ((config or {}).get("then") or {}).get("queue") == name:
            found.append(f"rule {rule_name}")
    return found


def delete_queue(
    db: sa.Engine, at: datetime, actor: audit.Actor, name: str, target: str | None = None
) -> dict[str, Any]:
    """Delete the queue. Open conversations need `target`: the router moves the
    waiting ones into it (queued again there) and gives held ones (connected,
    wrap-up, parked) the target as their queue, with the same agent. Agents lose
    the membership. Refused while a route or rule names the queue."""
    with db.begin() as conn:
        before = get_queue(conn, name)
        if target is not None:
            if target == name:
                raise InvalidField("target", "the target must be another queue")
            if not conn.execute(sa.select(queues.c.id).where(queues.c.name == target)).first():
                raise InvalidField("target", f"no queue {target!r} to move the conversations to")
        naming = _naming(conn, name)
        if naming:
            raise ConflictError(
                f"queue {name!r} is named by {', '.join(naming)}; point them at another "
                "queue first"
            )
        counts = open_counts(conn, name)
        total = sum(counts.values())
        if total and target is None:
            shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            raise ConflictError(
                f"queue {name!r} still holds {total} conversation(s) ({shown}); give a target "
                "queue to move them to (DELETE ...?target=QUEUE), or wait until they are closed"
            )
        members = []
        for row in conn.execute(sa.select(agents.c.id, agents.c.queues).order_by(agents.c.id)):
            if name in (row.queues or []):
                members.append(row.id)
                conn.execute(
                    agents.update()
                    .where(agents.c.id == row.id)
                    .values(queues=[q for q in row.queues if q != name], updated_at=at)
                )
        conn.execute(queues.delete().where(queues.c.name == name))
        audit.record(
            conn,
            at,
            actor,
            "queue.delete",
            "queue",
            name,
            before.model_dump(mode="json"),
            {"moved_to": target, "conversations": counts, "members_removed": members},
        )
        configuration.changed(conn, at)
        # The work moves first, then the members leave (nothing is withdrawn twice).
        if total and target is not None:
            conn.execute(
                routing_inbox.insert().values(
                    at=at, kind="queue_moved", data={"from": name, "to": target}
                )
            )
        for agent_id in members:
            conn.execute(
                routing_inbox.insert().values(
                    at=at, kind="agent_configured", agent_id=agent_id, data={}
                )
            )
    return {"deleted": name, "moved_to": target, "conversations": counts}

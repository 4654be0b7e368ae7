"""Intake rules as admins change them: create, read, update, delete, enable or
disable, and reorder.

Rules are evaluated in order for every message (mail/rules.py); a disabled rule
keeps its place but is not evaluated (the live snapshot holds only enabled
ones). Each change is validated with the shared schema (RuleModel), checked
against what is stored (a queue action names an existing queue, names are
unique), written with its audit entry and `configuration.changed()` in one
transaction, so intake on every node uses it from the next message on.

It never knows HTTP or forms (web/admin/rules.py) and never evaluates rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import ConflictError, InvalidConfigField, NotFoundError
from postroom.services import configuration
from postroom.services.admin import ordered
from postroom.services.admin.audit import Actor, record
from postroom.services.admin.schema import RuleModel
from postroom.store.schema import queues, rules


def model_of(row: sa.Row[Any]) -> RuleModel:
    return RuleModel.model_validate({**row.config, "enabled": bool(row.enabled)})


def _out(row: sa.Row[Any]) -> dict[str, Any]:
    data = model_of(row).model_dump(mode="json")
    return {"id": int(row.id), "position": int(row.position), **data}


def _row(conn: sa.Connection, rule_id: int) -> sa.Row[Any]:
    row = conn.execute(sa.select(rules).where(rules.c.id == rule_id)).first()
    if row is None:
        raise NotFoundError(f"rule {rule_id} does not exist; list the rules to find its id")
    return row


def rows_in_order(conn: sa.Connection) -> list[sa.Row[Any]]:
    return list(conn.execute(sa.select(rules).order_by(rules.c.position, rules.c.id)))


def list_rules(db: sa.Engine) -> list[dict[str, Any]]:
    """Every rule in evaluation order, disabled ones included (`enabled`)."""
    with db.connect() as conn:
        return [_out(row) for row in rows_in_order(conn)]


def get_rule(db: sa.Engine, rule_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        return _out(_row(conn, rule_id))


def _check(conn: sa.Connection, model: RuleModel, rule_id: int | None) -> None:
    queue = model.then.queue
    if queue is not None:
        found = conn.execute(sa.select(queues.c.id).where(queues.c.name == queue)).first()
        if found is None:
            raise InvalidConfigField(
                "then.queue", f"queue {queue!r} does not exist; create it first or pick another"
            )
    taken = sa.select(rules.c.id).where(rules.c.name == model.name)
    if rule_id is not None:
        taken = taken.where(rules.c.id != rule_id)
    if conn.execute(taken).first() is not None:
        raise ConflictError(
            f"another rule is already named {model.name!r}; give this one another name",
            field="name",
        )


def create_rule(
    db: sa.Engine, at: datetime, actor: Actor, model: RuleModel, *, position: int | None = None
) -> dict[str, Any]:
    """Add a rule (evaluated last, or at `position` counted from 0); the stored rule."""
    with db.begin() as conn:
        _check(conn, model, None)
        pk = conn.execute(
            rules.insert()
            .values(**configuration.rule_row(model, ordered.next_position(conn, rules)))
            .returning(rules.c.id)
        ).scalar_one()
        if position is not None:
            order = [i for i in ordered.ids_in_order(conn, rules) if i != pk]
            order.insert(max(0, min(position, len(order))), int(pk))
            ordered.write_order(conn, rules, order)
        row = _row(conn, int(pk))
        record(conn, at, actor, "rule.create", "rule", str(pk), None, _out(row))
        configuration.changed(conn, at)
        return _out(row)


def update_rule(
    db: sa.Engine, at: datetime, actor: Actor, rule_id: int, model: RuleModel
) -> dict[str, Any]:
    """Replace a rule's name, conditions, actions and `enabled` (its place stays)."""
    with db.begin() as conn:
        before = _row(conn, rule_id)
        _check(conn, model, rule_id)
        values = configuration.rule_row(model, int(before.position))
        conn.execute(rules.update().where(rules.c.id == rule_id).values(**values))
        after = _row(conn, rule_id)
        record(conn, at, actor, "rule.update", "rule", str(rule_id), _out(before), _out(after))
        configuration.changed(conn, at)
        return _out(after)


def set_enabled(
    db: sa.Engine, at: datetime, actor: Actor, rule_id: int, enabled: bool
) -> dict[str, Any]:
    """Enable or disable a rule (a disabled rule keeps its place, is not evaluated)."""
    with db.begin() as conn:
        before = _row(conn, rule_id)
        conn.execute(rules.update().where(rules.c.id == rule_id).values(enabled=enabled))
        after = _row(conn, rule_id)
        if bool(before.enabled) != enabled:
            verb = "enable" if enabled else "disable"
            record(conn, at, actor, f"rule.{verb}", "rule", str(rule_id), _out(before), _out(after))
            configuration.changed(conn, at)
        return _out(after)


def delete_rule(db: sa.Engine, at: datetime, actor: Actor, rule_id: int) -> None:
    with db.begin() as conn:
        before = _row(conn, rule_id)
        conn.execute(rules.delete().where(rules.c.id == rule_id))
        record(conn, at, actor, "rule.delete", "rule", str(rule_id), _out(before), None)
        configuration.changed(conn, at)


def _order_entry(conn: sa.Connection) -> list[dict[str, Any]]:
    return [{"id": int(r.id), "name": r.name} for r in rows_in_order(conn)]


def reorder_rules(
    db: sa.Engine, at: datetime, actor: Actor, ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Evaluate the rules in the order of `ids` (every rule id once); the rules."""
    with db.begin() as conn:
        before = _order_entry(conn)
        ordered.reorder(conn, rules, ids, "rule")
        record(conn, at, actor, "rule.reorder", "rule", None, before, _order_entry(conn))
        configuration.changed(conn, at)
    return list_rules(db)


def move_rule(
    db: sa.Engine, at: datetime, actor: Actor, rule_id: int, delta: int
) -> list[dict[str, Any]]:
    """Move one rule up (delta < 0, evaluated earlier) or down; the rules in order."""
    with db.begin() as conn:
        before = _order_entry(conn)
        ordered.move(conn, rules, rule_id, delta, "rule")
        record(conn, at, actor, "rule.reorder", "rule", str(rule_id), before, _order_entry(conn))
        configuration.changed(conn, at)
    return list_rules(db)

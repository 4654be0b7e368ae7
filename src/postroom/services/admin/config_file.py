"""The whole configuration at once: what `postroom config export` writes, and
what `postroom config apply` changes.

`export_data` gives the stored calendars, queues, routes and rules in the file's shape
(IMAP passwords as a placeholder unless asked for). `plan` compares a
configuration with the database object by object (calendar and queue by name,
route by address, rule by name and order): added, removed, changed fields, moved.
`apply` makes the database hold it in one transaction: row by row (unchanged
rows keep their ids), one audit entry per changed object, and
`configuration.changed` so every process re-reads it and the router
re-configures its queues. A queue that still has open conversations is never
removed.

Plain data and the schema's models only: reading and writing TOML is the
command line's job; nothing here knows HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from postroom.domain.errors import ConfigError
from postroom.services import configuration
from postroom.services.admin import audit
from postroom.services.admin.schema import (
    CalendarModel,
    Configuration,
    QueueModel,
    RouteModel,
    RuleModel,
)
from postroom.store.schema import calendars, config_state, conversations, queues, routes, rules

Kind = Literal["calendar", "queue", "route", "rule"]
Verb = Literal["create", "update", "delete"]
_SECRET_FIELDS = ("imap.password",)


def export_data(conn: sa.Connection, *, include_secrets: bool = False) -> dict[str, Any]:
    """The stored configuration as the file's tables (unset values left out, so a
    TOML writer can take it); IMAP passwords as `KEEP_PASSWORD` unless asked for."""
    models = configuration.load_models(conn)
    data: dict[str, Any] = models.model_dump(mode="json", exclude_none=True)
    # A route reads best from its address and queue; no skills is the default.
    data["routes"] = [
        {"address": r.pop("address"), "queue": r.pop("queue"), **r} for r in data["routes"]
    ]
    for route in data["routes"]:
        if route.get("skills") == {}:
            del route["skills"]
        if "imap" in route and not include_secrets:
            route["imap"]["password"] = configuration.KEEP_PASSWORD
    return data


# -- the difference ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str  # "alert_timeout_s", "imap.port", "then.queue", "position"
    before: Any
    after: Any

    def text(self) -> str:
        if self.field in _SECRET_FIELDS:
            return f"{self.field} changed"
        return f"{self.field}: {_shown(self.before)} -> {_shown(self.after)}"


@dataclass(frozen=True, slots=True)
class Change:
    """One object added, removed or changed (fields, or its place in the order)."""

    kind: Kind
    key: str  # the queue's name, the route's address, the rule's name
    verb: Verb
    before: dict[str, Any] | None = None  # the stored model's dump (with "position")
    after: dict[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()

    @property
    def action(self) -> str:
        return f"{self.kind}.{self.verb}"

    def text(self) -> str:
        label = f"{self.kind} {self.key}" if self.kind == "route" else f"{self.kind} {self.key!r}"
        if self.verb == "create":
            return f"+ {label}: added"
        if self.verb == "delete":
            return f"- {label}: removed"
        return f"~ {label}: " + "; ".join(f.text() for f in self.fields)


@dataclass(slots=True)
class Plan:
    """What applying a configuration does: the changes, and the problems that stop it."""

    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    version: int | None = None  # the configuration's version after applying

    @property
    def empty(self) -> bool:
        return not self.changes


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _field_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[FieldChange, ...]:
    old, new = _flat(before), _flat(after)
    return tuple(
        FieldChange(name, old.get(name), new.get(name))
        for name in sorted(set(old) | set(new), key=lambda n: (n == "position", n))
        if old.get(name) != new.get(name)
    )


def _kept_in_order(old_positions: Sequence[int]) -> set[int]:
    """The indexes (into `old_positions`) of a longest increasing run: the objects
    that kept their order; the others count as moved."""
    if not old_positions:
        return set()
    ends: list[int] = []  # index of the smallest tail of each run length
    before: list[int | None] = [None] * len(old_positions)
    for i, pos in enumerate(old_positions):
        lo, hi = 0, len(ends)
        while lo < hi:
            mid = (lo + hi) // 2
            if old_positions[ends[mid]] < pos:
                lo = mid + 1
            else:
                hi = mid
        before[i] = ends[lo - 1] if lo else None
        if lo == len(ends):
            ends.append(i)
        else:
            ends[lo] = i
    kept: set[int] = set()
    at: int | None = ends[-1]
    while at is not None:
        kept.add(at)
        at = before[at]
    return kept


def _keyed(items: Sequence[Any], key: Any) -> list[tuple[str, Any]]:
    """(identity, item): a repeated key gets "#2", "#3" in order."""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        k = key(item)
        seen[k] = seen.get(k, 0) + 1
        out.append((k if seen[k] == 1 else f"{k} #{seen[k]}", item))
    return out


def _diff(
    kind: Kind, old: Sequence[Any], new: Sequence[Any], key: Any, *, ordered: bool
) -> list[Change]:
    def dump(model: Any, position: int) -> dict[str, Any]:
        data: dict[str, Any] = model.model_dump(mode="json")
        return {**data, "position": position} if ordered else data

    old_keyed = _keyed(old, key)
    new_keyed = _keyed(new, key)
    old_at = {k: (i, m) for i, (k, m) in enumerate(old_keyed)}
    new_keys = {k for k, _ in new_keyed}
    matched = [(k, i) for i, (k, _) in enumerate(new_keyed) if k in old_at]
    kept = _kept_in_order([old_at[k][0] for k, _ in matched]) if ordered else set()
    moved = {k for n, (k, _) in enumerate(matched) if ordered and n not in kept}
    changes: list[Change] = []
    for k, (i, model) in old_at.items():
        if k not in new_keys:
            changes.append(Change(kind, k, "delete", before=dump(model, i)))
    for i, (k, model) in enumerate(new_keyed):
        after = dump(model, i)
        if k not in old_at:
            changes.append(Change(kind, k, "create", after=after))
            continue
        j, stored = old_at[k]
        before = dump(stored, j)
        if k in moved:
            fields = _field_changes(before, after)
        else:  # its place among the others is the same, whatever its index now
            fields = _field_changes(_unplaced(before), _unplaced(after))
        if fields:
            changes.append(Change(kind, k, "update", before=before, after=after, fields=fields))
    return changes


def diff(current: Configuration, new: Configuration) -> list[Change]:
    """The changes from `current` to `new`: calendars and queues by name, routes by
    address, rules
    by name (a repeated name by its order among its namesakes); a route or rule out
    of its order among the others is "moved" (field `position`)."""
    return [
        *_diff("calendar", current.calendars, new.calendars, lambda c: c.name, ordered=False),
        *_diff("queue", current.queues, new.queues, lambda q: q.name, ordered=False),
        *_diff("route", current.routes, new.routes, lambda r: r.address, ordered=True),
        *_diff("rule", current.rules, new.rules, lambda r: r.name, ordered=True),
    ]


def _unplaced(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "position"}


def _open_conversations(conn: sa.Connection, queue: str) -> int:
    found = conn.execute(
        sa.select(sa.func.count())
        .select_from(conversations)
        .where(conversations.c.queue == queue, conversations.c.state != "closed")
    )
    return int(found.scalar_one())


def plan(conn: sa.Connection, config: Configuration) -> tuple[Plan, Configuration]:
    """What applying `config` would change, and `config` with kept passwords filled in."""
    current = configuration.load_models(conn)
    config, problems = configuration.keep_stored_secrets(config, current)
    result = Plan(changes=diff(current, config), problems=problems)
    for change in result.changes:
        if change.kind == "queue" and change.verb == "delete":
            count = _open_conversations(conn, change.key)
            if count:
                result.problems.append(
                    f"queue {change.key!r} still has {count} open conversation(s) (not closed); "
                    "move them to another queue first (transfer them), or keep the queue in "
                    "the file"
                )
    return result, config


# -- applying ---------------------------------------------------------------------------


def apply(
    db: sa.Engine,
    at: datetime,
    actor: audit.Actor,
    config: Configuration,
    *,
    dry_run: bool = False,
) -> Plan:
    """Make the database hold `config` (validated by the schema), in one
    transaction, or with `dry_run` only say what that would change. Raises
    ConfigError, with nothing applied, when a problem stops it."""
    with db.begin() as conn:
        # One configuration change at a time (a no-op lock on SQLite, whose
        # transactions already begin IMMEDIATE).
        conn.execute(sa.select(config_state.c.id).where(config_state.c.id == 1).with_for_update())
        result, config = plan(conn, config)
        if dry_run or result.empty:
            return result
        if result.problems:
            raise ConfigError("nothing applied: " + "; ".join(result.problems))
        _write(conn, config)
        for change in result.changes:
            audit.record(
                conn, at, actor, change.action, change.kind, change.key, change.before, change.after
            )
        result.version = configuration.changed(conn, at)
    return result


def _write(conn: sa.Connection, config: Configuration) -> None:
    """The four tables row by row: unchanged rows are left alone (and keep their ids)."""
    _write_calendars(conn, config.calendars)
    _write_queues(conn, config.queues)
    _write_routes(conn, config.routes)
    _write_rules(conn, config.rules)


def _write_calendars(conn: sa.Connection, wanted: Sequence[CalendarModel]) -> None:
    stored = {r.name: (r.id, r.config) for r in conn.execute(sa.select(calendars))}
    names = {c.name for c in wanted}
    for name, (pk, _) in stored.items():
        if name not in names:
            conn.execute(calendars.delete().where(calendars.c.id == pk))
    for c in wanted:
        row = configuration.calendar_row(c)
        if c.name not in stored:
            conn.execute(calendars.insert().values(**row))
        elif stored[c.name][1] != row["config"]:
            pk = stored[c.name][0]
            conn.execute(calendars.update().where(calendars.c.id == pk).values(**row))


def _write_queues(conn: sa.Connection, wanted: Sequence[QueueModel]) -> None:
    stored = {r.name: (r.id, r.config) for r in conn.execute(sa.select(queues))}
    names = {q.name for q in wanted}
    for name, (pk, _) in stored.items():
        if name not in names:
            conn.execute(queues.delete().where(queues.c.id == pk))
    for q in wanted:
        row = configuration.queue_row(q)
        if q.name not in stored:
            conn.execute(queues.insert().values(**row))
        elif stored[q.name][1] != row["config"]:
            conn.execute(queues.update().where(queues.c.id == stored[q.name][0]).values(**row))


def _write_routes(conn: sa.Connection, wanted: Sequence[RouteModel]) -> None:
    stored = {
        r.address: r
        for r in conn.execute(
            sa.select(
                routes.c.id, routes.c.address, routes.c.queue, routes.c.position, routes.c.config
            )
        )
    }
    addresses = {r.address for r in wanted}
    for address, row in stored.items():
        if address not in addresses:
            conn.execute(routes.delete().where(routes.c.id == row.id))
    for pos, route in enumerate(wanted):
        values = configuration.route_row(route, pos)
        old = stored.get(route.address)
        if old is None:
            conn.execute(routes.insert().values(**values))
        elif (old.position, old.queue, old.config) != (pos, values["queue"], values["config"]):
            conn.execute(routes.update().where(routes.c.id == old.id).values(**values))


def _write_rules(conn: sa.Connection, wanted: Sequence[RuleModel]) -> None:
    """Rules are matched to rows by name, in order (as `plan` matches them)."""
    stored: dict[str, list[sa.Row[Any]]] = {}
    for row in conn.execute(sa.select(rules).order_by(rules.c.position, rules.c.id)):
        stored.setdefault(row.name, []).append(row)
    for pos, rule in enumerate(wanted):
        values = configuration.rule_row(rule, pos)
        rows = stored.get(rule.name)
        if not rows:
            conn.execute(rules.insert().values(**values))
            continue
        old = rows.pop(0)
        if (old.position, old.config, bool(old.enabled)) != (
            pos,
            values["config"],
            values["enabled"],
        ):
            conn.execute(rules.update().where(rules.c.id == old.id).values(**values))
    for left in stored.values():
        for row in left:
            conn.execute(rules.delete().where(rules.c.id == row.id))

"""The live configuration: calendars, queues, routes and rules as stored in the database.

The database is the source of truth once it has been seeded (from the TOML
file at the first start). Every change to the configuration bumps
`config_state.version` in its own transaction; `LiveConfig` hands out an
immutable `Snapshot` and re-reads it when the version has moved, so intake, the
router and the web app of every process see a change within `max_age_s`, and
at once in the process that made it (`refresh`).

Owns reading and replacing the four tables and the version row; validation is
`services/admin/schema.py`, the admin use cases live in `services/admin/`. It
never decides routing and knows nothing of HTTP or TOML.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from postroom.domain.calendars import BusinessCalendar
from postroom.domain.errors import ConfigError
from postroom.domain.routes import QueueConfig, Route, Rule
from postroom.services.admin import catalog
from postroom.services.admin.schema import (
    CalendarModel,
    Configuration,
    QueueModel,
    RouteModel,
    RuleModel,
    ValidationError,
    describe,
)
from postroom.store.db import READ_ONLY
from postroom.store.schema import calendars, config_state, queues, routes, routing_inbox, rules

log = logging.getLogger("postroom.config")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent view of the configuration (rules: only the enabled ones)."""

    version: int
    queues: tuple[QueueConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    calendars: tuple[BusinessCalendar, ...] = ()

    def queue(self, name: str) -> QueueConfig | None:
        return next((q for q in self.queues if q.name == name), None)

    def calendar(self, name: str) -> BusinessCalendar | None:
        return next((c for c in self.calendars if c.name == name), None)

    @property
    def calendars_by_name(self) -> dict[str, BusinessCalendar]:
        return {c.name: c for c in self.calendars}

    @property
    def queue_names(self) -> list[str]:
        return [q.name for q in self.queues]


class ConfigSource(Protocol):
    """Where services read the configuration from (LiveConfig, or StaticConfig in tests)."""

    def current(self) -> Snapshot: ...

    def refresh(self) -> Snapshot: ...


class StaticConfig:
    """A configuration that never changes (tests, and tools that run without a store)."""

    def __init__(
        self,
        queues: Sequence[QueueConfig] = (),
        routes: Sequence[Route] = (),
        rules: Sequence[Rule] = (),
        calendars: Sequence[BusinessCalendar] = (),
    ) -> None:
        self._snapshot = Snapshot(
            0, tuple(queues), tuple(routes), tuple(rules), tuple(calendars)
        )

    def current(self) -> Snapshot:
        return self._snapshot

    def refresh(self) -> Snapshot:
        return self._snapshot


# -- the version row ------------------------------------------------------------------


def version(conn: sa.Connection) -> int | None:
    """The configuration's version, None when the database was never seeded."""
    found = conn.execute(sa.select(config_state.c.version).where(config_state.c.id == 1))
    value = found.scalar_one_or_none()
    return int(value) if value is not None else None


def bump(conn: sa.Connection, at: datetime) -> int:
    """Move the version on (in the caller's transaction, which holds the change);
    every process re-reads the configuration when it sees the new number."""
    updated = conn.execute(
        config_state.update()
        .where(config_state.c.id == 1)
        .values(version=config_state.c.version + 1, updated_at=at)
    )
    if updated.rowcount == 0:
        conn.execute(config_state.insert().values(id=1, version=1, updated_at=at))
    new = version(conn)
    assert new is not None
    return new


def changed(conn: sa.Connection, at: datetime) -> int:
    """Record that the configuration changed, in the change's transaction: the
    version moves (intake and the web app of every process re-read it) and the
    router is asked to take the queues in again (a `config_changed` request).
    Every admin change to queues, routes or rules calls this; the new version."""
    new = bump(conn, at)
    conn.execute(
        routing_inbox.insert().values(
            at=at, kind="config_changed", data={"version": new}, conversation_id=None
        )
    )
    return new


# -- reading and replacing the tables ---------------------------------------------------


def _valid(model: type[Any], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"stored {where} is invalid: {describe(exc)}") from exc


def load_models(conn: sa.Connection) -> Configuration:
    """The stored configuration as schema models, in order (rules with `enabled`)."""
    calendar_models = [
        _valid(CalendarModel, {**row.config, "name": row.name}, f"calendar {row.name!r}")
        for row in conn.execute(
            sa.select(calendars.c.name, calendars.c.config).order_by(calendars.c.name)
        )
    ]
    queue_models = [
        _valid(QueueModel, {**row.config, "name": row.name}, f"queue {row.name!r}")
        for row in conn.execute(sa.select(queues.c.name, queues.c.config).order_by(queues.c.id))
    ]
    route_models = [
        _valid(RouteModel, row.config, f"route {row.address}")
        for row in conn.execute(
            sa.select(routes.c.address, routes.c.config).order_by(routes.c.position, routes.c.id)
        )
    ]
    rule_models = [
        _valid(RuleModel, {**row.config, "enabled": bool(row.enabled)}, f"rule {row.name!r}")
        for row in conn.execute(
            sa.select(rules.c.name, rules.c.config, rules.c.enabled).order_by(
                rules.c.position, rules.c.id
            )
        )
    ]
    return Configuration.model_construct(
        calendars=calendar_models, queues=queue_models, routes=route_models, rules=rule_models
    )


def load(conn: sa.Connection) -> Snapshot:
    models = load_models(conn)
    return Snapshot(
        version(conn) or 0,
        tuple(q.to_domain() for q in models.queues),
        tuple(r.to_domain() for r in models.routes),
        tuple(r.to_domain() for r in models.rules if r.enabled),
        tuple(c.to_domain() for c in models.calendars),
    )


def calendar_row(c: CalendarModel) -> dict[str, Any]:
    return {"name": c.name, "config": c.model_dump(mode="json")}


def queue_row(q: QueueModel) -> dict[str, Any]:
    return {"name": q.name, "config": q.model_dump(mode="json")}


def route_row(r: RouteModel, position: int) -> dict[str, Any]:
    return {
        "position": position,
        "address": r.address,
        "queue": r.queue,
        "config": r.model_dump(mode="json"),
    }


def rule_row(r: RuleModel, position: int) -> dict[str, Any]:
    data = r.model_dump(mode="json", exclude={"enabled"})
    return {"position": position, "name": r.name, "config": data, "enabled": r.enabled}


def replace_all(conn: sa.Connection, config: Configuration, at: datetime) -> int:
    """Make the four tables hold exactly `config` (calendars and queues kept by name so
    their ids stay); bumps the version. The caller checks what this would do to waiting
    work."""
    cals = calendars.c
    stored_cals = {name: pk for pk, name in conn.execute(sa.select(cals.id, cals.name))}
    for name, pk in stored_cals.items():
        if name not in {c.name for c in config.calendars}:
            conn.execute(calendars.delete().where(cals.id == pk))
    for c in config.calendars:
        crow = calendar_row(c)
        if c.name in stored_cals:
            conn.execute(calendars.update().where(cals.id == stored_cals[c.name]).values(**crow))
        else:
            conn.execute(calendars.insert().values(**crow))
    current = {name: pk for pk, name in conn.execute(sa.select(queues.c.id, queues.c.name))}
    wanted = {q.name for q in config.queues}
    for name, pk in current.items():
        if name not in wanted:
            conn.execute(queues.delete().where(queues.c.id == pk))
    for q in config.queues:
        row = queue_row(q)
        if q.name in current:
            conn.execute(queues.update().where(queues.c.id == current[q.name]).values(**row))
        else:
            conn.execute(queues.insert().values(**row))
    conn.execute(routes.delete())
    for pos, r in enumerate(config.routes):
        conn.execute(routes.insert().values(**route_row(r, pos)))
    conn.execute(rules.delete())
    for pos, rule in enumerate(config.rules):
        conn.execute(rules.insert().values(**rule_row(rule, pos)))
    # The file may name skills, languages and wrap-up codes nobody entered: they
    # join the catalogs (which the admin API checks names against).
    catalog.ensure_for_configuration(conn, config, at)
    return changed(conn, at)


def fingerprint(config: Configuration) -> str:
    """A digest of a configuration's content, to notice that a file changed."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# What `postroom config export` writes instead of an IMAP password (without
# --include-secrets); `apply` and a start read it as "keep the stored password".
KEEP_PASSWORD = "(stored password: keep)"


def keep_stored_secrets(
    config: Configuration, stored: Configuration
) -> tuple[Configuration, list[str]]:
    """`config` with every IMAP password written as `KEEP_PASSWORD` replaced by the
    stored route's (same address); the problems where there is none to keep."""
    passwords = {r.address: r.imap.password for r in stored.routes if r.imap is not None}
    problems: list[str] = []
    routes: list[RouteModel] = []
    for i, route in enumerate(config.routes):
        if route.imap is not None and route.imap.password == KEEP_PASSWORD:
            kept = passwords.get(route.address)
            if kept is None:
                problems.append(
                    f"routes[{i}].imap.password: {KEEP_PASSWORD!r} keeps the stored password, "
                    f"but the database has no IMAP mailbox for {route.address}; write the "
                    "password into the file"
                )
            else:
                imap = route.imap.model_copy(update={"password": kept})
                route = route.model_copy(update={"imap": imap})
        routes.append(route)
    return config.model_copy(update={"routes": routes}), problems


def same(a: Configuration, b: Configuration) -> bool:
    """Whether two configurations hold the same calendars, queues, routes and rules, in
    order."""
    return bool(a.model_dump(mode="json") == b.model_dump(mode="json"))


def seed(conn: sa.Connection, config: Configuration, at: datetime, *, source: str) -> str:
    """At start: a database never seeded takes `config` (the file's); one already
    seeded keeps its own configuration, which admins may have changed since.

    Returns what happened: "seeded"; "unchanged" (the database holds what the file
    says); "file differs" (the file changed since the last start and says something
    else than the database: a warning says that the database stays in force and how
    to apply the file); or "database differs" (the file is as at the last start, the
    database was changed since, in the admin pages or with `postroom config apply`).
    """
    digest = fingerprint(config)
    if version(conn) is None:
        config, problems = keep_stored_secrets(config, Configuration())
        if problems:
            raise ConfigError("; ".join(problems))
        replace_all(conn, config, at)
        conn.execute(
            config_state.update()
            .where(config_state.c.id == 1)
            .values(seeded_from=source, file_sha256=digest)
        )
        log.info("configuration seeded from the %s", source)
        return "seeded"
    stored_digest = conn.execute(
        sa.select(config_state.c.file_sha256).where(config_state.c.id == 1)
    ).scalar_one_or_none()
    if stored_digest != digest:
        conn.execute(config_state.update().where(config_state.c.id == 1).values(file_sha256=digest))
    current = load_models(conn)
    if same(keep_stored_secrets(config, current)[0], current):
        return "unchanged"
    if stored_digest != digest:
        log.warning(
            "the configuration file's queues, routes or rules differ from the database; "
            "the database stays in force (it may hold changes made in the admin pages). "
            "See the difference with `postroom config apply FILE --dry-run`, apply the file "
            "with `postroom config apply FILE`, or write the database's configuration to a "
            "file with `postroom config export`."
        )
        return "file differs"
    log.info(
        "the database's queues, routes and rules are in force; they were changed since "
        "the configuration file was last read (admin pages, API or `postroom config apply`)"
    )
    return "database differs"


# -- the cached snapshot -----------------------------------------------------------------


class LiveConfig:
    """The stored configuration, re-read when its version moves.

    `current()` never touches the database once the first snapshot is loaded: a
    daemon thread checks the version every `max_age_s` (one small query) and
    swaps in a new snapshot when it moved, so a change made in another process is
    in force here within about that time. Callers may hold a transaction when
    they ask (on SQLite a read of their own would wait for their own write
    lock). `refresh()` reads at once (after this process made a change, or when
    the router is told of one): call it outside any transaction. Snapshots are
    immutable.
    """

    def __init__(self, db: sa.Engine, *, max_age_s: float = 0.5) -> None:
        self.db = db
        self.max_age_s = max(0.05, max_age_s)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def current(self) -> Snapshot:
        snap = self._snapshot
        if snap is None:
            snap = self.refresh()
        if self._watcher is None and not self._stop.is_set():
            self._start()
        return snap

    def refresh(self) -> Snapshot:
        with self._lock:
            # Read-only: callers may hold a write transaction of their own (the
            # sender asks for queue names inside one); on SQLite a second writer
            # would wait for it, i.e. for itself.
            with self.db.connect().execution_options(**READ_ONLY) as conn:
                stored = version(conn) or 0
                if self._snapshot is None or self._snapshot.version != stored:
                    self._snapshot = load(conn)
            return self._snapshot

    def close(self) -> None:
        """Stop the watcher thread (the snapshot stays readable)."""
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(5)

    def _start(self) -> None:
        with self._lock:
            if self._watcher is not None or self._stop.is_set():
                return
            self._watcher = threading.Thread(
                target=self._watch, name="postroom-config", daemon=True
            )
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.max_age_s):
            try:
                self.refresh()
            except Exception:  # the database is away for a moment: keep the last one
                log.warning(
                    "could not re-read the configuration; keeping the last one", exc_info=True
                )

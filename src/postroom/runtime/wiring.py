"""Wiring: build the store, spool, intake service and workers from Settings.

The one place that knows which adapters run; it holds no business logic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from postroom.ingest.parse_process import ProcessParser
from postroom.ingest.spool import Spool
from postroom.runtime.settings import Settings
from postroom.services import configuration
from postroom.services.admin.schema import Configuration, QueueModel, RouteModel, RuleModel
from postroom.services.configuration import LiveConfig
from postroom.services.intake import EventListener, IntakeConfig, IntakeService
from postroom.store import db
from postroom.store.blobs import FileBlobStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Components:
    settings: Settings
    engine: sa.Engine
    blobs: FileBlobStore
    intake: IntakeService
    clock: Callable[[], datetime]
    live: LiveConfig
    # What the start did with the file's configuration (`configuration.seed`), or None.
    seeded: str | None = None
    _spool: Spool | None = field(default=None)

    def spool(self, on_committed: Callable[[], None] | None = None) -> Spool:
        if self._spool is None:
            self._spool = Spool(self.engine, self.blobs, self.clock, on_committed=on_committed)
        return self._spool

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
        self.intake.close()
        self.live.close()
        self.engine.dispose()


def open_store(
    settings: Settings, *, seed: bool = True, clock: Callable[[], datetime] = utc_now
) -> sa.Engine:
    """The migrated database; a new one is seeded with the file's configuration."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.create_engine(settings.effective_database_url)
    db.migrate(engine)
    if seed:
        seed_configuration(engine, settings, clock)
    return engine


def configured(engine: sa.Engine) -> configuration.Snapshot:
    """The stored configuration now (for commands that run once)."""
    with engine.connect() as conn:
        return configuration.load(conn)


def file_configuration(settings: Settings) -> Configuration:
    """The queues, routes and rules of the settings (the TOML file) as schema models:
    the file's own models (disabled rules included) unless code replaced the domain
    values since (tests do), then those."""
    models = settings.file_configuration
    if models is not None and (
        tuple(q.to_domain() for q in models.queues) == settings.queues
        and tuple(r.to_domain() for r in models.routes) == settings.routes
        and tuple(r.to_domain() for r in models.rules if r.enabled) == settings.rules
    ):
        return models
    return Configuration(
        calendars=list(models.calendars) if models is not None else [],
        queues=[QueueModel.from_domain(q) for q in settings.queues],
        routes=[RouteModel.from_domain(r) for r in settings.routes],
        rules=[RuleModel.from_domain(r) for r in settings.rules],
    )


def seed_configuration(engine: sa.Engine, settings: Settings, clock: Callable[[], datetime]) -> str:
    """A new database takes the file's queues, routes and rules; after that the
    database is the source of truth (services/configuration.py `seed`: the outcome).
    Processes started at once on a new PostgreSQL database may both try to seed it:
    the one that loses the race (a unique row the other wrote) compares instead."""
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                return configuration.seed(
                    conn, file_configuration(settings), clock(), source="file"
                )
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def build(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    listeners: tuple[EventListener, ...] = (),
    sync_config: bool = True,
) -> Components:
    engine = open_store(settings, seed=False, clock=clock)
    seeded = seed_configuration(engine, settings, clock) if sync_config else None
    live = LiveConfig(engine)
    live.refresh()  # the first snapshot, before any caller holds a transaction
    blobs = FileBlobStore(settings.blob_dir)
    intake_cfg = IntakeConfig(
        routes=settings.routes,
        rules=settings.rules,
        loop_guard_max_messages=settings.intake.loop_guard_max_messages,
        loop_guard_window_s=settings.intake.loop_guard_window_s,
        reopen_window_days=settings.intake.reopen_window_days,
        thread_token_prefix=settings.intake.thread_token_prefix,
        max_attempts=settings.intake.max_attempts,
        slow_message_s=settings.intake.slow_message_s,
    )
    budget = settings.intake.parse_timeout_s
    parser = ProcessParser(budget, slow_s=settings.intake.slow_message_s) if budget > 0 else None
    intake = IntakeService(engine, blobs, intake_cfg, clock, listeners, parser=parser, live=live)
    return Components(settings, engine, blobs, intake, clock, live, seeded=seeded)

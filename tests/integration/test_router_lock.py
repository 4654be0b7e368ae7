"""One router per database: the lock on both stores, and a standby router taking over."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from postroom.runtime.router_worker import RouterWorker
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import build
from postroom.services.routing import RoutingService
from postroom.store.router_lock import ADVISORY_KEY, PgAdvisoryLock, router_lock
from tests.waiting import eventually


def test_only_one_process_holds_the_router_lock(any_settings: Settings) -> None:
    comps = build(any_settings)
    try:
        first = router_lock(comps.engine, any_settings.data_dir)
        second = router_lock(comps.engine, any_settings.data_dir)
        assert first.try_acquire() and first.held()
        assert not second.try_acquire() and not second.held()
        assert first.try_acquire()  # taking it again is a no-op, not a deadlock
        first.release()
        assert not first.held()
        assert second.try_acquire() and second.held()
        second.release()
    finally:
        comps.close()


@pytest.mark.postgres
def test_a_dropped_connection_loses_the_lock_and_frees_it(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        lock, other = PgAdvisoryLock(engine), PgAdvisoryLock(engine)
        assert lock.try_acquire()
        with engine.connect() as admin:
            admin.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND classid = :hi AND objid = :lo AND objsubid = 1"
                ),
                {"hi": ADVISORY_KEY >> 32, "lo": ADVISORY_KEY & 0xFFFFFFFF},
            )
        assert not lock.held()  # noticed, so its router stops routing
        assert other.try_acquire()
        other.release()
    finally:
        engine.dispose()


def test_a_standby_router_takes_over_when_the_leader_stops(any_settings: Settings) -> None:
    comps = build(any_settings)
    lead = RouterWorker(
        RoutingService(comps.engine, comps.settings.queues, comps.clock),
        comps.clock,
        lock=router_lock(comps.engine, any_settings.data_dir),
    )
    standby = RouterWorker(
        RoutingService(comps.engine, comps.settings.queues, comps.clock),
        comps.clock,
        lock=router_lock(comps.engine, any_settings.data_dir),
        standby_s=0.05,
    )
    try:
        lead.start()
        eventually(lambda: lead.leading)
        standby.start()
        time.sleep(0.3)
        assert not standby.leading  # two routers would both act on every request
        lead.stop()
        eventually(lambda: standby.leading)
    finally:
        lead.stop()
        standby.stop()
        comps.close()

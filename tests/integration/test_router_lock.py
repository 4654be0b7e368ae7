"""One router per database: the lock on both stores, and a standby router taking over."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from postroom.runtime.router_worker import RouterWorker
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import build
from postroom.services import agents as agent_svc
from postroom.services.routing import RoutingService
from postroom.store.router_lock import ADVISORY_KEY, LockLost, PgAdvisoryLock, router_lock
from postroom.store.schema import events
from tests.integration.test_routing_service import conv, deliver
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


def test_a_router_taking_over_keeps_the_offer_and_answers_the_waiting_accept(
    any_settings: Settings,
) -> None:
    """The field case: the leader offered a conversation and died; the agent's accept
    waits in routing_inbox; the router taking over must not offer it to anyone else."""
    comps = build(any_settings)
    known = [q.name for q in comps.settings.queues]
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
        for agent in ("ann", "bob"):
            agent_svc.add_agent(comps.engine, comps.clock, agent, queues=("support",), known_queues=known)
            rid = agent_svc.request(comps.engine, comps.clock, "presence", agent_id=agent, data={"presence": "on_queue"})
            assert agent_svc.wait_result(comps.engine, rid) == "ok"
        cid = deliver(comps)
        lead.wake()
        offered = eventually(lambda: (r := conv(comps, cid)).state == "alerting" and r)
        lead.stop()  # no router runs now
        rid = agent_svc.request(comps.engine, comps.clock, "accept", agent_id=offered.agent_id, conversation_id=cid)
        with comps.engine.connect() as c:
            mark = int(c.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)
        standby.start()
        assert agent_svc.wait_result(comps.engine, rid) == "ok"
        row = conv(comps, cid)
        assert (row.state, row.agent_id) == ("connected", offered.agent_id)
        with comps.engine.connect() as c:
            kinds = c.execute(
                sa.select(events.c.kind).where(events.c.id > mark, events.c.conversation_id == cid)
            ).scalars().all()
        assert "offer_created" not in kinds and "offer_withdrawn" not in kinds, kinds
    finally:
        lead.stop()
        standby.stop()
        comps.close()


def test_decisions_do_not_commit_once_the_lock_is_lost(any_settings: Settings) -> None:
    comps = build(any_settings)
    lock = router_lock(comps.engine, any_settings.data_dir)
    service = RoutingService(comps.engine, comps.settings.queues, comps.clock)
    RouterWorker(service, comps.clock, lock=lock)  # wires the fence into the service
    try:
        assert lock.try_acquire()
        agent_svc.add_agent(comps.engine, comps.clock, "ann", queues=("support",), known_queues=["support"])
        service.rebuild()
        if isinstance(lock, PgAdvisoryLock):
            _terminate_lock_sessions(comps.engine)
        else:
            lock.path.unlink()  # a lock file deleted under us excludes nobody
        with comps.engine.begin() as conn, pytest.raises(LockLost):
            lock.fence(conn)
        rid = agent_svc.request(comps.engine, comps.clock, "presence", agent_id="ann", data={"presence": "on_queue"})
        with pytest.raises(LockLost):
            service.poll()
        assert agent_svc.wait_result(comps.engine, rid, 0) is None  # not answered: nothing committed
        assert not lock.held()
    finally:
        lock.release()
        comps.close()


def _terminate_lock_sessions(engine: sa.Engine) -> None:
    with engine.connect() as admin:
        admin.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = :hi AND objid = :lo AND objsubid = 1"
            ),
            {"hi": ADVISORY_KEY >> 32, "lo": ADVISORY_KEY & 0xFFFFFFFF},
        )

"""The routing engine inside the service: intake → offer → accept → wrap-up, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services import agents as svc
from postroom.services.routing import RoutingService
from postroom.store.db import as_utc
from postroom.store.schema import agents, conversations, events
from tests.mailfactory import make_email


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def comps(any_settings: Settings, clock: Clock) -> Iterator[Components]:
    c = build(any_settings, clock=clock)
    yield c
    c.close()


@pytest.fixture
def router(comps: Components, clock: Clock) -> RoutingService:
    r = RoutingService(comps.engine, comps.settings.queues, clock)
    r.rebuild()
    return r


def deliver(c: Components, **kw: Any) -> int:
    pk = c.spool().accept_sync(make_email(**kw), source="smtp", envelope_to=["support@example.com"]).message_pk
    c.intake.drain()
    with c.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT conversation_id FROM messages WHERE id = :p"), {"p": pk}).scalar_one())


def conv(c: Components, cid: int) -> sa.Row[Any]:
    with c.engine.connect() as conn:
        row = conn.execute(sa.select(conversations).where(conversations.c.id == cid)).first()
    assert row is not None
    return row


def ask(c: Components, r: RoutingService, kind: str, agent: str | None = None, cid: int | None = None, **data: Any) -> str:
    rid = svc.request(c.engine, c.clock, kind, agent_id=agent, conversation_id=cid, data=data)
    r.poll()
    result = svc.wait_result(c.engine, rid, 0)
    assert result is not None
    return result


def on_queue(c: Components, r: RoutingService, agent: str, queues: tuple[str, ...] = ("support",)) -> None:
    svc.add_agent(c.engine, c.clock, agent, queues=queues, known_queues=[q.name for q in c.settings.queues])
    assert ask(c, r, "presence", agent, presence="on_queue") == "ok"


def test_full_loop_offer_accept_wrapup(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps)
    router.poll()
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("alerting", "ann") and row.offer_deadline is not None
    assert ask(comps, router, "accept", "ann", cid) == "ok"
    assert conv(comps, cid).state == "connected"
    ask(comps, router, "end", "ann", cid)
    assert ask(comps, router, "wrapup", "ann", cid, code="resolved") == "ok"
    row = conv(comps, cid)
    assert (row.state, row.wrapup_code, row.last_agent) == ("closed", "resolved", "ann")
    with comps.engine.connect() as conn:
        kinds = [k for (k,) in conn.execute(sa.select(events.c.kind).order_by(events.c.id))]
    assert "offer_created" in kinds and "conversation_closed" in kinds


def test_accepting_someone_elses_offer_is_refused(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")
    svc.add_agent(comps.engine, comps.clock, "bob", queues=["billing"], known_queues=["support", "billing", "vip"])
    cid = deliver(comps)
    router.poll()
    assert ask(comps, router, "accept", "bob", cid).startswith("refused")
    assert conv(comps, cid).state == "alerting"


def test_decline_marks_not_responding_and_offers_the_next_agent(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    cid = deliver(comps)
    router.poll()
    first = conv(comps, cid).agent_id
    ask(comps, router, "decline", first, cid)
    row = conv(comps, cid)
    assert row.state == "alerting" and row.agent_id not in (None, first)
    with comps.engine.connect() as conn:
        status = conn.execute(sa.select(agents.c.routing_status).where(agents.c.id == first)).scalar_one()
    assert status == "not_responding"


def test_offer_times_out_on_the_injected_clock(comps: Components, router: RoutingService, clock: Clock) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps)
    router.poll()
    clock.now += timedelta(seconds=61)
    router.poll()
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("queued", None)


def test_restart_keeps_alerting_offers_with_their_agent_and_keeps_connected_work(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    first = deliver(comps, subject="one")
    router.poll()
    holder = conv(comps, first).agent_id
    ask(comps, router, "accept", holder, first)
    second = deliver(comps, subject="two", sender="zed@customer.example")
    router.poll()
    offered = conv(comps, second)
    assert offered.state == "alerting" and offered.agent_id not in (None, holder)
    # The process dies; a new router rebuilds from the database a while later.
    clock.now += timedelta(seconds=20)
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    assert conv(comps, first).state == "connected" and conv(comps, first).agent_id == holder
    row = conv(comps, second)
    assert (row.state, row.agent_id) == ("alerting", offered.agent_id)
    assert as_utc(row.offer_deadline) == as_utc(offered.offer_deadline)
    view = fresh.engine.agent(holder)
    assert view is not None and view.free == 0  # still holds its conversation
    waiting = fresh.engine.conversation(str(second))
    assert waiting is not None and waiting.offer_deadline == _ts(offered.offer_deadline)
    arrived = as_utc(offered.enqueued_at)
    assert arrived is not None and waiting.enqueued_at == arrived.timestamp()  # not the restart


def _ts(value: datetime | None) -> float:
    v = as_utc(value)
    assert v is not None
    return v.timestamp()


def _events(c: Components, after: int, cid: int) -> list[tuple[str, dict[str, Any]]]:
    with c.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.kind, events.c.data)
            .where(events.c.id > after, events.c.conversation_id == cid)
            .order_by(events.c.id)
        ).all()
    return [(k, d or {}) for k, d in rows]


def _last_event(c: Components) -> int:
    with c.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)


def test_an_accept_waiting_when_a_new_router_starts_is_answered_against_the_kept_offer(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    cid = deliver(comps)
    router.poll()
    agent = conv(comps, cid).agent_id
    assert agent in ("ann", "bob")
    # The agent accepts while no router runs (the old one was killed).
    rid = svc.request(comps.engine, comps.clock, "accept", agent_id=agent, conversation_id=cid)
    mark = _last_event(comps)
    clock.now += timedelta(seconds=15)
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    fresh.poll()
    assert svc.wait_result(comps.engine, rid, 0) == "ok"
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("connected", agent)
    kinds = [k for k, _ in _events(comps, mark, cid)]
    assert "offer_created" not in kinds and "offer_withdrawn" not in kinds, kinds


def test_an_offer_whose_deadline_passed_while_no_router_ran_times_out_on_the_first_tick(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    cid = deliver(comps)
    router.poll()
    first = conv(comps, cid).agent_id
    mark = _last_event(comps)
    clock.now += timedelta(minutes=5)
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    assert (conv(comps, cid).state, conv(comps, cid).agent_id) == ("alerting", first)
    fresh.poll()
    got = _events(comps, mark, cid)
    assert ("offer_timed_out", {"agent": first}) in got
    row = conv(comps, cid)
    assert row.state == "alerting" and row.agent_id not in (None, first)
    with comps.engine.connect() as conn:
        status = conn.execute(sa.select(agents.c.routing_status).where(agents.c.id == first)).scalar_one()
    assert status == "not_responding"


def test_an_offer_to_an_agent_who_no_longer_exists_is_withdrawn_and_offered_again(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps)
    router.poll()
    assert conv(comps, cid).agent_id == "ann"
    on_queue(comps, router, "bob")
    with comps.engine.begin() as conn:
        conn.execute(agents.delete().where(agents.c.id == "ann"))
    mark = _last_event(comps)
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    got = _events(comps, mark, cid)
    assert got[0] == ("offer_withdrawn", {"agent": "ann", "reason": "agent_unknown"}), got
    assert (conv(comps, cid).state, conv(comps, cid).agent_id) == ("alerting", "bob")


def test_an_offer_to_an_agent_removed_from_its_queue_while_no_router_ran_is_withdrawn(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann", queues=("support", "billing"))
    cid = deliver(comps)
    router.poll()
    assert conv(comps, cid).agent_id == "ann"
    on_queue(comps, router, "bob")
    with comps.engine.begin() as conn:  # ann left support while no router ran
        conn.execute(agents.update().where(agents.c.id == "ann").values(queues=["billing"]))
    mark = _last_event(comps)
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    got = _events(comps, mark, cid)
    assert got[0] == ("offer_withdrawn", {"agent": "ann", "reason": "left_queue"}), got
    assert (conv(comps, cid).state, conv(comps, cid).agent_id) == ("alerting", "bob")


def test_not_responding_survives_a_rebuild(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps)
    router.poll()
    assert ask(comps, router, "decline", "ann", cid) == "ok"
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    view = fresh.engine.agent("ann")
    assert view is not None and view.status == "not_responding"
    assert (conv(comps, cid).state, conv(comps, cid).agent_id) == ("queued", None)
    other = deliver(comps, subject="another", sender="zed@customer.example")
    fresh.poll()
    assert conv(comps, other).state == "queued"  # ann gets nothing until on queue again
    assert ask(comps, fresh, "presence", "ann", presence="on_queue") == "ok"
    assert conv(comps, cid).agent_id == "ann"


def _status(c: Components, agent: str) -> str:
    with c.engine.connect() as conn:
        return str(conn.execute(sa.select(agents.c.routing_status).where(agents.c.id == agent)).scalar_one())


def test_presence_set_while_no_router_ran_is_the_stored_status_after_the_rebuild(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    for other in ("bob", "cat"):
        svc.add_agent(comps.engine, comps.clock, other, queues=["support"], known_queues=["support", "billing", "vip"])
    cid = deliver(comps)
    router.poll()
    assert ask(comps, router, "decline", "ann", cid) == "ok"
    assert _status(comps, "ann") == "not_responding"
    # While no router runs: bob and cat go on queue, ann back on queue.
    for agent in ("bob", "cat", "ann"):
        svc.request(comps.engine, comps.clock, "presence", agent_id=agent, data={"presence": "on_queue"})
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    assert conv(comps, cid).agent_id in ("bob", "cat")
    statuses = {a: _status(comps, a) for a in ("ann", "bob", "cat")}
    assert statuses["ann"] == "not_responding"
    assert sorted((statuses["bob"], statuses["cat"])) == ["idle", "interacting"]  # not off_queue
    fresh.poll()  # ann's waiting request brings her back
    assert _status(comps, "ann") == "idle"


def test_an_offer_made_again_to_the_same_agent_carries_the_new_deadline(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps)
    router.poll()
    old = as_utc(conv(comps, cid).offer_deadline)
    clock.now += timedelta(seconds=30)
    # One batch: ann declines, goes on queue again and is the only one to offer it to.
    svc.request(comps.engine, comps.clock, "decline", agent_id="ann", conversation_id=cid)
    svc.request(comps.engine, comps.clock, "presence", agent_id="ann", data={"presence": "on_queue"})
    router.poll()
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("alerting", "ann")
    assert old is not None and as_utc(row.offer_deadline) == old + timedelta(seconds=30)
    view = router.engine.conversation(str(cid))
    assert view is not None and view.offer_deadline == _ts(row.offer_deadline)


def test_take_back_connects_a_parked_conversation_to_its_agent_even_at_capacity(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")  # capacity 1
    parked = deliver(comps, subject="one")
    router.poll()
    assert ask(comps, router, "accept", "ann", parked) == "ok"
    assert ask(comps, router, "park", "ann", parked) == "ok"
    busy = deliver(comps, subject="two", sender="zed@customer.example")
    router.poll()
    assert ask(comps, router, "accept", "ann", busy) == "ok"
    assert ask(comps, router, "take_back", "ann", parked) == "ok"
    row = conv(comps, parked)
    assert (row.state, row.agent_id) == ("connected", "ann")
    view = router.engine.agent("ann")
    assert view is not None and set(view.load) == {str(parked), str(busy)} and view.free == 0
    assert ask(comps, router, "take_back", "ann", parked).startswith("refused")  # not parked


def test_take_back_by_someone_else_is_refused(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    cid = deliver(comps)
    router.poll()
    agent = conv(comps, cid).agent_id
    ask(comps, router, "accept", agent, cid)
    ask(comps, router, "park", agent, cid)
    other = "bob" if agent == "ann" else "ann"
    assert ask(comps, router, "take_back", other, cid).startswith("refused")
    assert conv(comps, cid).state == "parked"


def test_a_customer_reply_to_a_parked_conversation_connects_it_to_its_agent(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps, message_id="<parked@customer.example>")
    router.poll()
    ask(comps, router, "accept", "ann", cid)
    ask(comps, router, "park", "ann", cid)
    assert deliver(comps, in_reply_to="<parked@customer.example>") == cid
    router.poll()
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("connected", "ann")


def test_a_customer_reply_while_the_agent_is_off_queue_goes_to_the_queue(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps, message_id="<parked@customer.example>")
    router.poll()
    ask(comps, router, "accept", "ann", cid)
    ask(comps, router, "park", "ann", cid)
    assert ask(comps, router, "presence", "ann", presence="break") == "ok"
    on_queue(comps, router, "bob")
    assert deliver(comps, in_reply_to="<parked@customer.example>") == cid
    router.poll()
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("alerting", "bob")


def test_reply_after_close_goes_back_to_the_last_agent(comps: Components, router: RoutingService) -> None:
    from dataclasses import replace

    router.queues["support"] = replace(router.queues["support"], last_agent_routing_mode="queue_members_only")
    router.rebuild()
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    cid = deliver(comps, message_id="<orig@customer.example>")
    router.poll()
    agent = conv(comps, cid).agent_id
    ask(comps, router, "accept", agent, cid)
    ask(comps, router, "end", agent, cid)
    ask(comps, router, "wrapup", agent, cid, code="done")
    again = deliver(comps, in_reply_to="<orig@customer.example>")
    assert again != cid and conv(comps, again).last_agent == agent
    router.poll()
    assert conv(comps, again).agent_id == agent


def test_a_transfer_into_a_queue_restarts_the_wait_in_the_database(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps)
    router.poll()
    arrived = as_utc(conv(comps, cid).enqueued_at)
    assert ask(comps, router, "accept", "ann", cid) == "ok"
    clock.now += timedelta(minutes=10)
    assert ask(comps, router, "transfer_queue", "ann", cid, queue="billing") == "ok"
    row = conv(comps, cid)
    assert (row.state, row.queue) == ("queued", "billing")
    assert as_utc(row.enqueued_at) == clock.now and clock.now - arrived == timedelta(minutes=10)

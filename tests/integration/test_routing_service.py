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


def test_restart_reoffers_alerting_and_keeps_connected_work(comps: Components, router: RoutingService, clock: Clock) -> None:
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    first = deliver(comps, subject="one")
    router.poll()
    holder = conv(comps, first).agent_id
    ask(comps, router, "accept", holder, first)
    second = deliver(comps, subject="two", sender="zed@customer.example")
    router.poll()
    assert conv(comps, second).state == "alerting"
    # The process dies; a new router rebuilds from the database a while later.
    clock.now += timedelta(minutes=5)
    fresh = RoutingService(comps.engine, comps.settings.queues, clock)
    fresh.rebuild()
    assert conv(comps, first).state == "connected" and conv(comps, first).agent_id == holder
    row = conv(comps, second)
    assert row.state == "alerting" and row.agent_id not in (None, holder)
    view = fresh.engine.agent(holder)
    assert view is not None and view.free == 0  # still holds its conversation
    waiting = fresh.engine.conversation(str(second))
    arrived = conv(comps, second).enqueued_at
    assert waiting is not None and arrived is not None
    assert waiting.enqueued_at == arrived.replace(tzinfo=UTC).timestamp()  # not the restart time


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

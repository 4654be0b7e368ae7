"""The router writes `presence_changed` {agent, presence, routing_status} to `events`
whenever an agent's presence or routing status changes — on queue, an offer, its
accept, decline, wrap-up, going away, the presence time-out — once per change, and a
rebuild writes one only for agents whose state differs from their last event. Both
stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services import agents as agent_svc
from postroom.services.routing import RoutingService
from postroom.store.schema import events
from tests.integration.test_routing_service import Clock, ask, deliver, on_queue


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


def changes(c: Components, agent: str, after: int = 0) -> list[tuple[str, str]]:
    with c.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.data)
            .where(events.c.kind == "presence_changed", events.c.id > after)
            .order_by(events.c.id)
        ).all()
    return [(d["presence"], d["routing_status"]) for (d,) in rows if d["agent"] == agent]


def last_id(c: Components) -> int:
    with c.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)


def test_on_queue_offer_accept_and_wrapup_each_write_one_change(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    # added and put on queue in one batch: the state after it
    assert changes(comps, "ann") == [("on_queue", "IDLE")]
    cid = deliver(comps)
    router.poll()  # offered: alerting counts toward the load
    assert changes(comps, "ann")[-1] == ("on_queue", "INTERACTING")
    mark = last_id(comps)
    assert ask(comps, router, "accept", "ann", cid) == "ok"
    assert changes(comps, "ann", mark) == []  # still interacting: nothing changed
    assert ask(comps, router, "end", "ann", cid) == "ok"
    assert ask(comps, router, "wrapup", "ann", cid, code="") == "ok"
    assert changes(comps, "ann", mark) == [("on_queue", "IDLE")]


def test_a_decline_makes_the_agent_not_responding_and_away_off_queue(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    cid = deliver(comps)
    router.poll()
    mark = last_id(comps)
    assert ask(comps, router, "decline", "ann", cid) == "ok"
    assert changes(comps, "ann", mark) == [("on_queue", "NOT_RESPONDING")]
    assert ask(comps, router, "presence", "ann", presence="away") == "ok"
    assert changes(comps, "ann", mark)[-1] == ("away", "OFF_QUEUE")


def test_the_presence_time_outs_request_writes_offline(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    mark = last_id(comps)
    # what services/users.py take_gone_agents_off_queue asks the router for
    agent_svc.request(comps.engine, comps.clock, "presence", agent_id="ann",
                      data={"presence": "offline", "cause": "timeout"})  # fmt: skip
    router.poll()
    assert changes(comps, "ann", mark) == [("offline", "OFF_QUEUE")]


def test_a_rebuild_writes_only_what_changed_since_the_last_event(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")
    on_queue(comps, router, "bob")
    mark = last_id(comps)
    again = RoutingService(comps.engine, comps.settings.queues, clock)
    again.rebuild()
    assert changes(comps, "ann", mark) == [] and changes(comps, "bob", mark) == []
    # bob went away while no router ran: the request's presence is in his row already
    ask(comps, again, "presence", "bob", presence="away")
    third = RoutingService(comps.engine, comps.settings.queues, clock)
    third.rebuild()
    assert changes(comps, "bob", mark) == [("away", "OFF_QUEUE")]


def test_presence_changed_is_a_streamed_and_webhook_event_kind() -> None:
    from postroom.services.admin.webhooks import EVENT_KINDS
    from postroom.services.conversations import STREAM_KINDS

    assert "presence_changed" in STREAM_KINDS
    assert "presence_changed" in EVENT_KINDS

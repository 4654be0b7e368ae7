"""The router takes an agent-initiated email (request `adopt`) into the engine as the
agent's work (one `ConversationAssigned`): capacity held, even past it, nothing else
offered, no offer made, presence left alone, the status only as the load implies;
also after a restart. Both stores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.domain.routes import Route
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services import agents as svc
from postroom.services import new_email
from postroom.services.outbound import OutboundConfig, OutboundService
from postroom.services.routing import RoutingService
from postroom.services.users import User
from postroom.store.schema import events, routing_inbox
from tests.integration.test_routing_service import Clock, ask, conv, deliver, on_queue


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def comps(any_settings: Settings, clock: Clock) -> Iterator[Components]:
    # billing gets an address of its own, so that anyone can send from it
    routes = (*any_settings.routes, Route("billing@example.com", "billing"))
    c = build(replace(any_settings, routes=routes), clock=clock)
    yield c
    c.close()


@pytest.fixture
def router(comps: Components, clock: Clock) -> RoutingService:
    r = RoutingService(comps.engine, comps.settings.queues, clock)
    r.rebuild()
    return r


def start(c: Components, user: str, *, queue: str = "support", agent: str | None = None, role: str = "agent") -> int:
    outbound = OutboundService(c.engine, c.blobs, OutboundConfig(), c.clock)
    started = new_email.start(
        c.engine, outbound, c.clock, User(user, user.title(), None, role),
        new_email.NewEmail(queue=queue, subject="Hello", to=("ada@customer.example",), text="Hi", agent=agent),
        queues=c.settings.queues, routes=c.settings.routes, max_recipients=50, max_attachments=50,
    )
    return started.conversation_id


def adopt_result(c: Components, cid: int) -> str | None:
    with c.engine.connect() as conn:
        return conn.execute(
            sa.select(routing_inbox.c.result).where(routing_inbox.c.kind == "adopt", routing_inbox.c.conversation_id == cid)
        ).scalar()


def kinds_after(c: Components, after: int, kind: str) -> list[dict[str, Any]]:
    with c.engine.connect() as conn:
        return [dict(r.data) | {"conversation_id": r.conversation_id} for r in conn.execute(
            sa.select(events).where(events.c.id > after, events.c.kind == kind).order_by(events.c.id)
        )]


def last_event(c: Components) -> int:
    with c.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)


def held(router: RoutingService, cid: int, agent: str) -> bool:
    view = router.engine.conversation(str(cid))
    return view is not None and view.state == "connected" and view.agent_id == agent


def test_agent_with_room_is_connected_without_an_offer(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")
    mark = last_event(comps)
    cid = start(comps, "ann")
    router.poll()
    assert adopt_result(comps, cid) == "ok" and held(router, cid, "ann")
    a = router.engine.agent("ann")
    assert a is not None and a.free == 0 and a.status == "interacting"
    assert kinds_after(comps, mark, "offer_created") == []
    assert [(e["old"], e["new"]) for e in kinds_after(comps, mark, "routing_status_changed")] == [("idle", "interacting")]
    assert kinds_after(comps, mark, "conversation_state_changed") == []  # the row said connected already


def test_agent_not_in_the_queue_gets_it_all_the_same(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")  # support only
    cid = start(comps, "sue", queue="billing", agent="ann", role="supervisor")
    router.poll()
    assert adopt_result(comps, cid) == "ok" and held(router, cid, "ann")
    assert conv(comps, cid).queue == "billing"


def test_full_agent_takes_one_more_and_nothing_else(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")  # capacity 1
    first = deliver(comps, subject="first")
    router.poll()
    ask(comps, router, "accept", "ann", first)
    waiting = deliver(comps, subject="waits", sender="zed@customer.example")
    router.poll()
    assert conv(comps, waiting).state == "queued"
    mark = last_event(comps)
    cid = start(comps, "ann")
    router.poll()
    assert adopt_result(comps, cid) == "ok" and held(router, cid, "ann")
    a = router.engine.agent("ann")
    assert a is not None and sorted(a.load) == sorted([str(first), str(cid)])
    assert (a.capacity, a.queues, a.status) == (1, frozenset({"support"}), "interacting")
    assert conv(comps, waiting).state == "queued"
    assert kinds_after(comps, mark, "routing_status_changed") == []
    assert kinds_after(comps, mark, "offer_created") == []
    # ending both frees ann for the waiting customer
    ask(comps, router, "end", "ann", cid)
    assert conv(comps, waiting).state == "queued"  # still one conversation for capacity 1
    ask(comps, router, "end", "ann", first)
    assert (conv(comps, waiting).state, conv(comps, waiting).agent_id) == ("alerting", "ann")


def test_off_queue_agent_stays_off_queue_and_waiting_work_waits(comps: Components, router: RoutingService) -> None:
    svc.add_agent(comps.engine, comps.clock, "ann", queues=["support"], capacity=3, known_queues=["support", "billing", "vip"])
    router.poll()
    waiting = deliver(comps)
    router.poll()
    mark = last_event(comps)
    cid = start(comps, "ann")
    router.poll()
    assert adopt_result(comps, cid) == "ok" and held(router, cid, "ann")
    a = router.engine.agent("ann")
    assert a is not None
    assert (a.presence, a.status, a.capacity, a.queues) == ("offline", "off_queue", 3, frozenset({"support"}))
    assert conv(comps, waiting).state == "queued"
    assert kinds_after(comps, mark, "routing_status_changed") == []
    assert kinds_after(comps, mark, "offer_created") == []
    # on queue later: two of her three slots are free for routed work
    ask(comps, router, "presence", "ann", presence="on_queue")
    assert conv(comps, waiting).agent_id == "ann"


def test_not_responding_agent_stays_not_responding_until_on_queue_again(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    offered = deliver(comps)
    router.poll()
    ask(comps, router, "decline", "ann", offered)
    assert router.engine.agent("ann").status == "not_responding"  # type: ignore[union-attr]
    mark = last_event(comps)
    cid = start(comps, "ann")
    router.poll()
    assert adopt_result(comps, cid) == "ok" and held(router, cid, "ann")
    assert router.engine.agent("ann").status == "not_responding"  # type: ignore[union-attr]
    assert kinds_after(comps, mark, "routing_status_changed") == []
    assert conv(comps, offered).state == "queued"
    # Going on queue again clears it; her one slot is taken by the new email.
    ask(comps, router, "presence", "ann", presence="on_queue")
    assert router.engine.agent("ann").status == "interacting"  # type: ignore[union-attr]
    assert conv(comps, offered).state == "queued"


def test_a_reply_waiting_for_its_last_agent_waits_until_she_is_below_capacity(
    comps: Components, router: RoutingService
) -> None:
    router.queues["support"] = replace(router.queues["support"], last_agent_routing_mode="any_agent")
    router.rebuild()
    on_queue(comps, router, "ann")
    old = deliver(comps, message_id="<old@customer.example>")
    router.poll()
    ask(comps, router, "accept", "ann", old)
    ask(comps, router, "end", "ann", old)
    busy = deliver(comps, subject="busy", sender="zed@customer.example")
    router.poll()
    ask(comps, router, "accept", "ann", busy)  # ann is full now
    reply = deliver(comps, in_reply_to="<old@customer.example>")
    router.poll()
    assert conv(comps, reply).state == "queued" and conv(comps, reply).last_agent == "ann"
    mark = last_event(comps)
    cid = start(comps, "ann")
    router.poll()
    # The new email is hers (2 held, capacity 1); nothing is offered to her, so the
    # customer's reply, waiting for her as last agent, waits until she is below
    # capacity again.
    assert held(router, cid, "ann")
    assert kinds_after(comps, mark, "offer_created") == []
    assert conv(comps, reply).state == "queued"
    ask(comps, router, "end", "ann", cid)
    assert conv(comps, reply).state == "queued"
    ask(comps, router, "end", "ann", busy)
    assert (conv(comps, reply).state, conv(comps, reply).agent_id) == ("alerting", "ann")


def test_a_router_that_starts_later_takes_it_in(comps: Components, clock: Clock) -> None:
    svc.add_agent(comps.engine, comps.clock, "ann", queues=["support"], known_queues=["support", "billing", "vip"])
    cid = start(comps, "ann")  # no router is running
    later = RoutingService(comps.engine, comps.settings.queues, clock)
    later.rebuild()  # held work goes back to its agent ...
    assert held(later, cid, "ann")
    later.poll()  # ... and the request finds it there
    assert adopt_result(comps, cid) == "ok" and held(later, cid, "ann")
    assert ask(comps, later, "end", "ann", cid) == "ok"
    assert conv(comps, cid).state == "closed" and conv(comps, cid).last_agent == "ann"


def test_a_restart_gives_an_agent_back_all_she_held_even_past_her_capacity(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")  # capacity 1
    first = deliver(comps, subject="first")
    router.poll()
    ask(comps, router, "accept", "ann", first)
    cid = start(comps, "ann")
    router.poll()
    parked = start(comps, "ann")
    router.poll()
    assert ask(comps, router, "park", "ann", parked) == "ok"
    waiting = deliver(comps, subject="waits", sender="zed@customer.example")
    router.poll()
    later = RoutingService(comps.engine, comps.settings.queues, clock)
    later.rebuild()
    assert held(later, first, "ann") and held(later, cid, "ann")
    p = later.engine.conversation(str(parked))
    assert p is not None and (p.state, p.agent_id) == ("parked", "ann")
    a = later.engine.agent("ann")
    assert a is not None and (sorted(a.load), a.free, a.status) == (
        sorted([str(first), str(cid)]), 0, "interacting",
    )  # fmt: skip
    assert conv(comps, waiting).state == "queued"


def test_a_new_email_the_router_cannot_take_in_is_not_closed_by_later_requests(
    comps: Components, clock: Clock
) -> None:
    # A router configured without `billing` (e.g. started with another file)
    # refuses the adoption; the agent's later requests are refused too, but
    # the conversation stays the agent's instead of being closed under them.
    router = RoutingService(comps.engine, [q for q in comps.settings.queues if q.name != "billing"], clock)
    router.rebuild()
    on_queue(comps, router, "ann")
    cid = start(comps, "ann", queue="billing", agent="ann", role="supervisor")
    router.poll()
    assert (adopt_result(comps, cid) or "").startswith("refused"), adopt_result(comps, cid)
    assert conv(comps, cid).state == "connected"
    assert ask(comps, router, "transfer_queue", "ann", cid, queue="support").startswith("refused")
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("connected", "ann")

"""A route's (or rule's) preferred agents and deadline reach the routing engine:
intake stores them on the conversation, the router hands them to the engine, also
after a restart. Through intake and the router service on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings, from_mapping
from postroom.runtime.wiring import Components, build
from postroom.services import agents as svc
from postroom.services.routing import RoutingService
from postroom.store.db import as_utc
from postroom.store.schema import conversations, messages
from tests.mailfactory import make_email


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


CONFIG = {
    "queues": [{"name": "support"}, {"name": "other"}],
    "routes": [
        {
            "address": "support@example.com",
            "queue": "support",
            "preferred_agents": ["bob"],
            "preferred_window_s": 300,
            "deadline_s": 1800,
        },
        {"address": "sales@example.com", "queue": "support"},
    ],
    "rules": [
        {
            "name": "invoices to carl",
            "when": [{"field": "subject", "op": "contains", "value": "invoice"}],
            "then": {"preferred_agents": ["carl"]},
        }
    ],
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def comps(any_settings: Settings, clock: Clock) -> Iterator[Components]:
    configured = from_mapping(CONFIG)
    s = replace(
        any_settings,
        queues=configured.queues,
        routes=configured.routes,
        rules=configured.rules,
    )
    c = build(s, clock=clock)
    yield c
    c.close()


@pytest.fixture
def router(comps: Components, clock: Clock) -> RoutingService:
    r = RoutingService(comps.engine, comps.settings.queues, clock)
    r.rebuild()
    return r


def deliver(c: Components, to: str = "support@example.com", **kw: Any) -> int:
    raw = make_email(to=to, **kw)
    pk = c.spool().accept_sync(raw, source="smtp", envelope_to=[to]).message_pk
    c.intake.drain()
    with c.engine.connect() as conn:
        cid = conn.execute(
            sa.select(messages.c.conversation_id).where(messages.c.id == pk)
        ).scalar_one()
    assert cid is not None
    return int(cid)


def conv(c: Components, cid: int) -> sa.Row[Any]:
    with c.engine.connect() as conn:
        return conn.execute(sa.select(conversations).where(conversations.c.id == cid)).one()


def ask(c: Components, r: RoutingService, kind: str, agent: str, **data: Any) -> None:
    rid = svc.request(c.engine, c.clock, kind, agent_id=agent, data=data)
    r.poll()
    assert svc.wait_result(c.engine, rid, 0) == "ok"


def on_queue(c: Components, r: RoutingService, *names: str) -> None:
    for agent in names:
        svc.add_agent(
            c.engine, c.clock, agent, queues=["support", "other"], known_queues=["support", "other"]
        )
        ask(c, r, "presence", agent, presence="on_queue")


def test_the_routes_preferred_agent_is_offered_first(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann", "bob")  # ann would win the tie-break
    cid = deliver(comps)
    router.poll()
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("alerting", "bob")
    assert row.preferred_agents == ["bob"]
    # Without preferred agents, the same mail goes to ann.
    other = deliver(comps, to="sales@example.com")
    router.poll()
    assert conv(comps, other).agent_id == "ann"


def test_only_preferred_agents_during_the_window_then_everyone(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")  # bob is not on queue
    cid = deliver(comps)
    router.poll()
    assert conv(comps, cid).state == "queued"
    clock.now += timedelta(seconds=200)
    # A restart hands the engine what is left of the window, not a new one.
    restarted = RoutingService(comps.engine, comps.settings.queues, clock)
    restarted.rebuild()
    assert conv(comps, cid).state == "queued"
    clock.now += timedelta(seconds=101)
    restarted.poll()
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("alerting", "ann")


def test_a_rule_names_preferred_agents(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann", "bob", "carl")
    cid = deliver(comps, subject="Your invoice 42")
    router.poll()
    assert conv(comps, cid).agent_id == "carl"


def test_the_routes_deadline_is_the_conversations_deadline(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    cid = deliver(comps)
    row = conv(comps, cid)
    assert as_utc(row.deadline_at) == clock.now + timedelta(seconds=1800)
    router.poll()
    view = router.engine.conversation(str(cid))
    assert view is not None
    assert view.deadline == (clock.now + timedelta(seconds=1800)).timestamp()
    plain = deliver(comps, to="sales@example.com")
    assert conv(comps, plain).deadline_at is None
    router.poll()
    view = router.engine.conversation(str(plain))
    assert view is not None
    assert view.deadline == (clock.now + timedelta(seconds=86400)).timestamp()


def test_a_transfer_drops_the_routes_preferences_also_across_a_restart(
    comps: Components, router: RoutingService, clock: Clock
) -> None:
    on_queue(comps, router, "ann")  # bob, the preferred agent, is not on queue
    cid = deliver(comps)
    router.poll()
    assert conv(comps, cid).state == "queued"
    clock.now += timedelta(seconds=10)
    rid = svc.request(
        comps.engine, clock, "transfer_queue", conversation_id=cid, data={"queue": "other"}
    )
    router.poll()
    assert svc.wait_result(comps.engine, rid, 0) == "ok"
    assert (conv(comps, cid).state, conv(comps, cid).agent_id) == ("alerting", "ann")
    clock.now += timedelta(seconds=10)
    restarted = RoutingService(comps.engine, comps.settings.queues, clock)
    restarted.rebuild()
    row = conv(comps, cid)
    assert (row.state, row.agent_id, row.queue) == ("alerting", "ann", "other")
    view = restarted.engine.conversation(str(cid))
    assert view is not None and view.preferred_agents == ()

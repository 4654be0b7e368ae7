"""A conversation that starts out connected to an agent (`ConversationAssigned`)."""

from __future__ import annotations

from postroom.routing.explain import explain
from postroom.routing.model import (
    AgentCapacityChanged,
    AgentConfig,
    AgentPresenceChanged,
    ConversationAssigned,
    ConversationEnded,
    Enqueued,
    FellBackToQueue,
    NextWakeup,
    Offer,
    OfferAccepted,
    OfferDeclined,
    Parked,
    ParkReturned,
    QueueConfig,
    Rejected,
    Requeued,
    RoutingStatusChanged,
    SkillRequirement,
    TransferredToAgent,
    Unparked,
    WrapupCompleted,
    WrapupRequired,
)
from tests.unit.routing.support import agent, engine, offers, only_offer


def held(e, conversation_id: str, agent_id: str) -> bool:  # type: ignore[no-untyped-def]
    c = e.conversation(conversation_id)
    return c is not None and (c.state, c.agent_id) == ("connected", agent_id)


def test_an_idle_agent_is_connected_at_once_without_an_offer() -> None:
    e = engine(agents=[agent("a", capacity=2)], on_queue=[("a", 3)])
    out = e.handle(ConversationAssigned(10, "new", "q", "a"))
    assert out == [RoutingStatusChanged(10, "a", "idle", "interacting")]  # no offer, no timer
    assert held(e, "new", "a")
    a = e.agent("a")
    assert a is not None and (a.load, a.free, a.idle_since) == (("new",), 1, 3)
    assert e.next_wakeup() is None


def test_the_conversation_keeps_its_queue_priority_and_requirements() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    needs = (SkillRequirement("tech", 4.0),)
    e.handle(ConversationAssigned(5, "new", "q", "a", priority=2, skills=needs, language="de"))
    c = e.conversation("new")
    assert c is not None
    assert (c.queue_id, c.priority, c.skills, c.language) == ("q", 2, needs, "de")
    # Skills and language do not matter for the assignment itself: `a` has neither.


def test_a_full_agent_holds_one_more_and_is_offered_nothing_until_below_capacity() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "first", "q"))
    e.handle(OfferAccepted(2, "first", "a"))
    e.handle(Enqueued(3, "waiting", "q"))
    out = e.handle(ConversationAssigned(4, "new", "q", "a"))
    assert out == []  # still interacting: no status change, no offer
    a = e.agent("a")
    assert a is not None and (len(a.load), a.capacity, a.free, a.status) == (2, 1, 0, "interacting")
    assert offers(e.handle(ConversationEnded(5, "new"))) == []  # at capacity, not below it
    assert offers(e.handle(ConversationEnded(6, "first"))) == [("waiting", "a")]


def test_raising_the_capacity_of_an_agent_above_it_frees_only_what_exceeds_the_load() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    for conv in ("n1", "n2", "n3"):
        e.handle(ConversationAssigned(1, conv, "q", "a"))
    e.handle(Enqueued(2, "waiting", "q"))
    assert offers(e.handle(AgentCapacityChanged(3, "a", 3))) == []
    assert offers(e.handle(AgentCapacityChanged(4, "a", 4))) == [("waiting", "a")]


def test_an_agent_off_queue_stays_off_queue_and_the_load_counts_when_they_come_back() -> None:
    e = engine(agents=[agent("a", capacity=3)])
    e.handle(Enqueued(1, "w1", "q"))
    e.handle(Enqueued(2, "w2", "q"))
    e.handle(Enqueued(3, "w3", "q"))
    assert e.handle(ConversationAssigned(4, "new", "q", "a")) == []
    a = e.agent("a")
    assert a is not None and (a.presence, a.status, a.free) == ("offline", "off_queue", 0)
    out = e.handle(AgentPresenceChanged(5, "a", "on_queue"))
    assert offers(out) == [("w1", "a"), ("w2", "a")]  # two of three slots were free


def test_a_not_responding_agent_stays_not_responding() -> None:
    e = engine(agents=[agent("a", capacity=2)], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "offered", "q"))
    e.handle(OfferDeclined(2, "offered", "a"))  # a is not responding; `offered` waits
    assert e.handle(ConversationAssigned(3, "new", "q", "a")) == []
    a = e.agent("a")
    assert a is not None and (a.status, a.free, a.load) == ("not_responding", 0, ("new",))
    out = e.handle(AgentPresenceChanged(4, "a", "on_queue"))
    assert RoutingStatusChanged(4, "a", "not_responding", "interacting") in out
    assert offers(out) == [("offered", "a")]  # the one slot left


def test_membership_is_not_required() -> None:
    e = engine(
        queues=[QueueConfig("q"), QueueConfig("vip")], agents=[agent("a")], on_queue=[("a", 0)]
    )
    e.handle(ConversationAssigned(1, "new", "vip", "a"))  # a supervisor assigned it
    assert held(e, "new", "a")


def test_unknown_agent_unknown_queue_and_a_conversation_in_use_are_rejected() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "c", "q"))  # offered to a
    before = (e.agents(), e.conversations())
    for event, reason in [
        (ConversationAssigned(2, "n", "q", "ghost"), "unknown agent 'ghost'"),
        (ConversationAssigned(2, "n", "nowhere", "a"), "unknown queue 'nowhere'"),
        (ConversationAssigned(2, "c", "q", "a"), "conversation is already being routed"),
    ]:
        out = e.handle(event)
        assert len(out) == 1 and isinstance(out[0], Rejected), out
        assert out[0].reason == reason
        assert (out[0].conversation_id, out[0].agent_id) == (event.conversation_id, event.agent_id)
    assert (e.agents(), e.conversations()) == before


def test_it_is_not_counted_in_the_service_level() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(ConversationAssigned(1, "new", "q", "a"))
    e.handle(ConversationEnded(2, "new"))
    report = e.service_level("q")
    assert report is not None and (report.entered, report.answered, report.abandoned) == (0, 0, 0)


def test_ending_it_follows_the_queue_wrapup_mode() -> None:
    e = engine(
        queues=[QueueConfig("q", wrapup_prompt="mandatory")], agents=[agent("a")],
        on_queue=[("a", 0)],
    )  # fmt: skip
    e.handle(ConversationAssigned(1, "new", "q", "a"))
    e.handle(Enqueued(2, "waiting", "q"))
    out = e.handle(ConversationEnded(3, "new"))
    assert WrapupRequired(3, "new", "a", "mandatory", None) in out and offers(out) == []
    assert offers(e.handle(WrapupCompleted(4, "new", "solved"))) == [("waiting", "a")]
    assert e.conversation("new") is None


def test_optional_wrapup_closes_it_and_frees_the_agent() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(ConversationAssigned(1, "new", "q", "a"))
    e.handle(Enqueued(2, "waiting", "q"))
    out = e.handle(ConversationEnded(7, "new"))
    assert offers(out) == [("waiting", "a")]
    assert e.conversation("new") is None and e.agent("a").idle_since == 7  # type: ignore[union-attr]


def test_it_can_be_parked_and_comes_back_to_the_agent() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(ConversationAssigned(1, "new", "q", "a"))
    e.handle(Parked(2, "new", until=1000))
    assert e.agent("a").free == 1  # type: ignore[union-attr]
    out = e.handle(Unparked(3, "new"))
    assert ParkReturned(3, "new", "a", "reply", False) in out
    assert offers(out) == []  # connected again, not offered
    view = e.conversation("new")
    assert view is not None and (view.state, view.agent_id) == ("connected", "a")


def test_it_can_be_transferred_to_a_queue_or_an_agent() -> None:
    e = engine(
        queues=[QueueConfig("q"), QueueConfig("r")],
        agents=[agent("a"), agent("b", "r"), AgentConfig("c", frozenset())],
        on_queue=[("a", 0), ("b", 0), ("c", 0)],
    )
    e.handle(ConversationAssigned(1, "new", "q", "a"))
    out = e.handle(Requeued(2, "new", "r"))
    assert offers(out) == [("new", "b")]
    report = e.service_level("r")
    assert report is not None and report.entered == 1  # entering a queue counts from here
    e.handle(OfferAccepted(3, "new", "b"))
    offer = only_offer(e.handle(TransferredToAgent(4, "new", "c")))
    assert (offer.agent_id, offer.rule) == ("c", "direct_transfer")


def test_a_transfer_to_an_agent_over_capacity_falls_back() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 0)])
    e.handle(ConversationAssigned(1, "mine", "q", "a"))
    e.handle(ConversationAssigned(1, "also-mine", "q", "a"))  # a: 2 of 1
    e.handle(ConversationAssigned(2, "theirs", "q", "b"))
    out = e.handle(TransferredToAgent(3, "theirs", "a"))
    assert FellBackToQueue(3, "theirs", "q", "a") in out
    assert not any(isinstance(d, Offer) and d.agent_id == "a" for d in out)


def test_a_reply_for_its_last_agent_waits_while_the_agent_is_over_capacity() -> None:
    e = engine(
        queues=[QueueConfig("q", last_agent_routing_mode="any_agent")],
        agents=[agent("a"), agent("b")],
        on_queue=[("a", 0)],
    )
    e.handle(ConversationAssigned(1, "busy", "q", "a"))
    e.handle(Enqueued(2, "reply", "q", last_agent_id="a", last_agent_at=1))
    assert e.handle(ConversationAssigned(3, "new", "q", "a")) == []
    e.handle(ConversationEnded(4, "new"))
    assert e.conversation("reply").state == "queued"  # type: ignore[union-attr]
    out = e.handle(ConversationEnded(5, "busy"))
    offer = only_offer(out)
    assert (offer.conversation_id, offer.agent_id, offer.rule) == ("reply", "a", "last_agent")


def test_explain_says_it_was_assigned() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(ConversationAssigned(1, "new", "q", "a"))
    why = explain(e, "new")
    assert why is not None
    assert (why.state, why.agent_id, why.rule) == ("connected", "a", "assigned")
    assert why.summary == "connected with a, assigned to them without an offer"


def test_it_sets_no_timer_and_announces_no_wakeup() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    out = e.handle(ConversationAssigned(1, "new", "q", "a"))
    assert not any(isinstance(d, NextWakeup) for d in out)

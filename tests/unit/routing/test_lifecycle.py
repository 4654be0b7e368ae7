"""Offers, not-responding, wrap-up, auto-answer, park and transfers."""

from __future__ import annotations

import pytest

from postroom.routing.model import (
    AgentConfig,
    AgentConfigured,
    AgentPresenceChanged,
    ConversationEnded,
    Enqueued,
    FellBackToQueue,
    NextWakeup,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    OfferWithdrawn,
    Parked,
    ParkReturned,
    QueueConfig,
    Rejected,
    Requeued,
    Ring,
    RoutingConfigError,
    RoutingStatusChanged,
    SkillRequirement,
    Tick,
    TransferredToAgent,
    Unparked,
    WrapupCompleted,
    WrapupRequired,
    WrapupTimedOut,
)
from tests.unit.routing.support import agent, engine, offers, only_offer


def status(e, agent_id: str) -> str:  # type: ignore[no-untyped-def]
    return e.agent(agent_id).status  # type: ignore[no-any-return]


def test_an_offer_alerts_until_the_queue_alert_timeout() -> None:
    e = engine(
        queues=[QueueConfig("q", alert_timeout_s=20)], agents=[agent("a")], on_queue=[("a", 0)]
    )
    out = e.handle(Enqueued(5, "c", "q"))
    offer = only_offer(out)
    assert offer.deadline == 25 and not offer.auto_answered
    assert NextWakeup(25) in out
    assert RoutingStatusChanged(5, "a", "idle", "interacting") in out
    assert e.conversation("c").state == "alerting"  # type: ignore[union-attr]


def test_timeout_makes_the_agent_not_responding_and_moves_on() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 1)])
    e.handle(Enqueued(5, "c", "q"))
    assert offers(e.handle(Tick(64))) == []
    out = e.handle(Tick(65))
    assert OfferExpired(65, "c", "a") in out
    assert RoutingStatusChanged(65, "a", "interacting", "not_responding") in out
    assert offers(out) == [("c", "b")]
    e.handle(Enqueued(66, "next", "q"))
    assert e.conversation("next").state == "queued"  # type: ignore[union-attr]  # a gets nothing
    assert offers(e.handle(AgentPresenceChanged(70, "a", "on_queue"))) == [("next", "a")]


def test_decline_makes_the_agent_not_responding() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(5, "c", "q"))
    out = e.handle(OfferDeclined(6, "c", "a"))
    assert status(e, "a") == "not_responding"
    assert RoutingStatusChanged(6, "a", "interacting", "not_responding") in out


def test_a_decliner_gets_it_again_only_when_no_one_else_is_eligible() -> None:
    e = engine(agents=[agent("a"), agent("b", capacity=1)], on_queue=[("a", 0)])
    e.handle(Enqueued(5, "c", "q"))
    e.handle(OfferDeclined(6, "c", "a"))
    e.handle(AgentPresenceChanged(7, "b", "on_queue"))  # b takes it
    e.handle(OfferDeclined(8, "c", "b"))
    out = e.handle(AgentPresenceChanged(9, "a", "on_queue"))
    offer = only_offer(out)
    assert (offer.agent_id, offer.declined_before) == ("a", True)


def test_a_fresh_agent_beats_a_decliner_who_is_idle_longer() -> None:
    queue = QueueConfig("q", rings=(Ring(30, frozenset({"tech"})),))
    e = engine(queues=[queue], agents=[agent("a", tech=5.0), agent("b")], on_queue=[("a", 0)])
    e.handle(Enqueued(5, "c", "q", skills=(SkillRequirement("tech", 4.0),)))
    e.handle(OfferDeclined(6, "c", "a"))
    e.handle(AgentConfigured(7, agent("a")))  # a loses the skill: not eligible in ring 0
    e.handle(AgentPresenceChanged(7, "a", "on_queue"))  # idle since 7
    e.handle(AgentPresenceChanged(9, "b", "on_queue"))  # idle since 9
    offer = only_offer(e.handle(Tick(35)))  # ring 1: both eligible in the same round
    assert (offer.agent_id, offer.declined_before) == ("b", False)


def test_auto_answer_connects_the_offer_at_once() -> None:
    e = engine(
        queues=[QueueConfig("q", auto_answer=True)], agents=[agent("a")], on_queue=[("a", 0)]
    )
    offer = only_offer(e.handle(Enqueued(5, "c", "q")))
    assert offer.auto_answered
    assert e.conversation("c").state == "connected"  # type: ignore[union-attr]
    assert e.next_wakeup() is None


def test_offer_withdrawn_when_the_conversation_ends_while_alerting() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(5, "c", "q"))
    out = e.handle(ConversationEnded(6, "c"))
    assert OfferWithdrawn(6, "c", "a", "conversation_ended") in out
    assert status(e, "a") == "idle"


def connected(queue: QueueConfig):  # type: ignore[no-untyped-def]
    e = engine(queues=[queue], agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(5, "c", "q"))
    e.handle(OfferAccepted(6, "c", "a"))
    e.handle(Enqueued(7, "next", "q"))
    return e


def test_optional_wrapup_frees_capacity_when_the_conversation_ends() -> None:
    e = connected(QueueConfig("q", wrapup_prompt="optional"))
    assert offers(e.handle(ConversationEnded(10, "c"))) == [("next", "a")]


def test_mandatory_wrapup_holds_capacity_until_completed() -> None:
    e = connected(QueueConfig("q", wrapup_prompt="mandatory"))
    out = e.handle(ConversationEnded(10, "c"))
    assert WrapupRequired(10, "c", "a", "mandatory", None) in out
    assert offers(out) == [] and e.next_wakeup() is None
    assert offers(e.handle(WrapupCompleted(500, "c", "solved"))) == [("next", "a")]


def test_mandatory_timeout_wrapup_ends_with_the_fallback_code() -> None:
    e = connected(QueueConfig("q", wrapup_prompt="mandatory_timeout", wrapup_timeout_s=30))
    out = e.handle(ConversationEnded(10, "c"))
    assert WrapupRequired(10, "c", "a", "mandatory_timeout", 40) in out
    assert offers(e.handle(Tick(39))) == []
    out = e.handle(Tick(40))
    assert WrapupTimedOut(40, "c", "a", "wrapup-timeout") in out
    assert offers(out) == [("next", "a")]


def test_parking_frees_capacity_and_a_reply_brings_it_back_to_the_agent() -> None:
    e = connected(QueueConfig("q"))
    assert offers(e.handle(Parked(10, "c", until=1000))) == [("next", "a")]
    assert e.agent("a").parked == ("c",)  # type: ignore[union-attr]
    e.handle(OfferAccepted(11, "next", "a"))
    e.handle(ConversationEnded(12, "next"))
    out = e.handle(Unparked(20, "c"))
    assert ParkReturned(20, "c", "a", "reply", False) in out
    assert offers(out) == []  # connected again at once, nothing to accept
    view = e.conversation("c")
    assert view is not None and (view.state, view.agent_id) == ("connected", "a")
    assert e.agent("a").load == ("c",)  # type: ignore[union-attr]


def test_park_timeout_goes_to_the_queue_when_the_agent_is_unavailable() -> None:
    e = connected(QueueConfig("q"))
    e.handle(Parked(10, "c", until=100))
    e.handle(OfferAccepted(11, "next", "a"))
    assert e.next_wakeup() == 100
    e.handle(AgentPresenceChanged(50, "a", "away"))
    out = e.handle(Tick(100))
    assert ParkReturned(100, "c", "a", "timeout", True) in out
    view = e.conversation("c")
    assert view is not None and view.state == "queued" and view.enqueued_at == 100


def test_park_uses_the_queue_default_time_and_the_agent_limit() -> None:
    e = engine(
        queues=[QueueConfig("q", park_timeout_s=3600)],
        agents=[AgentConfig("a", frozenset({"q"}), capacity=2, max_parked=1)],
        on_queue=[("a", 0)],
    )
    for conv in ("c1", "c2"):
        e.handle(Enqueued(1, conv, "q"))
        e.handle(OfferAccepted(2, conv, "a"))
    e.handle(Parked(10, "c1"))
    assert e.conversation("c1").park_until == 3610  # type: ignore[union-attr]
    out = e.handle(Parked(11, "c2"))
    assert any(isinstance(d, Rejected) for d in out)
    assert e.conversation("c2").state == "connected"  # type: ignore[union-attr]


def test_transfer_to_a_queue_requeues_and_frees_the_agent() -> None:
    e = engine(
        queues=[QueueConfig("q"), QueueConfig("r")],
        agents=[agent("a"), agent("b", "r")],
        on_queue=[("a", 0), ("b", 0)],
    )
    e.handle(Enqueued(1, "c", "q"))
    e.handle(OfferAccepted(2, "c", "a"))
    e.handle(Enqueued(3, "waiting", "q"))
    out = e.handle(Requeued(10, "c", "r"))
    assert sorted(offers(out)) == [("c", "b"), ("waiting", "a")]


def test_transfer_to_an_agent_is_a_direct_offer_that_falls_back_after_the_alert_timeout() -> None:
    e = engine(
        queues=[QueueConfig("q", alert_timeout_s=30)],
        agents=[agent("a"), AgentConfig("expert", frozenset())],
        on_queue=[("a", 0), ("expert", 0)],
    )
    e.handle(Enqueued(1, "c", "q"))
    e.handle(OfferAccepted(2, "c", "a"))
    offer = only_offer(e.handle(TransferredToAgent(10, "c", "expert")))
    assert (offer.agent_id, offer.rule, offer.deadline) == ("expert", "direct_transfer", 40)
    out = e.handle(Tick(40))
    assert FellBackToQueue(40, "c", "q", "expert") in out
    assert offers(out) == [("c", "a")]  # a is free again and a member
    assert e.conversation("c").enqueued_at == 40  # type: ignore[union-attr]


def test_transfer_to_a_busy_agent_falls_back_at_once() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 0)])
    e.handle(Enqueued(1, "c1", "q"))
    e.handle(Enqueued(1, "c2", "q"))
    e.handle(OfferAccepted(2, "c1", "a"))
    out = e.handle(TransferredToAgent(3, "c1", "b"))
    assert FellBackToQueue(3, "c1", "q", "b") in out
    assert offers(out) == [("c1", "a")]


def test_events_that_do_not_fit_are_rejected_without_change() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    out = e.handle(OfferAccepted(1, "nope", "a"))
    assert out and isinstance(out[0], Rejected)
    assert isinstance(e.handle(Enqueued(1, "c", "missing-queue"))[0], Rejected)


@pytest.mark.parametrize(
    "build",
    [
        lambda: AgentConfig("a", capacity=0),
        lambda: AgentConfig("a", capacity=26),
        lambda: AgentConfig("a", skills=(("tech", 6.0),)),
        lambda: QueueConfig("q", alert_timeout_s=6),
        lambda: QueueConfig("q", alert_timeout_s=3601),
        lambda: QueueConfig("q", rings=tuple(Ring(10) for _ in range(6))),
    ],
)
def test_settings_out_of_range_are_refused(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RoutingConfigError):
        build()


def test_defaults_follow_the_specification() -> None:
    queue = QueueConfig("q")
    assert (queue.alert_timeout_s, queue.evaluation, queue.scoring_method) == (
        60.0, "all_skills", "timestamp_and_priority",
    )  # fmt: skip
    assert (queue.service_level.percent, queue.service_level.seconds) == (80.0, 86400.0)
    assert AgentConfig("a").capacity == 1 and AgentConfig("a").max_parked == 10

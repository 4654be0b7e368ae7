"""Supervisors' actions on waiting work and on an agent's work (issue 11)."""

from __future__ import annotations

from postroom.routing.model import (
    REQUEUED_WRAPUP_CODE,
    AgentPresenceChanged,
    AgentWorkRequeued,
    ConversationEnded,
    Discarded,
    Enqueued,
    Offer,
    OfferAccepted,
    OfferTimedOut,
    OfferWithdrawn,
    Parked,
    QueueConfig,
    Rejected,
    Reprioritized,
    SkillRequirement,
    SupervisorAssigned,
    SupervisorConnected,
    SupervisorDiscarded,
    WrapupTimedOut,
)
from tests.unit.routing.support import agent, engine, offers, only_offer


def state(e, cid: str) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    c = e.conversation(cid)
    return ("closed", None) if c is None else (c.state, c.agent_id)


def test_connect_gives_a_queued_conversation_to_an_off_queue_agent_at_once() -> None:
    e = engine(agents=[agent("a")])
    e.handle(Enqueued(1, "c1", "q"))
    out = e.handle(SupervisorAssigned(5, "c1", "a", "connect"))
    assert SupervisorConnected(5, "c1", "a", False) in out
    assert state(e, "c1") == ("connected", "a")
    report = e.service_level("q")
    assert report is not None and report.answered == 1


def test_offer_mode_alerts_the_agent_and_falls_back_to_the_queue_keeping_the_wait() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0)])
    e.handle(AgentPresenceChanged(0, "a", "busy"))
    e.handle(Enqueued(1, "c1", "q"))
    e.handle(AgentPresenceChanged(2, "b", "on_queue"))  # b gets it
    assert state(e, "c1") == ("alerting", "b")
    e.handle(AgentPresenceChanged(3, "a", "on_queue"))
    out = e.handle(SupervisorAssigned(4, "c1", "a", "offer"))
    assert OfferWithdrawn(4, "c1", "b", "reassigned") in out  # b's screen loses it
    offer = only_offer(out)
    assert (offer.agent_id, offer.rule) == ("a", "supervisor")
    e.handle(OfferTimedOut(70, "c1", "a"))
    c = e.conversation("c1")
    assert c is not None and c.enqueued_at == 1  # the wait did not restart


def test_capacity_is_respected_unless_overridden() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "c1", "q"))
    e.handle(OfferAccepted(2, "c1", "a"))
    e.handle(Enqueued(3, "c2", "q"))
    out = e.handle(SupervisorAssigned(4, "c2", "a", "connect"))
    assert [d.reason for d in out if isinstance(d, Rejected)] == [
        "agent 'a' holds 1 of their capacity 1; override the capacity to assign it anyway"
    ]
    assert state(e, "c2") == ("queued", None)
    out = e.handle(SupervisorAssigned(5, "c2", "a", "connect", override_capacity=True))
    assert SupervisorConnected(5, "c2", "a", True) in out
    a = e.agent("a")
    assert a is not None and (len(a.load), a.free) == (2, 0)


def test_offer_mode_refuses_an_agent_who_is_off_queue() -> None:
    e = engine(agents=[agent("a")])
    e.handle(Enqueued(1, "c1", "q"))
    out = e.handle(SupervisorAssigned(2, "c1", "a", "offer"))
    assert any(isinstance(d, Rejected) and "connect" in d.reason for d in out)


def test_connect_what_alerts_the_same_agent_withdraws_nothing() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "c1", "q"))
    out = e.handle(SupervisorAssigned(2, "c1", "a", "connect"))
    assert not any(isinstance(d, OfferWithdrawn | Rejected) for d in out)
    assert state(e, "c1") == ("connected", "a")


def test_held_work_cannot_be_assigned() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "c1", "q"))
    e.handle(OfferAccepted(2, "c1", "a"))
    out = e.handle(SupervisorAssigned(3, "c1", "b", "connect"))
    assert [d.reason for d in out if isinstance(d, Rejected)] == [
        "conversation is connected; only waiting work can be assigned"
    ]


def test_reprioritize_keeps_the_wait_and_reorders_the_queue() -> None:
    e = engine(agents=[agent("a")])
    e.handle(Enqueued(1, "old", "q"))
    e.handle(Enqueued(2, "new", "q"))
    e.handle(Reprioritized(3, "new", priority=10))
    c = e.conversation("new")
    assert c is not None and (c.priority, c.enqueued_at) == (10, 2)
    out = e.handle(AgentPresenceChanged(4, "a", "on_queue"))
    assert offers(out) == [("new", "a")]


def test_new_required_skills_stop_offers_to_agents_without_them() -> None:
    e = engine(agents=[agent("a")])
    e.handle(Enqueued(1, "c1", "q"))
    e.handle(Reprioritized(2, "c1", skills=(SkillRequirement("tax", 3.0),)))
    assert offers(e.handle(AgentPresenceChanged(3, "a", "on_queue"))) == []
    e.handle(Reprioritized(4, "c1", skills=()))
    assert state(e, "c1") == ("alerting", "a")


def test_discard_withdraws_the_offer_and_is_not_an_abandon() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "c1", "q"))
    out = e.handle(SupervisorDiscarded(2, "c1", "spam", "bulk mailer"))
    assert OfferWithdrawn(2, "c1", "a", "discarded") in out
    assert Discarded(2, "c1", "spam", "bulk mailer") in out
    assert state(e, "c1") == ("closed", None)
    report = e.service_level("q")
    assert report is not None and report.abandoned == 0
    out = e.handle(ConversationEnded(3, "c1"))
    assert any(isinstance(d, Rejected) for d in out)


def test_requeue_all_work_of_an_agent() -> None:
    q = QueueConfig("q", wrapup_prompt="mandatory")
    e = engine(queues=[q], agents=[agent("a", capacity=4), agent("b")], on_queue=[("a", 0)])
    for i, cid in enumerate(("conn", "park", "wrap", "alert"), start=1):
        e.handle(Enqueued(i, cid, "q"))
        if cid != "alert":
            e.handle(OfferAccepted(i, cid, "a"))
    e.handle(Parked(6, "park"))
    e.handle(ConversationEnded(6, "wrap"))
    e.handle(AgentPresenceChanged(7, "a", "offline"))
    out = e.handle(AgentWorkRequeued(8, "a"))
    assert OfferWithdrawn(8, "alert", "a", "requeued") in out
    assert WrapupTimedOut(8, "wrap", "a", REQUEUED_WRAPUP_CODE) in out
    assert [state(e, c) for c in ("conn", "park", "wrap", "alert")] == [
        ("queued", None), ("queued", None), ("closed", None), ("queued", None)
    ]
    a = e.agent("a")
    assert a is not None and (a.load, a.parked) == ((), ())
    alerted = e.conversation("alert")
    assert alerted is not None and alerted.enqueued_at == 4  # an offer keeps its wait
    out = e.handle(AgentPresenceChanged(9, "b", "on_queue"))
    assert next(o for o in out if isinstance(o, Offer)).agent_id == "b"

"""Service level statistics and explanations."""

from __future__ import annotations

from postroom.routing.explain import explain
from postroom.routing.model import (
    AgentConfig,
    AgentPresenceChanged,
    ConversationEnded,
    Enqueued,
    OfferAccepted,
    QueueConfig,
    ServiceLevel,
    SkillRequirement,
)
from postroom.routing.service_level import ServiceLevelStats, achieved_percent
from tests.unit.routing.support import agent, engine


def test_achieved_percent_counts_abandons_against_the_target() -> None:
    assert achieved_percent(answered_within=3, answered=4, abandoned=1) == 60.0
    assert achieved_percent(0, 0, 0) is None


def test_stats_compare_waits_with_the_threshold() -> None:
    stats = ServiceLevelStats("q", ServiceLevel(80, 60))
    for wait in (10, 60, 61, 30):
        stats.record_answered(wait)
    report = stats.report()
    assert (report.answered, report.answered_within) == (4, 3)
    assert report.achieved_percent == 75.0 and report.met is False
    assert report.average_wait_s == 40.25


def test_engine_reports_service_level_per_queue() -> None:
    queue = QueueConfig("q", service_level=ServiceLevel(50, 100))
    e = engine(queues=[queue], agents=[agent("a")])
    e.handle(Enqueued(0, "quick", "q"))
    e.handle(Enqueued(0, "slow", "q"))
    e.handle(Enqueued(0, "gone", "q"))
    e.handle(ConversationEnded(5, "gone"))  # abandoned while waiting
    e.handle(AgentPresenceChanged(50, "a", "on_queue"))
    e.handle(OfferAccepted(60, "quick", "a"))  # waited 60
    e.handle(ConversationEnded(200, "quick"))
    e.handle(OfferAccepted(250, "slow", "a"))  # waited 250
    report = e.service_level("q")
    assert report is not None
    assert (report.entered, report.answered, report.answered_within, report.abandoned) == (
        3, 2, 1, 1,
    )  # fmt: skip
    assert report.achieved_percent == 100 / 3


def test_explain_a_waiting_conversation_lists_why_each_agent_is_not_eligible() -> None:
    e = engine(
        agents=[
            agent("low", tech=2.0),
            agent("off", tech=5.0),
            agent("busy", tech=5.0),
            AgentConfig("outsider", frozenset({"other"}), skills=(("tech", 5.0),)),
        ],
        queues=[QueueConfig("q"), QueueConfig("other")],
        on_queue=[("low", 0), ("busy", 0)],
    )
    e.handle(Enqueued(1, "keep-busy", "q"))
    e.handle(Enqueued(2, "c", "q", skills=(SkillRequirement("tech", 4.0),), language="de"))
    why = explain(e, "c")
    assert why is not None
    assert (why.state, why.agent_id, why.rule) == ("queued", None, None)
    assert why.summary.startswith("waiting")
    reasons = {v.agent_id: v.reasons for v in why.agents}
    assert reasons["low"] == ("skill 'tech' at 2, needs 4", "lacks language 'de'")
    assert reasons["off"][0] == "off queue (presence offline)"
    assert reasons["busy"][0] == "no free capacity (1 of 1 in use)"
    assert "outsider" not in reasons  # not a member, not named: not involved


def test_explain_an_offered_conversation_names_the_winner_and_the_rule() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 5)])
    e.handle(Enqueued(10, "c", "q"))
    why = explain(e, "c")
    assert why is not None
    assert (why.state, why.agent_id, why.rule) == ("alerting", "a", "longest_idle")
    assert explain(e, "missing") is None

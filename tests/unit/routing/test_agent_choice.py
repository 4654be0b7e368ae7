"""Choice of agent: evaluation methods, capacity spread, bullseye, preferred and last agent."""

from __future__ import annotations

from postroom.routing.model import (
    AgentConfig,
    AgentPresenceChanged,
    ConversationEnded,
    Enqueued,
    OfferAccepted,
    QueueConfig,
    Ring,
    RingExpanded,
    SkillRequirement,
    Tick,
)
from tests.unit.routing.support import agent, engine, offers, only_offer

TECH4 = (SkillRequirement("tech", 4.0),)


def test_all_skills_requires_every_skill_at_its_minimum_then_longest_idle() -> None:
    e = engine(
        agents=[agent("low", tech=3.0), agent("late", tech=5.0), agent("early", tech=4.0)],
        on_queue=[("low", 0), ("early", 1), ("late", 2)],
    )
    offer = only_offer(e.handle(Enqueued(5, "c", "q", skills=TECH4)))
    assert (offer.agent_id, offer.rule) == ("early", "longest_idle")


def test_required_language_is_needed() -> None:
    e = engine(
        agents=[agent("en"), AgentConfig("de", frozenset({"q"}), languages=frozenset({"de"}))],
        on_queue=[("en", 0), ("de", 1)],
    )
    assert offers(e.handle(Enqueued(5, "c", "q", language="de"))) == [("c", "de")]


def test_best_skills_prefers_highest_average_then_longest_idle() -> None:
    queue = QueueConfig("q", evaluation="best_skills")
    skills = (SkillRequirement("tech", 1.0), SkillRequirement("billing", 0.0))
    e = engine(
        queues=[queue],
        agents=[
            agent("idle-long", tech=2.0, billing=2.0),  # average 2
            agent("best", tech=5.0, billing=4.0),  # average 4.5
            agent("best-too", tech=4.0, billing=5.0),  # average 4.5, idle shorter
        ],
        on_queue=[("idle-long", 0), ("best", 1), ("best-too", 2)],
    )
    first = only_offer(e.handle(Enqueued(5, "c1", "q", skills=skills)))
    assert (first.agent_id, first.rule) == ("best", "longest_idle")
    second = only_offer(e.handle(Enqueued(6, "c2", "q", skills=skills)))
    assert (second.agent_id, second.rule) == ("best-too", "best_skills")


def test_any_agent_ignores_skills() -> None:
    e = engine(
        queues=[QueueConfig("q", evaluation="any_agent")],
        agents=[agent("novice")],
        on_queue=[("novice", 0)],
    )
    assert offers(e.handle(Enqueued(1, "c", "q", skills=TECH4))) == [("c", "novice")]


def test_more_free_capacity_goes_first_so_work_spreads() -> None:
    e = engine(
        agents=[agent("a", capacity=3), agent("b", capacity=3)],
        on_queue=[("a", 0), ("b", 5)],
    )
    assert offers(e.handle(Enqueued(10, "c1", "q"))) == [("c1", "a")]
    second = only_offer(e.handle(Enqueued(11, "c2", "q")))
    assert (second.agent_id, second.rule) == ("b", "more_free_capacity")
    assert offers(e.handle(Enqueued(12, "c3", "q"))) == [("c3", "a")]


def test_an_agent_never_gets_more_than_its_capacity() -> None:
    e = engine(agents=[agent("a", capacity=2)], on_queue=[("a", 0)])
    assert offers(e.handle(Enqueued(1, "c1", "q"))) == [("c1", "a")]
    assert offers(e.handle(Enqueued(2, "c2", "q"))) == [("c2", "a")]
    assert offers(e.handle(Enqueued(3, "c3", "q"))) == []
    e.handle(OfferAccepted(4, "c1", "a"))
    assert offers(e.handle(ConversationEnded(5, "c1"))) == [("c3", "a")]


def test_bullseye_drops_skills_ring_by_ring_then_takes_any_member() -> None:
    queue = QueueConfig(
        "q", rings=(Ring(30, frozenset({"tech"})), Ring(60, frozenset(), remove_language=False))
    )
    skills = (SkillRequirement("tech", 4.0), SkillRequirement("billing", 2.0))
    e = engine(
        queues=[queue],
        agents=[
            agent("billing-only", billing=3.0),
            AgentConfig("nothing", frozenset({"q"})),
        ],
        on_queue=[("nothing", 0)],
    )
    assert offers(e.handle(Enqueued(0, "c", "q", skills=skills, language="fr"))) == []
    assert e.next_wakeup() == 30
    out = e.handle(Tick(30))
    assert RingExpanded(30, "c", "q", 1) in out and offers(out) == []
    assert e.next_wakeup() == 90
    e.handle(AgentPresenceChanged(40, "billing-only", "on_queue"))
    assert e.conversation("c").state == "queued"  # type: ignore[union-attr]  # needs fr
    out = e.handle(Tick(90))
    assert RingExpanded(90, "c", "q", 2) in out
    # Final ring: any member, so the agent with no skills at all, idle longest, gets it.
    assert offers(out) == [("c", "nothing")]


def test_a_widened_conversation_keeps_its_place() -> None:
    queue = QueueConfig("q", rings=(Ring(30, frozenset({"tech"})),))
    e = engine(queues=[queue], agents=[agent("a")])
    e.handle(Enqueued(0, "old-tech", "q", skills=TECH4))
    e.handle(Enqueued(10, "new-plain", "q"))
    e.handle(Tick(30))
    assert offers(e.handle(AgentPresenceChanged(40, "a", "on_queue"))) == [("old-tech", "a")]


def test_preferred_agents_are_waited_for_during_their_window() -> None:
    e = engine(agents=[agent("other"), agent("fav")], on_queue=[("other", 0)])
    out = e.handle(Enqueued(10, "c", "q", preferred_agents=("fav",), preferred_window_s=120))
    assert offers(out) == []
    assert e.next_wakeup() == 130
    offer = only_offer(e.handle(AgentPresenceChanged(20, "fav", "on_queue")))
    assert (offer.agent_id, offer.preferred) == ("fav", True)


def test_after_the_preferred_window_anyone_eligible_gets_it() -> None:
    e = engine(agents=[agent("other"), agent("fav")], on_queue=[("other", 0)])
    e.handle(Enqueued(10, "c", "q", preferred_agents=("fav",), preferred_window_s=120))
    assert offers(e.handle(Tick(129))) == []
    assert offers(e.handle(Tick(130))) == [("c", "other")]


def test_a_free_preferred_agent_beats_a_longer_idle_one() -> None:
    e = engine(agents=[agent("other"), agent("fav")], on_queue=[("other", 0), ("fav", 5)])
    out = e.handle(Enqueued(10, "c", "q", preferred_agents=("fav",), preferred_window_s=60))
    assert offers(out) == [("c", "fav")]


def _last_agent_setup(mode: str, window: float = 3600, member: bool = True):  # type: ignore[no-untyped-def]
    queue = QueueConfig("q", last_agent_routing_mode=mode, last_agent_window_s=window)  # type: ignore[arg-type]
    last = agent("last", "q" if member else "elsewhere")
    return engine(queues=[queue, QueueConfig("elsewhere")], agents=[agent("idle"), last],
                  on_queue=[("idle", 0), ("last", 5)])  # fmt: skip


def reply(at: float = 100, handled_at: float = 50) -> Enqueued:
    return Enqueued(at, "reply", "q", last_agent_id="last", last_agent_at=handled_at)


def test_last_agent_gets_the_reply_when_on_queue_with_capacity() -> None:
    e = _last_agent_setup("queue_members_only")
    offer = only_offer(e.handle(reply()))
    assert (offer.agent_id, offer.rule) == ("last", "last_agent")


def test_last_agent_routing_disabled_routes_normally() -> None:
    e = _last_agent_setup("disabled")
    assert offers(e.handle(reply())) == [("reply", "idle")]


def test_last_agent_outside_the_window_routes_normally() -> None:
    e = _last_agent_setup("any_agent", window=30)
    assert offers(e.handle(reply(at=100, handled_at=50))) == [("reply", "idle")]


def test_queue_members_only_skips_a_last_agent_outside_the_queue() -> None:
    e = _last_agent_setup("queue_members_only", member=False)
    assert offers(e.handle(reply())) == [("reply", "idle")]


def test_any_agent_mode_reaches_a_last_agent_outside_the_queue() -> None:
    e = _last_agent_setup("any_agent", member=False)
    assert offers(e.handle(reply())) == [("reply", "last")]


def test_a_busy_last_agent_means_normal_routing() -> None:
    e = _last_agent_setup("any_agent")
    e.handle(Enqueued(60, "other-work", "q", last_agent_id="last", last_agent_at=60))
    assert offers(e.handle(reply())) == [("reply", "idle")]


def test_idle_since_restarts_when_the_agent_lets_go_of_work() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 5)])
    assert offers(e.handle(Enqueued(10, "c1", "q"))) == [("c1", "a")]
    e.handle(OfferAccepted(11, "c1", "a"))
    e.handle(ConversationEnded(20, "c1"))  # a idle since 20, b since 5
    assert e.agent("a").idle_since == 20  # type: ignore[union-attr]
    assert offers(e.handle(Enqueued(30, "c2", "q"))) == [("c2", "b")]

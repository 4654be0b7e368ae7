"""The explanation stored with each offer (routing/explain.py `explain_offer`) and the
waiting verdicts from plain snapshots (`explain_waiting`)."""

from __future__ import annotations

from postroom.routing.engine import Engine
from postroom.routing.explain import MAX_NAMED, explain_offer, explain_waiting
from postroom.routing.model import (
    AgentConfig,
    AgentPresenceChanged,
    Decision,
    Enqueued,
    Offer,
    OfferDeclined,
    QueueConfig,
    SkillRequirement,
)
from tests.unit.routing.support import agent, engine


def _explained(e: Engine, out: list[Decision]) -> list[dict[str, object]]:
    """What the router stores: explanations computed right after the event."""
    offers = [d for d in out if isinstance(d, Offer)]
    views = e.agents()
    after: dict[str, int] = {}
    found = []
    for offer in reversed(offers):
        why = explain_offer(e, offer, views, after)
        assert why is not None
        found.append(why.to_data())
        after[offer.agent_id] = after.get(offer.agent_id, 0) + 1
    return list(reversed(found))


def test_offer_explanation_counts_why_others_were_passed_over() -> None:
    e = engine(
        agents=[
            agent("a", tech=5.0),
            agent("b", tech=5.0),
            agent("low", tech=1.0),
            agent("off", tech=5.0),
            AgentConfig("outsider", frozenset({"other"}), skills=(("tech", 5.0),)),
        ],
        queues=[QueueConfig("q"), QueueConfig("other")],
        on_queue=[("a", 0), ("b", 5), ("low", 0)],
    )
    out = e.handle(Enqueued(10, "c", "q", skills=(SkillRequirement("tech", 3.0),)))
    (why,) = _explained(e, out)
    assert why["rule"] == "longest_idle"
    assert (why["considered"], why["eligible"], why["runner_up"]) == (4, 2, "b")
    assert why["passed_over"] == {"missing_skill": 1, "off_queue": 1, "ranked_lower": 1}
    assert why["named"] == [["b", "ranked_lower"], ["low", "missing_skill"], ["off", "off_queue"]]
    assert why["skills"] == [["tech", 3.0]]


def test_capacity_is_judged_as_at_the_decision_within_one_event() -> None:
    # One event (x goes on queue) makes two offers to x: when the first was made,
    # x still had room for the second, so y's verdict is not "x was at capacity".
    e = engine(agents=[agent("x", capacity=2), agent("y")], on_queue=[("y", 0)])
    e.handle(Enqueued(1, "hold", "q"))  # y is full
    e.handle(Enqueued(2, "d1", "q"))
    e.handle(Enqueued(3, "d2", "q"))
    out = e.handle(AgentPresenceChanged(4, "x", "on_queue"))
    assert [d.conversation_id for d in out if isinstance(d, Offer)] == ["d1", "d2"]
    first, second = _explained(e, out)
    assert first["passed_over"] == second["passed_over"] == {"at_capacity": 1}
    assert first["eligible"] == 1


def test_an_agent_who_declined_is_passed_over_as_not_responding() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "c", "q"))
    e.handle(OfferDeclined(2, "c", "a"))
    out = e.handle(AgentPresenceChanged(3, "b", "on_queue"))
    (why,) = _explained(e, out)
    assert why["passed_over"] == {"not_responding": 1}
    again = e.handle(AgentPresenceChanged(4, "a", "on_queue"))
    assert not [d for d in again if isinstance(d, Offer)]  # c is with b now


def test_offered_again_to_the_only_agent_who_declined_says_so() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(Enqueued(1, "c", "q"))
    e.handle(OfferDeclined(2, "c", "a"))
    out = e.handle(AgentPresenceChanged(3, "a", "on_queue"))
    (why,) = _explained(e, out)
    assert why["declined_before"] is True and why["rule"] == "only_eligible_agent"


def test_at_most_max_named_agents_are_named_and_all_are_counted() -> None:
    many = [agent(f"a{i:03}") for i in range(40)]
    e = engine(agents=many, on_queue=[("a000", 0)])
    out = e.handle(Enqueued(1, "c", "q"))
    (why,) = _explained(e, out)
    assert why["considered"] == 40
    assert why["passed_over"] == {"off_queue": 39}
    assert len(why["named"]) == MAX_NAMED  # type: ignore[arg-type]


def test_explain_waiting_from_snapshots_matches_the_engine() -> None:
    e = engine(agents=[agent("a"), agent("busy")], on_queue=[("busy", 0)])
    e.handle(Enqueued(1, "hold", "q"))
    e.handle(Enqueued(2, "c", "q"))
    view = e.conversation("c")
    queue = e.queue("q")
    assert view is not None and queue is not None
    why = explain_waiting(queue, view, e.agents(), None)
    assert why.agent_id is None and why.summary.startswith("waiting")
    codes = {v.agent_id: v.codes for v in why.agents}
    assert codes == {"a": ("off_queue",), "busy": ("at_capacity",)}

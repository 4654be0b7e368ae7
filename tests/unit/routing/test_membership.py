"""Changes to an agent's queues while work waits: an alerting offer of a queue the
agent leaves is withdrawn and the conversation goes to the next agent."""

from __future__ import annotations

from postroom.routing.model import (
    AgentConfigured,
    Enqueued,
    MembershipChanged,
    OfferAccepted,
    OfferWithdrawn,
    QueueConfig,
    QueueReassigned,
    Rejected,
    SkillRequirement,
    TransferredToAgent,
)
from tests.unit.routing.support import agent, engine, offers, only_offer


def test_leaving_the_queue_withdraws_the_offer_and_offers_the_next_agent() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 1)])
    assert offers(e.handle(Enqueued(5, "c", "q"))) == [("c", "a")]
    out = e.handle(MembershipChanged(6, "a", "q", member=False))
    assert OfferWithdrawn(6, "c", "a", "left_queue") in out
    assert offers(out) == [("c", "b")]
    view = e.agent("a")
    assert view is not None and view.load == () and not view.not_responding


def test_a_configuration_with_fewer_queues_withdraws_the_offer_too() -> None:
    e = engine(
        queues=[QueueConfig("q"), QueueConfig("r")],
        agents=[agent("a", "q", "r")],
        on_queue=[("a", 0)],
    )
    e.handle(Enqueued(5, "c", "q"))
    out = e.handle(AgentConfigured(6, agent("a", "r")))
    assert OfferWithdrawn(6, "c", "a", "left_queue") in out
    conv = e.conversation("c")
    assert conv is not None and conv.state == "queued" and conv.agent_id is None


def test_leaving_another_queue_keeps_the_offer() -> None:
    e = engine(
        queues=[QueueConfig("q"), QueueConfig("r")],
        agents=[agent("a", "q", "r")],
        on_queue=[("a", 0)],
    )
    e.handle(Enqueued(5, "c", "q"))
    out = e.handle(MembershipChanged(6, "a", "r", member=False))
    assert not [d for d in out if isinstance(d, OfferWithdrawn)]
    conv = e.conversation("c")
    assert conv is not None and conv.state == "alerting" and conv.agent_id == "a"


def test_a_direct_transfer_to_the_agent_stays_when_they_leave_the_queue() -> None:
    e = engine(
        queues=[QueueConfig("q"), QueueConfig("r")],
        agents=[agent("b", "q", "r")],
        on_queue=[("b", 0)],
    )
    e.handle(Enqueued(1, "c", "r", skills=(SkillRequirement("x", 1),)))  # b lacks x: waits
    assert only_offer(e.handle(TransferredToAgent(2, "c", "b"))).agent_id == "b"
    out = e.handle(MembershipChanged(3, "b", "r", member=False))
    conv = e.conversation("c")
    assert conv is not None and conv.state == "alerting" and conv.offer_direct
    assert not [d for d in out if isinstance(d, OfferWithdrawn)]


def test_held_work_changes_queue_and_keeps_its_agent() -> None:
    e = engine(
        queues=[QueueConfig("q"), QueueConfig("r")], agents=[agent("a")], on_queue=[("a", 0)]
    )
    e.handle(Enqueued(1, "c", "q"))
    e.handle(OfferAccepted(2, "c", "a"))
    out = e.handle(QueueReassigned(3, "c", "r"))
    conv = e.conversation("c")
    assert conv is not None and (conv.state, conv.agent_id, conv.queue_id) == ("connected", "a", "r")
    assert not [d for d in out if isinstance(d, Rejected)]
    e.handle(Enqueued(4, "d", "q"))  # waiting work is not moved this way
    assert [d for d in e.handle(QueueReassigned(5, "d", "r")) if isinstance(d, Rejected)]

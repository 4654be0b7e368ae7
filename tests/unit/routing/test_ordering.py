"""Order of waiting work: priority offsets, priority_only, deadline, keeping or resetting places."""

from __future__ import annotations

from postroom.routing.model import (
    AgentPresenceChanged,
    ConversationEnded,
    Enqueued,
    OfferDeclined,
    QueueConfig,
    Requeued,
    ServiceLevel,
)
from tests.unit.routing.support import agent, engine, offers


def drain(e, at: float, agent_id: str = "a") -> list[str]:  # type: ignore[no-untyped-def]
    """Bring the single agent on queue and let it take everything, one by one."""
    order = []
    got = offers(e.handle(AgentPresenceChanged(at, agent_id, "on_queue")))
    while got:
        conv = got[0][0]
        order.append(conv)
        got = offers(e.handle(ConversationEnded(at, conv)))
    return order


def test_priority_is_worth_sixty_seconds_per_point() -> None:
    e = engine(agents=[agent("a")])
    e.handle(Enqueued(0, "old", "q"))
    e.handle(Enqueued(50, "urgent", "q", priority=1))  # effective time -10
    e.handle(Enqueued(70, "later-urgent", "q", priority=1))  # effective time 10
    e.handle(Enqueued(65, "plain", "q"))
    assert drain(e, 100) == ["urgent", "old", "later-urgent", "plain"]


def test_priority_only_puts_priority_before_age() -> None:
    e = engine(queues=[QueueConfig("q", scoring_method="priority_only")], agents=[agent("a")])
    e.handle(Enqueued(0, "old", "q"))
    e.handle(Enqueued(5000, "high", "q", priority=2))
    e.handle(Enqueued(6000, "high-later", "q", priority=2))
    e.handle(Enqueued(100, "mid", "q", priority=1))
    assert drain(e, 7000) == ["high", "high-later", "mid", "old"]


def test_deadline_ordering_takes_the_earliest_service_level_deadline() -> None:
    queue = QueueConfig("q", scoring_method="deadline", service_level=ServiceLevel(80, 3600))
    e = engine(queues=[queue], agents=[agent("a")])
    e.handle(Enqueued(0, "default", "q"))  # deadline 3600
    e.handle(Enqueued(10, "tight", "q", deadline=600))
    e.handle(Enqueued(20, "loose", "q", deadline=9000))
    e.handle(Enqueued(30, "high-priority", "q", priority=5))  # deadline 3630, priority ignored
    assert drain(e, 100) == ["tight", "default", "high-priority", "loose"]


def test_a_declined_conversation_keeps_its_place() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0)])
    assert offers(e.handle(Enqueued(1, "first", "q"))) == [("first", "a")]
    e.handle(Enqueued(2, "second", "q"))
    e.handle(OfferDeclined(3, "first", "a"))
    assert offers(e.handle(AgentPresenceChanged(4, "b", "on_queue"))) == [("first", "b")]


def test_a_transfer_into_a_queue_resets_the_enqueue_time() -> None:
    e = engine(queues=[QueueConfig("q"), QueueConfig("r")], agents=[agent("a", "r")])
    e.handle(Enqueued(0, "moved", "q"))
    e.handle(Enqueued(50, "waiting", "r"))
    e.handle(Requeued(100, "moved", "r"))
    assert e.conversation("moved").enqueued_at == 100  # type: ignore[union-attr]
    assert drain(e, 200) == ["waiting", "moved"]


def test_across_queues_the_oldest_effective_time_goes_first() -> None:
    e = engine(queues=[QueueConfig("q"), QueueConfig("r")], agents=[agent("a", "q", "r")])
    e.handle(Enqueued(0, "q-old", "q"))
    e.handle(Enqueued(100, "r-urgent", "r", priority=2))  # effective -20
    e.handle(Enqueued(10, "r-plain", "r"))
    assert drain(e, 500) == ["r-urgent", "q-old", "r-plain"]


def test_an_earlier_arrival_handed_over_late_keeps_its_place_and_deadline() -> None:
    e = engine(agents=[agent("a")])
    e.handle(Enqueued(100, "seen-first", "q"))
    e.handle(Enqueued(200, "arrived-earlier", "q", enqueued_at=50))  # e.g. rebuilt after a restart
    e.handle(Enqueued(210, "from-the-future", "q", enqueued_at=999))  # never later than now
    view = e.conversation("arrived-earlier")
    assert view is not None and view.enqueued_at == 50 and view.deadline == 50 + 86400
    future = e.conversation("from-the-future")
    assert future is not None and future.enqueued_at == 210
    assert drain(e, 300) == ["arrived-earlier", "seen-first", "from-the-future"]

"""Order of waiting work: priority offsets, priority_only, deadline, keeping or resetting places."""

from __future__ import annotations

from datetime import UTC, datetime

from postroom.domain.calendars import weekly
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


# Monday to Friday 09:00-17:00 UTC; 2026-03-06 is a Friday.
OFFICE = weekly("office", "UTC", [(d, 9 * 60, 17 * 60) for d in range(5)])


def _t(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_a_business_hours_target_sets_the_deadline_in_open_time() -> None:
    sl = ServiceLevel(80, 4 * 3600, OFFICE)
    # Friday 15:00 + 4 business hours: 2 h on Friday, 2 h from Monday 09:00
    assert sl.due(_t(2026, 3, 6, 15)) == _t(2026, 3, 9, 11)
    # Saturday counts from Monday's opening
    assert sl.due(_t(2026, 3, 7, 12)) == _t(2026, 3, 9, 13)
    assert ServiceLevel(80, 3600).due(100.0) == 3700.0
    assert sl.waited(_t(2026, 3, 6, 16), _t(2026, 3, 9, 10)) == 7200


def test_across_deadline_queues_the_closest_to_breaching_goes_first() -> None:
    # "calendar" gives 24 h of calendar time, "office" 4 business hours. Entered on
    # Friday, the office's late arrival is due only on Monday: the agent who comes on
    # queue on Saturday takes it last, though it waited longer than "calendar-new".
    calendar_q = QueueConfig("calendar", scoring_method="deadline",
                             service_level=ServiceLevel(80, 86400))
    office_q = QueueConfig("office", scoring_method="deadline",
                           service_level=ServiceLevel(80, 4 * 3600, OFFICE))
    e = engine(queues=[calendar_q, office_q], agents=[agent("a", "calendar", "office")])
    e.handle(Enqueued(_t(2026, 3, 6, 10), "office-early", "office"))  # due Fri 14:00
    e.handle(Enqueued(_t(2026, 3, 6, 11), "calendar-old", "calendar"))  # due Sat 11:00
    e.handle(Enqueued(_t(2026, 3, 6, 15), "office-late", "office"))  # due Mon 11:00
    e.handle(Enqueued(_t(2026, 3, 6, 16), "calendar-new", "calendar"))  # due Sat 16:00
    assert drain(e, _t(2026, 3, 7, 9)) == [
        "office-early", "calendar-old", "calendar-new", "office-late",
    ]  # fmt: skip


def test_mixed_ordering_queues_still_compare_by_effective_time() -> None:
    deadline_q = QueueConfig("d", scoring_method="deadline", service_level=ServiceLevel(80, 60))
    plain_q = QueueConfig("p", service_level=ServiceLevel(80, 86400))
    e = engine(queues=[deadline_q, plain_q], agents=[agent("a", "d", "p")])
    e.handle(Enqueued(0, "plain-old", "p"))
    e.handle(Enqueued(10, "deadline-new", "d"))  # due at 70, but the other waited longer
    assert drain(e, 100) == ["plain-old", "deadline-new"]


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

"""A rebuild keeps alerting offers and not_responding; parked work comes back connected.

`OfferRestored` and `AgentNotResponding` are what a rebuild after a restart sends;
`TakenBack`, `Unparked` and the park time bring parked work back to its agent.
"""

from __future__ import annotations

from postroom.routing.model import (
    AgentConfig,
    AgentNotResponding,
    AgentPresenceChanged,
    ConversationAssigned,
    Enqueued,
    FellBackToQueue,
    NextWakeup,
    Offer,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    OfferRestored,
    OfferWithdrawn,
    Parked,
    ParkReturned,
    Rejected,
    RoutingStatusChanged,
    TakenBack,
    Tick,
    Unparked,
)
from tests.unit.routing.support import agent, engine, offers


def state(e, conversation_id: str) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    c = e.conversation(conversation_id)
    assert c is not None
    return c.state, c.agent_id


# -- a restored offer ----------------------------------------------------------------


def test_a_restored_offer_alerts_the_same_agent_until_the_same_deadline() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 0)])
    out = e.handle(OfferRestored(100, "c", "q", "a", deadline=130, enqueued_at=80))
    assert not [d for d in out if isinstance(d, Offer | OfferWithdrawn | Rejected)]
    assert state(e, "c") == ("alerting", "a")
    view = e.conversation("c")
    assert view is not None and view.offer_deadline == 130 and view.enqueued_at == 80
    assert NextWakeup(130) in out
    assert e.agent("a").load == ("c",)  # type: ignore[union-attr]
    # the waiting accept of agent a is answered against it
    out = e.handle(OfferAccepted(101, "c", "a"))
    assert not [d for d in out if isinstance(d, Rejected)]
    assert state(e, "c") == ("connected", "a")
    report = e.service_level("q")
    assert report is not None and report.answered == 1  # waited 21 s, counted once


def test_someone_else_cannot_accept_a_restored_offer() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 0)])
    e.handle(OfferRestored(100, "c", "q", "a", deadline=130))
    out = e.handle(OfferAccepted(101, "c", "b"))
    assert any(isinstance(d, Rejected) for d in out)
    assert state(e, "c") == ("alerting", "a")


def test_a_restored_offer_past_its_deadline_times_out_on_the_first_tick() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("a", 0), ("b", 0)])
    out = e.handle(OfferRestored(100, "c", "q", "a", deadline=90))
    assert state(e, "c") == ("alerting", "a") and NextWakeup(90) in out
    out = e.handle(Tick(100))
    assert OfferExpired(100, "c", "a") in out
    assert RoutingStatusChanged(100, "a", "interacting", "not_responding") in out
    assert offers(out) == [("c", "b")]


def test_a_restored_direct_offer_falls_back_to_the_queue_when_missed() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    e.handle(OfferRestored(100, "c", "q", "a", deadline=130, rule="direct_transfer", direct=True))
    out = e.handle(OfferDeclined(101, "c", "a"))
    assert FellBackToQueue(101, "c", "q", "a") in out
    assert state(e, "c") == ("queued", None)


def test_a_restored_offer_holds_capacity_even_past_it_and_off_queue() -> None:
    e = engine(agents=[agent("a"), agent("b")], on_queue=[("b", 0)])
    e.handle(OfferRestored(100, "c1", "q", "b", deadline=130))
    e.handle(OfferRestored(100, "c2", "q", "b", deadline=130))  # b's capacity is 1
    e.handle(OfferRestored(100, "c3", "q", "a", deadline=130))  # a is off queue
    b = e.agent("b")
    assert b is not None and b.load == ("c1", "c2") and b.free == 0
    assert offers(e.handle(Enqueued(101, "w", "q"))) == []  # nobody free
    assert state(e, "c3") == ("alerting", "a")


def test_restoring_refuses_unknown_queues_agents_and_conversations_in_use() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    for event in (
        OfferRestored(1, "c", "nope", "a", deadline=60),
        OfferRestored(1, "c", "q", "nobody", deadline=60),
    ):
        assert any(isinstance(d, Rejected) for d in e.handle(event))
        assert e.conversation("c") is None
    e.handle(Enqueued(2, "c", "q"))
    out = e.handle(OfferRestored(3, "c", "q", "a", deadline=60))
    assert any(isinstance(d, Rejected) for d in out)


# -- not_responding restored ------------------------------------------------------------


def test_a_restored_not_responding_agent_gets_nothing_until_on_queue_again() -> None:
    e = engine(agents=[agent("a")], on_queue=[("a", 0)])
    out = e.handle(AgentNotResponding(1, "a"))
    assert RoutingStatusChanged(1, "a", "idle", "not_responding") in out
    assert offers(e.handle(Enqueued(2, "c", "q"))) == []
    assert offers(e.handle(AgentPresenceChanged(3, "a", "on_queue"))) == [("c", "a")]
    assert any(isinstance(d, Rejected) for d in e.handle(AgentNotResponding(4, "nobody")))


# -- parked work comes back connected ---------------------------------------------------


def parked_with_a(capacity: int = 1):  # type: ignore[no-untyped-def]
    """Agent a (capacity `capacity`) parked "p" and then took "busy" (so is full at 1)."""
    e = engine(
        agents=[AgentConfig("a", frozenset({"q"}), capacity=capacity), agent("b")],
        on_queue=[("a", 0)],
    )
    e.handle(ConversationAssigned(1, "p", "q", "a"))
    e.handle(Parked(2, "p", until=1000))
    e.handle(Enqueued(3, "busy", "q"))
    e.handle(OfferAccepted(4, "busy", "a"))
    return e


def test_take_back_connects_it_to_the_agent_without_an_offer() -> None:
    e = parked_with_a(capacity=2)
    out = e.handle(TakenBack(10, "p", "a"))
    assert ParkReturned(10, "p", "a", "taken_back", False) in out
    assert offers(out) == []
    assert state(e, "p") == ("connected", "a")
    a = e.agent("a")
    assert a is not None and a.parked == () and set(a.load) == {"p", "busy"}
    assert e.next_wakeup() is None  # the park timer is gone


def test_take_back_at_capacity_connects_past_it_and_offers_nothing_more() -> None:
    e = parked_with_a(capacity=1)
    out = e.handle(TakenBack(10, "p", "a"))
    assert ParkReturned(10, "p", "a", "taken_back", False) in out
    assert state(e, "p") == ("connected", "a")
    a = e.agent("a")
    assert a is not None and len(a.load) == 2 and a.free == 0
    assert offers(e.handle(Enqueued(11, "w", "q"))) == []


def test_take_back_works_off_queue_and_only_for_the_agent_who_parked_it() -> None:
    e = parked_with_a()
    e.handle(AgentPresenceChanged(5, "a", "break"))
    out = e.handle(TakenBack(10, "p", "b"))
    assert any(isinstance(d, Rejected) for d in out) and state(e, "p") == ("parked", "a")
    e.handle(TakenBack(11, "p", "a"))
    assert state(e, "p") == ("connected", "a")
    out = e.handle(TakenBack(12, "p", "a"))  # no longer parked
    assert any(isinstance(d, Rejected) for d in out)


def test_a_reply_connects_it_to_an_agent_on_queue_even_at_capacity() -> None:
    e = parked_with_a(capacity=1)
    out = e.handle(Unparked(10, "p"))
    assert ParkReturned(10, "p", "a", "reply", False) in out and offers(out) == []
    assert state(e, "p") == ("connected", "a")


def test_a_reply_goes_to_the_queue_when_the_agent_is_away_or_not_responding() -> None:
    for absent in ("away", "offline", "not_responding"):
        e = parked_with_a()
        e.handle(AgentPresenceChanged(5, "b", "on_queue"))
        if absent == "not_responding":
            e.handle(AgentNotResponding(6, "a"))
        else:
            e.handle(AgentPresenceChanged(6, "a", absent))  # type: ignore[arg-type]
        out = e.handle(Unparked(10, "p"))
        assert ParkReturned(10, "p", "a", "reply", True) in out, absent
        assert offers(out) == [("p", "b")], absent
        view = e.conversation("p")
        assert view is not None and view.last_agent_id == "a"


def test_the_park_time_connects_it_to_an_agent_on_queue() -> None:
    e = parked_with_a()
    out = e.handle(Tick(1000))
    assert ParkReturned(1000, "p", "a", "timeout", False) in out
    assert state(e, "p") == ("connected", "a")

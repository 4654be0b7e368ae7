"""Supervisors' actions in conversation details: a discard of waiting work is not an
abandon; a move while waiting is a new queue segment; a direct connect answers."""

from __future__ import annotations

from tests.unit.analytics.script import Log

from postroom.analytics.details import replay
from postroom.analytics.metrics import observations


def _created(log: Log, at: str, cid: int, queue: str = "support") -> None:
    log.add(at, "conversation_created", cid, queue=queue, enqueued_at=None)


def test_a_supervisor_discard_is_its_own_outcome_not_an_abandon() -> None:
    log = Log()
    _created(log, "09:00:00", 1)
    log.add("09:01:00", "offer_created", 1, agent="ann", queue="support", rule="longest_idle")
    log.add("09:02:00", "offer_withdrawn", 1, agent="ann", reason="discarded")
    log.add("09:02:00", "conversation_discarded", 1, reason="spam", note="")
    log.add("09:02:00", "conversation_closed", 1, agent=None, code=None, **{"from": "alerting"})
    (d,) = replay(log.events)
    assert d.outcome == "discarded"
    assert [s.outcome for s in d.segments] == ["discarded", "withdrawn"]
    names = {o.metric for o in observations(d)}
    assert "tAbandon" not in names and "tAcd" not in names


def test_a_customer_close_while_waiting_is_still_an_abandon() -> None:
    log = Log()
    _created(log, "09:00:00", 1)
    log.add("09:05:00", "conversation_closed", 1, agent=None, code=None, **{"from": "queued"})
    (d,) = replay(log.events)
    assert d.outcome == "abandoned"


def test_a_move_is_a_new_queue_segment_and_a_connect_answers_it() -> None:
    log = Log()
    _created(log, "09:00:00", 1)
    log.state("09:10:00", 1, "queued", "queued", None, "billing")
    log.add("09:12:00", "supervisor_connected", 1, agent="bob", over_capacity=True)
    log.state("09:12:00", 1, "queued", "connected", "bob", "billing")
    (d,) = replay(log.events)
    waits = [(s.queue, s.outcome) for s in d.segments if s.kind == "wait"]
    assert waits == [("support", "flowed_out"), ("billing", "answered")]
    assert [(t.from_queue, t.to_queue) for t in d.transfers] == [("support", "billing")]

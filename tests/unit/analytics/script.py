"""A scripted day of events (2026-03-29, the day Paris moves its clocks forward), as the
services write them, for the analytics tests; and a scripted week of a queue whose
service-level targets count business hours (`business_hours_week`). Times are UTC."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from postroom.analytics.details import EventRecord


def t(hhmmss: str) -> datetime:
    """"HH:MM:SS" on the scripted day, or "YYYY-MM-DDTHH:MM:SS" (both UTC)."""
    if "T" in hhmmss:
        return datetime.fromisoformat(hhmmss).replace(tzinfo=UTC)
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return datetime(2026, 3, 29, h, m, s, tzinfo=UTC)


class Log:
    def __init__(self) -> None:
        self.events: list[EventRecord] = []

    def add(
        self, at: str, kind: str, cid: int | None, message_id: int | None = None, **data: Any
    ) -> None:
        self.events.append(
            EventRecord(len(self.events) + 1, t(at), kind, cid, data, message_id=message_id)
        )

    def state(self, at: str, cid: int, frm: str, to: str, agent: str | None, queue: str) -> None:
        self.add(
            at, "conversation_state_changed", cid, **{"from": frm, "to": to, "agent": agent,
                                                      "queue": queue}
        )  # fmt: skip

    def created(self, at: str, cid: int, queue: str, route: str = "help@example.com") -> None:
        self.add(
            at, "conversation_created", cid, state="queued", queue=queue,
            enqueued_at=t(at).isoformat(), route_address=route,
        )  # fmt: skip

    def offer(self, at: str, cid: int, agent: str, queue: str, rule: str = "longest_idle") -> None:
        self.add(at, "offer_created", cid, agent=agent, queue=queue, rule=rule,
                 deadline=t(at).isoformat(), auto_answered=False)  # fmt: skip


def scripted_day() -> list[EventRecord]:
    """c1: declined, timed out, answered after 6 min, parked, transferred to sales,
    answered there after 15 min, wrapped up. c2: abandoned after 30 min. c3: a short
    abandon (5 s). c4: an agent's new email. m50: a message a rule discarded."""
    g = Log()
    g.created("08:00:00", 1, "support")
    g.add("08:00:00", "message_received", 1, 11, source="smtp", auto_kind=None)
    g.offer("08:01:00", 1, "ann", "support")
    g.state("08:01:00", 1, "queued", "alerting", "ann", "support")
    g.state("08:02:00", 1, "alerting", "queued", None, "support")  # ann declines
    g.offer("08:03:00", 1, "bob", "support")
    g.state("08:03:00", 1, "queued", "alerting", "bob", "support")
    g.add("08:04:00", "offer_timed_out", 1, agent="bob")
    g.state("08:04:00", 1, "alerting", "queued", None, "support")
    g.offer("08:05:00", 1, "ann", "support")
    g.state("08:05:00", 1, "queued", "alerting", "ann", "support")
    g.state("08:06:00", 1, "alerting", "connected", "ann", "support")  # accepted
    g.add("08:20:00", "message_queued", 1, 12, source="agent")
    g.state("08:21:00", 1, "connected", "parked", "ann", "support")
    g.add("09:00:00", "message_received", 1, 13, source="smtp", auto_kind=None)
    g.add("09:00:00", "park_returned", 1, agent="ann", cause="reply", to_queue=False)
    g.state("09:00:00", 1, "parked", "connected", "ann", "support")
    g.add("09:10:00", "message_queued", 1, 14, source="agent")
    g.state("09:15:00", 1, "connected", "queued", None, "sales")  # transfer to sales
    g.offer("09:16:00", 1, "carl", "sales")
    g.state("09:16:00", 1, "queued", "alerting", "carl", "sales")
    g.state("09:30:00", 1, "alerting", "connected", "carl", "sales")
    g.state("09:40:00", 1, "connected", "wrapup", "carl", "sales")
    g.add("09:45:00", "conversation_closed", 1, agent="carl", code="resolved", **{"from": "wrapup"})
    g.add("09:45:00", "wrapup_notes", 1, agent="carl", code="resolved", notes="sent the manual")

    g.created("10:00:00", 2, "support")
    g.add("10:30:00", "conversation_closed", 2, agent=None, code=None, **{"from": "queued"})
    g.created("10:00:00", 3, "support")
    g.add("10:00:05", "conversation_closed", 3, agent=None, code=None, **{"from": "queued"})

    g.add("11:00:00", "conversation_created", 4, state="connected", queue="support",
          agent="ann", origin="agent", route="help@example.com")  # fmt: skip
    g.add("11:01:00", "message_queued", 4, 41, source="agent")
    g.state("11:05:00", 4, "connected", "wrapup", "ann", "support")
    g.add("11:06:00", "conversation_closed", 4, agent="ann", code="sent", **{"from": "wrapup"})

    g.add("12:00:00", "message_discarded", None, 50, stage="rules", reason="spam")
    g.add("12:30:00", "routing_status_changed", None, agent="ann", old="idle", new="off_queue")
    return g.events


# The business-hours week: queue "claims" counts "80 % within 4 business hours" in the
# calendar "office" (Europe/London, Monday to Friday 09:00-17:00 local time,
# Wednesday 2026-04-01 a holiday) and "95 % within 2 calendar days"; its short-abandon
# threshold is 60 s. London moves its clocks forward on Sunday 2026-03-29 (01:00 UTC):
# before, 09:00 local is 09:00 UTC; from Monday 30 March, 08:00 UTC.
OFFICE_HOLIDAY = "2026-04-01"


def business_hours_week() -> list[EventRecord]:
    """Waits of queue "claims" (local times in London):

    w1: Fri 27 Mar 14:00 GMT -> Mon 30 Mar 10:30 BST, over the weekend and the DST
        change: 3 h Friday + 1 h 30 Monday = 4 h 30 of business time (over 4 h);
        67 h 30 of calendar time (over 2 days).
    w2: Mon 30 Mar 16:30 -> Tue 31 Mar 09:15 BST, evening to next morning: 30 min +
        15 min = 45 min of business time; 16 h 45 calendar time.
    w3: Tue 31 Mar 16:00 -> Thu 2 Apr 11:00 BST, over the Wednesday holiday: 1 h + 2 h
        = 3 h of business time (11 h without the holiday); 43 h calendar time.
    w4: Thu 2 Apr 09:00 -> 14:00 BST, within one day: 5 h (over 4 h), 5 h calendar.
    a1: Mon 30 Mar 10:00 BST, closed after 30 s: a short abandon (not counted).
    a2: Mon 30 Mar 11:00 BST, closed after 2 min: counted against both targets.
    """
    g = Log()

    def answered(cid: int, entered: str, at: str) -> None:
        g.created(entered, cid, "claims")
        g.offer(at, cid, "dora", "claims")
        g.state(at, cid, "queued", "alerting", "dora", "claims")
        g.state(at, cid, "alerting", "connected", "dora", "claims")

    answered(101, "2026-03-27T14:00:00", "2026-03-30T09:30:00")
    answered(102, "2026-03-30T15:30:00", "2026-03-31T08:15:00")
    answered(103, "2026-03-31T15:00:00", "2026-04-02T10:00:00")
    answered(104, "2026-04-02T08:00:00", "2026-04-02T13:00:00")
    g.created("2026-03-30T09:00:00", 105, "claims")
    g.add("2026-03-30T09:00:30", "conversation_closed", 105, agent=None, code=None,
          **{"from": "queued"})  # fmt: skip
    g.created("2026-03-30T10:00:00", 106, "claims")
    g.add("2026-03-30T10:02:00", "conversation_closed", 106, agent=None, code=None,
          **{"from": "queued"})  # fmt: skip
    g.events.sort(key=lambda e: (e.at, e.id))
    return [replace(e, id=i + 1) for i, e in enumerate(g.events)]

"""The scripted day (tests/unit/analytics/script.py): details and every metric, computed
by hand, in Europe/Paris on the day its clocks move forward (a 23-hour day)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.unit.analytics.script import OFFICE_HOLIDAY, Log, business_hours_week, scripted_day

from postroom.analytics.details import replay
from postroom.analytics.metrics import (
    METRICS,
    ServiceTarget,
    aggregate,
    boundaries,
    observations,
)
from postroom.routing.engine import Engine
from postroom.routing.model import (
    AgentConfig,
    AgentPresenceChanged,
    ConversationEnded,
    Enqueued,
    Offer,
)
from postroom.services.admin.schema import CalendarModel, QueueModel
from postroom.services.analytics import targets_of
from postroom.services.routing import engine_queue

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 3, 29, tzinfo=PARIS)  # 2026-03-28T23:00Z
END = datetime(2026, 3, 30, tzinfo=PARIS)  # 2026-03-29T22:00Z
TARGETS = {
    "support": ServiceTarget("default", 80.0, 600.0),
    "sales": ServiceTarget("default", 80.0, 600.0),
}


def _obs() -> list[Any]:
    return [o for d in replay(scripted_day()) for o in observations(d)]


def _by(results: list[dict[str, Any]], **group: str) -> dict[str, dict[str, Any]]:
    for r in results:
        if r["group"] == group:
            assert len(r["data"]) == 1
            return {m["metric"]: m["stats"] for m in r["data"][0]["metrics"]}
    raise AssertionError(f"no group {group}")


def test_details_of_the_scripted_day() -> None:
    details = {d.key: d for d in replay(scripted_day())}
    assert sorted(details) == ["c1", "c2", "c3", "c4", "m50"]
    c1 = details["c1"]
    assert (c1.outcome, c1.wrapup_code, c1.wrapup_notes) == (
        "answered",
        "resolved",
        "sent the manual",
    )
    assert (len(c1.messages_in), len(c1.messages_out), len(c1.transfers)) == (2, 2, 1)
    assert c1.queues == ["support", "sales"] and c1.agents == ["ann", "carl"]
    shape = [(s.kind, s.queue, s.agent, s.outcome, s.seconds) for s in c1.segments]
    assert shape == [
        ("wait", "support", None, "answered", 360.0),
        ("alert", "support", "ann", "declined", 60.0),
        ("alert", "support", "bob", "timed_out", 60.0),
        ("alert", "support", "ann", "accepted", 60.0),
        ("interact", "support", "ann", None, 900.0),
        ("park", "support", "ann", None, 2340.0),
        ("interact", "support", "ann", None, 900.0),
        ("wait", "sales", None, "answered", 900.0),
        ("alert", "sales", "carl", "accepted", 840.0),
        ("interact", "sales", "carl", None, 600.0),
        ("wrapup", "sales", "carl", None, 300.0),
    ]
    assert [(d.outcome, d.direction) for d in (details["c2"], details["c3"], details["c4"])] == [
        ("abandoned", "inbound"),
        ("abandoned", "inbound"),
        ("answered", "outbound"),
    ]
    assert details["m50"].outcome == "discarded"
    assert details["c1"].route == "help@example.com"


def test_every_metric_by_queue_on_the_dst_day() -> None:
    res = aggregate(
        _obs(), START, END, metrics=METRICS, granularity="P1D", tz=PARIS,
        group_by=["queueId"], targets=TARGETS,
    )  # fmt: skip
    assert res[0]["data"][0]["interval"] == "2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00"
    s = _by(res, queueId="support")
    assert s["nOffered"] == {"count": 3}
    assert s["nConnected"] == {"count": 2}
    assert s["tAnswered"] == _d([360])
    assert s["tAbandon"] == _d([1800, 5])
    assert s["tWait"] == s["tAcd"] == _d([360, 1800, 5])
    assert s["tAlert"] == _d([60, 60, 60])
    assert s["tNotResponding"] == _d([60])
    assert s["tHandle"] == _d([1800, 360])
    assert s["tAcw"] == _d([60])
    assert s["tPark"] == _d([2340])
    assert s["nTransferred"] == {"count": 1}
    assert "nOverSla" not in s
    # 1 answered within 600 s; the 30-minute abandon counts, the 5-second one does not.
    assert s["oServiceLevel"] == {"numerator": 1, "denominator": 2, "ratio": 0.5, "target": 80.0}
    assert s["oServiceTarget"] == {"numerator": 1, "denominator": 2, "target": 80.0}
    assert s["tFirstResponse"] == _d([1200])
    assert s["tAgentResponseTime"] == _d([1200, 600])
    assert s["nOutbound"] == {"count": 1}
    sales = _by(res, queueId="sales")
    assert sales["nOffered"] == {"count": 1} and sales["tAnswered"] == _d([900])
    assert sales["nOverSla"] == {"count": 1}
    assert sales["oServiceLevel"]["ratio"] == 0.0
    assert sales["tHandle"] == _d([900]) and sales["tAcw"] == _d([300])


def test_by_agent_wrapup_code_and_direction() -> None:
    obs = _obs()
    by_agent = aggregate(obs, START, END, metrics=["tHandle", "nConnected", "tAlert"],
                         group_by=["userId"])  # fmt: skip
    assert _by(by_agent, userId="ann")["tHandle"] == _d([1800, 360])
    assert _by(by_agent, userId="bob") == {"tAlert": _d([60])}
    assert _by(by_agent, userId="carl")["nConnected"] == {"count": 1}
    by_code = aggregate(obs, START, END, metrics=["tHandle"], group_by=["wrapUpCode"])
    assert _by(by_code, wrapUpCode="resolved")["tHandle"] == _d([1800, 900])
    by_dir = aggregate(obs, START, END, metrics=["nConnected"], group_by=["direction"])
    assert _by(by_dir, direction="outbound")["nConnected"] == {"count": 1}
    assert _by(by_dir, direction="inbound")["nConnected"] == {"count": 2}


def test_hourly_intervals_follow_the_local_clock() -> None:
    edges = boundaries(START, END, "PT1H", PARIS)
    assert len(edges) - 1 == 23  # the day has 23 hours
    res = aggregate(_obs(), START, END, metrics=["tAnswered"], granularity="PT1H", tz=PARIS)
    intervals = [d["interval"] for d in res[0]["data"]]
    # Answered at 08:06Z (10:06 in Paris, summer time) and 09:30Z (11:30).
    assert intervals == [
        "2026-03-29T10:00:00+02:00/2026-03-29T11:00:00+02:00",
        "2026-03-29T11:00:00+02:00/2026-03-29T12:00:00+02:00",
    ]
    days = boundaries(START, datetime(2026, 4, 2, tzinfo=PARIS), "P1D", PARIS)
    assert [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(days)] == [
        23.0, 24.0, 24.0, 24.0,
    ]  # fmt: skip
    month = boundaries(datetime(2026, 3, 15, tzinfo=PARIS), datetime(2026, 5, 1, tzinfo=PARIS),
                       "P1M", PARIS)  # fmt: skip
    assert [b.astimezone(PARIS).isoformat() for b in month[1:]] == ["2026-04-01T00:00:00+02:00",
                                                  "2026-05-01T00:00:00+02:00"]  # fmt: skip
    week = boundaries(START, datetime(2026, 4, 10, tzinfo=PARIS), "P1W", PARIS)
    assert week[1] == datetime(2026, 3, 30, tzinfo=PARIS)  # Monday


def _d(seconds: list[float]) -> dict[str, float]:
    v = sorted(seconds)
    rank = {50: max(1, -(-len(v) * 50 // 100)), 90: max(1, -(-len(v) * 90 // 100))}
    return {
        "count": len(v),
        "sum": sum(v) * 1000.0,
        "min": v[0] * 1000.0,
        "max": v[-1] * 1000.0,
        "p50": v[rank[50] - 1] * 1000.0,
        "p90": v[rank[90] - 1] * 1000.0,
    }


def test_a_transfer_whose_offer_comes_in_the_same_batch_counts() -> None:
    """The router writes a batch's offers before its state changes: a transfer to a
    queue with an agent free there is `offer_created` then `connected -> alerting`."""
    g = Log()
    g.created("08:00:00", 1, "support")
    g.offer("08:00:00", 1, "ann", "support")
    g.state("08:00:00", 1, "queued", "alerting", "ann", "support")
    g.state("08:01:00", 1, "alerting", "connected", "ann", "support")
    g.offer("08:05:00", 1, "bob", "billing")  # transferred to billing, offered to bob
    g.state("08:05:00", 1, "connected", "alerting", "bob", "billing")
    (d,) = replay(g.events)
    assert [(t.from_queue, t.from_agent, t.to_queue) for t in d.transfers] == [
        ("support", "ann", "billing")
    ]
    waits = [(s.queue, s.outcome) for s in d.segments if s.kind == "wait"]
    assert waits == [("support", "answered"), ("billing", None)]
    alerts = [(s.agent, s.outcome) for s in d.segments if s.kind == "alert"]
    assert alerts == [("ann", "accepted"), ("bob", None)]


# -- the business-hours week (script.business_hours_week) ---------------------------------

LONDON = ZoneInfo("Europe/London")
OFFICE = CalendarModel.model_validate(
    {
        "name": "office",
        "time_zone": "Europe/London",
        "hours": [{"day": d, "start": "09:00", "end": "17:00"}
                  for d in ("mon", "tue", "wed", "thu", "fri")],
        "holidays": [OFFICE_HOLIDAY],
    }
)  # fmt: skip
CLAIMS = QueueModel.model_validate(
    {
        "name": "claims",
        "scoring_method": "deadline",
        "service_targets": [
            {"name": "4 business hours", "percent": 80, "seconds": 4 * 3600,
             "calendar": "office"},
            {"name": "2 calendar days", "percent": 95, "seconds": 2 * 86400},
        ],
        "short_abandon_s": 60,
    }
).to_domain()  # fmt: skip
WEEK_START = datetime(2026, 3, 27, tzinfo=LONDON)
WEEK_END = datetime(2026, 4, 3, tzinfo=LONDON)


def _week_targets() -> dict[str, tuple[ServiceTarget, ...]]:
    return targets_of([CLAIMS], [OFFICE.to_domain()])


def test_each_wait_is_measured_in_the_targets_time() -> None:
    first, second = _week_targets()["claims"]
    answered = {
        o.conversation: o
        for d in replay(business_hours_week())
        for o in observations(d)
        if o.metric == "tAnswered"
    }
    # (business seconds, calendar seconds), hand-computed in script.business_hours_week
    expected = {
        "c101": (3 * 3600 + 1.5 * 3600, 67.5 * 3600),  # weekend and the DST change
        "c102": (45 * 60, 16.75 * 3600),  # evening to next morning
        "c103": (3 * 3600, 43 * 3600),  # over the holiday
        "c104": (5 * 3600, 5 * 3600),
    }
    assert {k: (first.wait(o), second.wait(o)) for k, o in answered.items()} == expected


def test_service_level_per_target_with_short_and_long_abandons() -> None:
    obs = [o for d in replay(business_hours_week()) for o in observations(d)]
    res = aggregate(
        obs, WEEK_START, WEEK_END, metrics=["oServiceLevel", "oServiceTarget", "nOverSla"],
        tz=LONDON, group_by=["queueId"], targets=_week_targets(),
    )  # fmt: skip
    (cell,) = res[0]["data"]
    # 4 answered + the 2-minute abandon; the 30-second abandon is under the queue's 60 s.
    # Within 4 business hours: c102, c103. Within 2 calendar days: c102, c103, c104.
    assert cell["metrics"] == [
        {"metric": "oServiceLevel", "qualifier": "4 business hours",
         "stats": {"numerator": 2, "denominator": 5, "ratio": 0.4, "target": 80.0}},
        {"metric": "oServiceLevel", "qualifier": "2 calendar days",
         "stats": {"numerator": 3, "denominator": 5, "ratio": 0.6, "target": 95.0}},
        {"metric": "oServiceTarget", "qualifier": "4 business hours",
         "stats": {"numerator": 2, "denominator": 5, "target": 80.0}},
        {"metric": "oServiceTarget", "qualifier": "2 calendar days",
         "stats": {"numerator": 3, "denominator": 5, "target": 95.0}},
        # Over the FIRST target only: c101 (4 h 30) and c104 (5 h).
        {"metric": "nOverSla", "stats": {"count": 2}},
    ]  # fmt: skip


def test_the_default_short_abandon_threshold_would_count_the_30_second_abandon() -> None:
    obs = [o for d in replay(business_hours_week()) for o in observations(d)]
    quick = replace(CLAIMS, short_abandon_s=10.0)
    res = aggregate(obs, WEEK_START, WEEK_END, metrics=["oServiceTarget"],
                    targets=targets_of([quick], [OFFICE.to_domain()]))  # fmt: skip
    first = res[0]["data"][0]["metrics"][0]
    assert first["stats"]["denominator"] == 6


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_router_orders_by_the_first_targets_business_hours_due_time() -> None:
    # "quick": 2 calendar hours; "claims": 4 business hours of the office.
    quick = QueueModel.model_validate(
        {"name": "quick", "scoring_method": "deadline", "service_level_seconds": 7200}
    ).to_domain()
    calendars = {"office": OFFICE.to_domain()}
    claims_q, quick_q = engine_queue(CLAIMS, calendars), engine_queue(quick, calendars)
    # Entered Friday 14:00 GMT: 3 h left on Friday, 1 h from Monday's 09:00 BST (08:00Z).
    due = claims_q.service_level.due(_ts("2026-03-27T14:00:00"))
    assert due == _ts("2026-03-30T09:00:00")
    e = Engine([claims_q, quick_q], [AgentConfig("a", frozenset({"claims", "quick"}))])
    e.handle(Enqueued(_ts("2026-03-27T14:00:00"), "claims-friday", "claims"))  # due Mon 09:00Z
    e.handle(Enqueued(_ts("2026-03-30T06:30:00"), "quick-early", "quick"))  # due 08:30Z
    e.handle(Enqueued(_ts("2026-03-30T07:30:00"), "quick-late", "quick"))  # due 09:30Z
    at = _ts("2026-03-30T07:45:00")
    order = []
    got = [d for d in e.handle(AgentPresenceChanged(at, "a", "on_queue")) if isinstance(d, Offer)]
    while got:
        order.append(got[0].conversation_id)
        got = [d for d in e.handle(ConversationEnded(at, order[-1])) if isinstance(d, Offer)]
    # Counted without the DST change the Friday conversation would be due at 10:00Z,
    # after "quick-late"; in calendar time on Friday, first of all.
    assert order == ["quick-early", "claims-friday", "quick-late"]

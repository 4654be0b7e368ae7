"""Properties of the analytics core on random valid histories (tests/unit/analytics/
generator.py): groups add up to the total, every fact falls in exactly one interval, and
projecting event by event from any restart point gives what a rebuild gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.analytics.generator import history

from postroom.analytics.details import ConversationTracker, Projection, key_of, replay
from postroom.analytics.metrics import (
    COUNT_METRICS,
    DIMENSIONS,
    DURATION_METRICS,
    GRANULARITIES,
    METRICS,
    ServiceTarget,
    aggregate,
    observations,
)
from postroom.domain.calendars import weekly

ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
START = datetime(2026, 3, 28, tzinfo=ZoneInfo("UTC"))
END = datetime(2026, 3, 31, tzinfo=ZoneInfo("UTC"))
# Every day 08:00-18:00 in Paris (the history spans its DST change), Sunday closed.
OFFICE = weekly("office", "Europe/Paris", [(d, 8 * 60, 18 * 60) for d in range(6)])
TARGETS = {
    "support": (ServiceTarget("default", 80.0, 600.0),
                ServiceTarget("office", 80.0, 600.0, OFFICE, short_abandon_s=30.0)),
    "billing": ServiceTarget("default", 90.0, 1200.0),
}  # fmt: skip


def _totals(results: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[float, float]]:
    """(metric, qualifier) -> (count or denominator, sum or numerator) over all groups
    and intervals."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for r in results:
        for d in r["data"]:
            for m in d["metrics"]:
                s = m["stats"]
                n = s.get("count", s.get("denominator", 0))
                total = s.get("sum", s.get("numerator", 0))
                key = (m["metric"], m.get("qualifier", ""))
                c, t = out.get(key, (0, 0))
                out[key] = (c + n, round(t + total, 3))
    return out


seeds = st.integers(min_value=0, max_value=10**6)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, dim=st.sampled_from(DIMENSIONS))
def test_the_groups_add_up_to_the_total(seed: int, dim: str) -> None:
    obs = [o for d in replay(history(seed)) for o in observations(d)]
    whole = aggregate(obs, START, END, metrics=METRICS, targets=TARGETS)
    grouped = aggregate(obs, START, END, metrics=METRICS, group_by=[dim], targets=TARGETS)
    assert _totals(grouped) == _totals(whole)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, gran=st.sampled_from(GRANULARITIES), tz=st.sampled_from(ZONES))
def test_every_fact_falls_in_exactly_one_interval(seed: int, gran: str, tz: str) -> None:
    obs = [o for d in replay(history(seed)) for o in observations(d)]
    zone = ZoneInfo(tz)
    whole = aggregate(obs, START, END, metrics=METRICS, tz=zone, targets=TARGETS)
    split = aggregate(obs, START, END, metrics=METRICS, granularity=gran, tz=zone, targets=TARGETS)
    assert _totals(split) == _totals(whole)
    in_range = [o for o in obs if START <= o.at < END]
    counts = {
        m: sum(1 for o in in_range if o.metric == m) for m in COUNT_METRICS if m != "nOverSla"
    }
    durations = {m: sum(1 for o in in_range if o.metric == m) for m in DURATION_METRICS}
    totals = _totals(split)
    for m, n in {**counts, **durations}.items():
        assert totals.get((m, ""), (0, 0))[0] == n


@settings(max_examples=25, deadline=None)
@given(seed=seeds, cut=st.floats(min_value=0.0, max_value=1.0))
def test_a_restart_replaying_each_conversation_equals_the_rebuild(seed: int, cut: float) -> None:
    """The projector's way: trackers held in memory until a cut (a restart), then each
    conversation touched again is replayed from its own earlier events and continued."""
    events = history(seed)
    rebuilt = {d.key: d.as_dict() for d in replay(events)}
    n = int(cut * len(events))
    before = Projection()
    for e in events[:n]:
        before.apply(e)
    after: dict[str, ConversationTracker] = {}
    for e in events[n:]:
        key = key_of(e)
        if key is None:
            continue
        if key not in after:
            earlier = [x for x in events[:n] if key_of(x) == key]
            after[key] = ConversationTracker(key, (earlier or [e])[0])
            for x in earlier:
                after[key].apply(x)
        after[key].apply(e)
    incremental = {k: t.detail.as_dict() for k, t in before.trackers.items()}
    incremental.update({k: t.detail.as_dict() for k, t in after.items()})
    assert incremental == rebuilt


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_details_are_consistent(seed: int) -> None:
    for d in replay(history(seed)):
        ends = [s.end for s in d.segments if s.end is not None]
        assert all(s.end is None or s.end >= s.start for s in d.segments)
        waits = [s for s in d.segments if s.kind == "wait"]
        assert sum(1 for s in waits if s.end is None) <= 1
        if d.outcome == "abandoned":
            assert waits[-1].outcome == "abandoned"
        if d.ended_at is not None:
            assert all(e <= d.ended_at for e in ends)
            assert all(s.end is not None for s in d.segments)


@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_a_business_hours_target_never_counts_more_wait_than_calendar_time(seed: int) -> None:
    """Of two targets with the same seconds, the one in business hours has at least as
    many answers within it; with the same short-abandon threshold, the same
    denominator; and nOverSla follows the first target only."""
    obs = [o for d in replay(history(seed)) for o in observations(d)]
    plain = ServiceTarget("default", 80.0, 600.0)
    same = (plain, ServiceTarget("office", 80.0, 600.0, OFFICE))
    res = aggregate(obs, START, END, metrics=["oServiceTarget", "nOverSla"],
                    targets={"support": same})  # fmt: skip
    cells = {m.get("qualifier"): m["stats"] for r in res for d in r["data"] for m in d["metrics"]}
    if "default" not in cells:
        return
    assert cells["office"]["denominator"] == cells["default"]["denominator"]
    assert cells["office"]["numerator"] >= cells["default"]["numerator"]
    over = [o for o in obs if o.metric == "tAnswered" and o.queue == "support"
            and START <= o.at < END and o.value > plain.seconds]  # fmt: skip
    assert cells.get(None, {}).get("count", 0) == len(over)

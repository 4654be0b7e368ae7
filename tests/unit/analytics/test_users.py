"""Agents' status segments from `presence_changed` records and their aggregates: a
repeated state is no new segment, a segment crossing an interval edge is split there,
an open one counts until `now`, local days in a DST zone, and the time per status adds
up to the time covered (a property)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.analytics.details import EventRecord
from postroom.analytics.users import StatusSegment, aggregate, segments

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def rec(i: int, minutes: float, agent: str, presence: str, status: str) -> EventRecord:
    return EventRecord(i, T0 + timedelta(minutes=minutes), "presence_changed", None,
                       {"agent": agent, "presence": presence, "routing_status": status})  # fmt: skip


def stats(result: list[dict[str, Any]], metric: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (r["group"]["userId"], d["interval"], m["qualifier"]): m["stats"]
        for r in result
        for d in r["data"]
        for m in d["metrics"]
        if m["metric"] == metric
    }


def test_segments_per_agent_with_repeats_merged_and_the_last_open() -> None:
    evs = [
        rec(1, 0, "ann", "on_queue", "IDLE"),
        rec(2, 5, "bob", "away", "OFF_QUEUE"),
        rec(3, 10, "ann", "on_queue", "INTERACTING"),
        rec(4, 12, "ann", "on_queue", "INTERACTING"),  # a rebuild's repeat
        EventRecord(5, T0, "offer_created", 7, {"agent": "ann"}),
        rec(6, 30, "ann", "away", "OFF_QUEUE"),
    ]
    got = segments(evs)
    assert [(s.agent, s.presence, s.routing_status, s.start, s.end) for s in got] == [
        ("ann", "on_queue", "IDLE", T0, T0 + timedelta(minutes=10)),
        ("ann", "on_queue", "INTERACTING", T0 + timedelta(minutes=10), T0 + timedelta(minutes=30)),
        ("ann", "away", "OFF_QUEUE", T0 + timedelta(minutes=30), None),
        ("bob", "away", "OFF_QUEUE", T0 + timedelta(minutes=5), None),
    ]


def test_a_segment_crossing_an_edge_is_split_and_an_open_one_counts_until_now() -> None:
    segs = segments([rec(1, 50, "ann", "on_queue", "IDLE"), rec(2, 70, "ann", "away", "OFF_QUEUE")])
    now = T0 + timedelta(minutes=100)
    out = aggregate(segs, T0, T0 + timedelta(hours=3), now=now, granularity="PT1H",
                    tz=ZoneInfo("UTC"))  # fmt: skip
    rs = stats(out, "tAgentRoutingStatus")
    first, second = "2026-03-29T00:00:00+00:00/2026-03-29T01:00:00+00:00", \
        "2026-03-29T01:00:00+00:00/2026-03-29T02:00:00+00:00"  # fmt: skip
    assert rs[("ann", first, "IDLE")] == {"sum": 600_000.0, "count": 1}
    assert rs[("ann", second, "IDLE")] == {"sum": 600_000.0, "count": 1}
    # open since 01:10, counted until now (01:40), nothing in the hour after now
    assert rs[("ann", second, "OFF_QUEUE")] == {"sum": 1_800_000.0, "count": 1}
    assert len(out[0]["data"]) == 2
    pres = stats(out, "tSystemPresence")
    assert pres[("ann", second, "AWAY")] == {"sum": 1_800_000.0, "count": 1}
    assert pres[("ann", first, "ON_QUEUE")]["sum"] == 600_000.0


def test_local_days_in_a_dst_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    start = datetime(2026, 3, 29, 0, 0, tzinfo=paris)  # 23-hour day: 2026-03-28T23:00Z
    seg = StatusSegment("ann", "on_queue", "IDLE", start - timedelta(hours=1), None, 1)
    out = aggregate([seg], start, datetime(2026, 3, 31, tzinfo=paris),
                    now=datetime(2026, 4, 1, tzinfo=UTC), granularity="P1D", tz=paris)  # fmt: skip
    data = out[0]["data"]
    assert [d["interval"] for d in data] == [
        "2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00",
        "2026-03-30T00:00:00+02:00/2026-03-31T00:00:00+02:00",
    ]
    assert [d["metrics"][0]["stats"]["sum"] for d in data] == [23 * 3_600_000.0, 24 * 3_600_000.0]


def test_group_by_routing_status() -> None:
    segs = segments([rec(1, 0, "ann", "on_queue", "IDLE"), rec(2, 30, "ann", "away", "OFF_QUEUE")])
    out = aggregate(segs, T0, T0 + timedelta(hours=1), now=T0 + timedelta(hours=2),
                    metrics=["tAgentRoutingStatus"], group_by=["routingStatus"])  # fmt: skip
    assert [r["group"] for r in out] == [{"routingStatus": "IDLE"}, {"routingStatus": "OFF_QUEUE"}]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.sampled_from(("IDLE", "INTERACTING", "OFF_QUEUE"))),
        max_size=30,
    ),
    st.sampled_from(("PT15M", "PT1H", None)),
    st.integers(0, 700),
)
def test_time_in_each_status_adds_up_to_the_time_covered(
    changes: list[tuple[int, str]], granularity: str | None, now_min: int
) -> None:
    evs = [rec(i + 1, m, "ann", "on_queue" if s != "OFF_QUEUE" else "away", s)
           for i, (m, s) in enumerate(sorted(changes))]  # fmt: skip
    segs = segments(evs)
    start, end, now = T0 + timedelta(minutes=60), T0 + timedelta(minutes=480), \
        T0 + timedelta(minutes=now_min)  # fmt: skip
    out = aggregate(segs, start, end, now=now, granularity=granularity, metrics=["tAgentRoutingStatus"])
    total = sum(m["stats"]["sum"] for r in out for d in r["data"] for m in d["metrics"])
    first = min((s.start for s in segs), default=None)
    if first is None:
        assert out == []
        return
    covered = max(0.0, (min(end, now) - max(start, first)).total_seconds())
    assert abs(total - covered * 1000.0) < 1e-3 * max(1, len(segs))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 30), min_size=1, max_size=10))
def test_extending_the_open_segments_batch_by_batch_equals_all_at_once(
    seed: int, cuts: list[int]
) -> None:
    """What the status sink does per batch (close the open segment, open the next)
    gives what a rebuild's `segments` gives."""
    from tests.unit.analytics.generator import history

    from postroom.analytics.users import advance

    evs = [e for e in history(seed, conversations=20) if e.kind == "presence_changed"]
    done: list[StatusSegment] = []
    current: dict[str, StatusSegment] = {}
    i = 0
    for n in [*cuts, len(evs)]:
        for e in evs[i : i + n]:
            agent = e.data["agent"]
            closed, opened = advance(current.get(agent), e)
            if closed is not None:
                done.append(closed)
            if opened is not None:
                current[agent] = opened
        i += n
    got = sorted([*done, *current.values()], key=lambda s: (s.agent, s.start, s.event_id))
    assert got == segments(evs)

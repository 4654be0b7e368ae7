"""The backlog's sweep (services/analytics/series.py `levels`) against its definition
(`waiting_at`) on random waits and edges, and the wait buckets' bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from postroom.services.analytics.series import BUCKETS, bucket_of, levels, waiting_at

T0 = datetime(2026, 3, 29, tzinfo=UTC)
minutes = st.integers(min_value=0, max_value=600).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def waits(draw: st.DrawFn) -> tuple[datetime, datetime | None]:
    start = draw(minutes)
    length = draw(st.none() | st.integers(min_value=0, max_value=300))
    return start, None if length is None else start + timedelta(minutes=length)


@given(st.lists(waits(), max_size=40), st.lists(minutes, min_size=1, max_size=30, unique=True))
def test_the_sweep_counts_what_waits_at_each_edge(
    ws: list[tuple[datetime, datetime | None]], raw_edges: list[datetime]
) -> None:
    # Edges often fall exactly on a wait's start or end (whole minutes on both sides).
    edges = sorted(raw_edges)
    first, last = edges[0], edges[-1]
    # What backlog reads: the waits open at the first edge, and the starts and ends
    # after it up to the last.
    opened = waiting_at(ws, first)
    changes = [(s, 1) for s, _ in ws if first < s <= last]
    changes += [(e, -1) for _, e in ws if e is not None and first < e <= last]
    assert levels(edges, opened, changes) == [waiting_at(ws, e) for e in edges]


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_every_wait_falls_in_the_bucket_that_holds_it(seconds: float) -> None:
    b = BUCKETS[bucket_of(seconds)]
    assert b.from_s <= seconds and (b.to_s is None or seconds < b.to_s)


def test_no_edges_no_levels() -> None:
    assert levels([], 0, []) == []

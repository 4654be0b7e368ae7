"""The interval rollup answers as the facts do: on random histories, counts, sums, mins
and maxes are the facts' (exact), p50 and p90 within the sketch's accuracy, for every
granularity and zone where a level tiles the intervals, grouped and filtered."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.analytics.generator import AGENTS, QUEUES, history

from postroom.analytics import rollup
from postroom.analytics.details import replay
from postroom.analytics.metrics import (
    DIMENSION_FIELD,
    DIMENSIONS,
    GRANULARITIES,
    METRICS,
    ServiceTarget,
    aggregate,
    observations,
)

ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
START = datetime(2026, 3, 28, tzinfo=ZoneInfo("UTC"))
END = datetime(2026, 3, 31, tzinfo=ZoneInfo("UTC"))
TARGETS = {"support": ServiceTarget("default", 80.0, 600.0)}


def _flat(results: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (tuple(sorted(r["group"].items())), d["interval"], m["metric"]): m["stats"]
        for r in results
        for d in r["data"]
        for m in d["metrics"]
    }


def _same(facts: dict[str, Any], rolled: dict[str, Any]) -> None:
    assert facts.keys() == rolled.keys()
    for k in ("count", "min", "max"):
        if k in facts:
            assert rolled[k] == facts[k]
    if "sum" in facts:
        assert math.isclose(rolled["sum"], facts["sum"], rel_tol=1e-9, abs_tol=1e-3)
    for k in ("p50", "p90"):
        if k in facts:
            assert abs(rolled[k] - facts[k]) <= rollup.ALPHA * facts[k] + 1e-3


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10**6),
    gran=st.sampled_from((*GRANULARITIES, None)),
    tz=st.sampled_from(ZONES),
    group=st.lists(st.sampled_from(DIMENSIONS), max_size=2, unique=True),
    only=st.sampled_from((None, ("queueId", QUEUES[0]), ("userId", AGENTS[1]))),
)
def test_the_rollup_answers_as_the_facts(
    seed: int, gran: str | None, tz: str, group: list[str], only: tuple[str, str] | None
) -> None:
    obs = [o for d in replay(history(seed, conversations=60, span_h=60.0)) for o in observations(d)]
    zone = ZoneInfo(tz)
    dims = [*group, *([only[0]] if only else [])]
    level = rollup.level_for(START, END, gran, zone, dims)
    if level is None:
        return  # the facts answer this query
    if only is not None:
        field = DIMENSION_FIELD[only[0]]
        obs = [o for o in obs if getattr(o, field) == only[1]]
    wanted = rollup.rolled_metrics(METRICS)
    facts = aggregate(obs, START, END, metrics=wanted, granularity=gran, tz=zone, group_by=group)
    cells = rollup.roll(obs)[level.name].items()
    rolled = rollup.answer(cells, START, END, metrics=wanted, granularity=gran, tz=zone,
                           group_by=group)  # fmt: skip
    f, r = _flat(facts), _flat(rolled)
    assert f.keys() == r.keys()
    for k in f:
        _same(f[k], r[k])
    # the order of groups, intervals and metrics is the facts' too
    assert [list(x) for x in r] == [list(x) for x in f]


@pytest.mark.parametrize(
    ("gran", "tz", "group", "level"),
    [
        ("PT1H", "UTC", ["queueId"], "1h-queue"),
        ("P1D", "Europe/Paris", [], "1h-queue"),
        ("P1D", "Asia/Kolkata", ["queueId"], "15m"),  # +05:30: midnight is not on the hour
        ("PT1H", "UTC", ["userId"], "15m"),
        ("PT15M", "UTC", ["queueId"], "15m"),
    ],
)
def test_the_coarsest_level_that_tiles_the_query(
    gran: str, tz: str, group: list[str], level: str
) -> None:
    found = rollup.level_for(START, END, gran, ZoneInfo(tz), group)
    assert found is not None and found.name == level


def test_no_level_for_intervals_off_the_quarter_hour() -> None:
    start = START.replace(minute=5)
    assert rollup.level_for(start, END, "PT1H", ZoneInfo("UTC"), []) is None


def test_service_level_merges_with_rolled_metrics_in_the_asked_order() -> None:
    obs = [o for d in replay(history(3, conversations=40)) for o in observations(d)]
    metrics = ["oServiceLevel", "nOffered", "tAnswered"]
    whole = aggregate(obs, START, END, metrics=metrics, granularity="PT1H", tz=ZoneInfo("UTC"),
                      group_by=["queueId"], targets=TARGETS)  # fmt: skip
    sl = aggregate(obs, START, END, metrics=["oServiceLevel"], granularity="PT1H",
                   tz=ZoneInfo("UTC"), group_by=["queueId"], targets=TARGETS)  # fmt: skip
    rest = aggregate(obs, START, END, metrics=["nOffered", "tAnswered"], granularity="PT1H",
                     tz=ZoneInfo("UTC"), group_by=["queueId"])  # fmt: skip
    assert rollup.merge_results([rest, sl], metrics, ["queueId"]) == whole


@given(st.lists(st.floats(min_value=0.0, max_value=1e7), min_size=1, max_size=200))
def test_sketch_percentiles_are_within_alpha(values: list[float]) -> None:
    cell = rollup.Cell()
    for v in values:
        cell.add(v)
    ordered = sorted(values)
    for q in (50, 90):
        exact = ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
        assert abs(cell.quantile(q) - exact) <= rollup.ALPHA * exact + 1e-12


@given(
    st.lists(st.floats(min_value=0.0, max_value=1e5), min_size=1, max_size=100),
    st.integers(min_value=0, max_value=10**5),
)
def test_whole_second_waits_count_exactly(values: list[float], seconds: int) -> None:
    rows = [("tAnswered", 0.0, v, "support", None, None, None, None) for v in values]
    (cell,) = rollup.roll_rows(rows, [rollup.HOURLY_QUEUE])["1h-queue"].values()
    encoded = cell.encoded_waits()
    assert encoded is not None
    assert rollup.within(encoded, seconds) == sum(1 for v in values if v <= seconds)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["tAnswered", "tHandle"]),
            st.floats(min_value=0.0, max_value=7200.0),
            st.floats(min_value=0.0, max_value=1e4),
            st.sampled_from(["support", "billing", None]),
        ),
        max_size=60,
    ),
    st.data(),
)
def test_a_roller_fed_in_parts_gives_the_cells_of_all_the_facts(
    facts: list[tuple[str, float, float, str | None]], data: st.DataObject
) -> None:
    rows = [(m, ts, v, q, "ann", None, None, "inbound") for m, ts, v, q in facts]
    order = data.draw(st.permutations(rows))
    cut = data.draw(st.integers(min_value=0, max_value=len(rows)))
    roller = rollup.Roller()
    roller.add(order[:cut])
    roller.add(order[cut:])

    def flat(rolled: dict[str, dict[rollup.CellKey, rollup.Cell]]) -> dict[Any, Any]:
        return {
            (name, key): (c.count, c.sum_us, c.min, c.max, c.encoded_sketch(), c.encoded_waits())
            for name, cells in rolled.items() for key, c in cells.items()
        }  # fmt: skip

    assert flat(roller.cells()) == flat(rollup.roll_rows(rows))


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=200))
def test_quantiles_in_one_pass_equal_each_quantile(values: list[float]) -> None:
    cell = rollup.Cell()
    for v in values:
        cell.add(v)
    assert cell.quantiles((50, 90)) == [cell.quantile(50), cell.quantile(90)]

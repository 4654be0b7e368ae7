"""Interval rollup of metric facts: what the aggregates read instead of every fact.

The job: `roll` sums metric facts (``postroom.analytics.metrics.Observation``) into
cells per interval of a `Level` × metric × the level's dimensions, each holding
the exact count, sum (whole microseconds), min and max and a mergeable `Sketch`
for percentiles; `answer` turns such cells into the Genesys-shaped aggregate
results `metrics.aggregate` gives, when `level_for` says a level can answer a
query exactly. Two levels: every 15 minutes (UTC) by every dimension, and every
hour (UTC) by queue (what a month of hourly by-queue figures needs).

The metric name is opaque here: any fact rolls up the same way. Metrics computed
from single facts at query time (service level, `nOverSla`) are not answered from
cells (metrics.NEEDS).

Sketch accuracy: values fall in logarithmic buckets (ratio `GAMMA` between bucket
edges); a percentile is the bucket's midpoint in relative terms, clamped to the
cell's exact min and max, so it is within `ALPHA` (1 %) of the nearest-rank value
the facts give. Values of 0 have their own bucket (exact).

What it must not do: read storage or a clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from postroom.analytics.metrics import (
    COUNT_METRICS,
    DIMENSION_FIELD,
    NEEDS,
    Observation,
    boundaries,
)

ALPHA = 0.01  # relative accuracy of p50/p90
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
ZERO_BUCKET = -(10**6)  # values <= 0 (no positive double is that small)
FIELDS = ("queue", "agent", "route", "wrapup_code", "direction")
EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday midnight: interval starts count from it


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    minutes: int
    fields: tuple[str, ...]  # the Observation fields kept; the others are None in its cells
    waits: bool = False  # its cells count values by whole seconds too (Cell.waits)


FINE = Level("15m", 15, FIELDS)
HOURLY_QUEUE = Level("1h-queue", 60, ("queue",), waits=True)
LEVELS = (FINE, HOURLY_QUEUE)
UNIT = timedelta(minutes=60)  # every level's intervals tile it: recomputed as a whole


def bucket_of(value: float) -> int:
    if value <= 0:
        return ZERO_BUCKET
    return math.ceil(math.log(value) / _LOG_GAMMA)


def value_of(bucket: int) -> float:
    """The bucket's representative: within ALPHA of every value in it."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return 2.0 * GAMMA**bucket / (GAMMA + 1.0)


@dataclass(slots=True)
class Cell:
    """count, sum, min, max (exact) and a log-bucket sketch of the values (seconds)."""

    count: int = 0
    sum_us: int = 0  # whole microseconds: sums of durations stay exact
    min: float = math.inf
    max: float = -math.inf
    sketch: dict[int, int] = field(default_factory=dict)
    # values by their whole-second ceiling (levels with `waits`): how many are within any
    # whole number of seconds, exactly — service level against whole-second targets
    waits: dict[int, int] | None = None

    def add(self, value: float) -> None:
        self.count += 1
        self.sum_us += round(value * 1_000_000)
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        b = bucket_of(value)
        self.sketch[b] = self.sketch.get(b, 0) + 1
        if self.waits is not None:
            s = math.ceil(value)
            self.waits[s] = self.waits.get(s, 0) + 1

    def merge(self, other: Cell) -> None:
        self.count += other.count
        self.sum_us += other.sum_us
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        for b, n in other.sketch.items():
            self.sketch[b] = self.sketch.get(b, 0) + n

    def quantile(self, q: float) -> float:
        """The nearest-rank percentile (q in 0..100), within ALPHA."""
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for b in sorted(self.sketch):
            seen += self.sketch[b]
            if seen >= rank:
                return min(self.max, max(self.min, value_of(b)))
        return self.max

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """`quantile` of each of `qs` (ascending), in one pass over the buckets."""
        ranks = [max(1, math.ceil(q / 100.0 * self.count)) for q in qs]
        out: list[float] = []
        seen = 0
        sk = self.sketch
        for b in sorted(sk):
            seen += sk[b]
            while len(out) < len(ranks) and seen >= ranks[len(out)]:
                out.append(min(self.max, max(self.min, value_of(b))))
            if len(out) == len(ranks):
                return out
        return out + [self.max] * (len(ranks) - len(out))

    def encoded_sketch(self) -> str:
        """`[bucket, count, bucket, count, ...]` by bucket (compact JSON); `[]` when every
        value is the same (min == max: one bucket, the count's)."""
        if self.min == self.max:
            return "[]"
        return "[" + ",".join(f"{b},{self.sketch[b]}" for b in sorted(self.sketch)) + "]"

    def encoded_waits(self) -> str | None:
        """Fixed-width hex records `SSSSSSSSCCCCCCCC` — whole seconds ascending and how
        many values are within them (cumulative) — searched without decoding (`within`)."""
        if self.waits is None:
            return None
        out, total = [], 0
        for k in sorted(self.waits):
            total += self.waits[k]
            out.append(f"{k:08x}{total:08x}")
        return "".join(out)

    @staticmethod
    def decoded(count: int, sum_us: int, lo: float, hi: float, flat: Sequence[int]) -> Cell:
        """The cell `encoded_sketch` and its exact figures describe."""
        if not flat:
            return Cell(count, sum_us, lo, hi, {bucket_of(lo): count})
        return Cell(count, sum_us, lo, hi, dict(zip(flat[::2], flat[1::2], strict=True)))


def within(waits: str, seconds: float) -> int:
    """How many values of an `encoded_waits` cell are <= `seconds` (a whole number)."""
    lo, hi = 0, len(waits) // 16  # first record whose seconds exceed `seconds`
    while lo < hi:
        mid = (lo + hi) // 2
        if int(waits[mid * 16 : mid * 16 + 8], 16) <= seconds:
            lo = mid + 1
        else:
            hi = mid
    return int(waits[lo * 16 - 8 : lo * 16], 16) if lo else 0


# (interval start UTC, metric, queue, agent, route, wrapup_code, direction)
CellKey = tuple[datetime, str, str | None, str | None, str | None, str | None, str | None]


def floor(at: datetime, minutes: int) -> datetime:
    """The start of the `minutes`-long UTC interval `at` falls in (minutes divide 60)."""
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % minutes, second=0, microsecond=0)


def roll(
    obs: Iterable[Observation], levels: Sequence[Level] = LEVELS
) -> dict[str, dict[CellKey, Cell]]:
    """Every level's cells of `obs`."""
    return roll_rows(
        (
            (o.metric, o.at.timestamp(), o.value, o.queue, o.agent, o.route, o.wrapup_code,
             o.direction)
            for o in obs
        ),
        levels,
    )  # fmt: skip


# A fact as `roll_rows` takes it: (metric, its moment in POSIX seconds, value, queue,
# agent, route, wrapup_code, direction) — what storage hands over without building
# an Observation for each.
FactRow = tuple[str, float, float, str | None, str | None, str | None, str | None, str | None]


def roll_rows(
    rows: Iterable[FactRow], levels: Sequence[Level] = LEVELS
) -> dict[str, dict[CellKey, Cell]]:
    """`roll` of facts given as `FactRow`s."""
    roller = Roller(levels)
    roller.add(rows)
    return roller.cells()


class Roller:
    """`roll_rows` a part at a time: `add` facts as they come, `cells` at the end (the
    cells are the same whatever the order and the parts the facts came in)."""

    def __init__(self, levels: Sequence[Level] = LEVELS) -> None:
        self.levels = tuple(levels)
        self._plan: list[tuple[dict[tuple[Any, ...], Cell], float, tuple[bool, ...] | None, bool]]
        self._plan = []
        for lv in self.levels:
            kept = tuple(f in lv.fields for f in FIELDS)
            self._plan.append(({}, float(lv.minutes * 60), None if all(kept) else kept, lv.waits))

    def add(self, rows: Iterable[FactRow]) -> None:
        plan = self._plan
        log, ceil, zero = math.log, math.ceil, ZERO_BUCKET
        for metric, ts, v, q, a, r, w, d in rows:
            us = round(v * 1_000_000)
            b = zero if v <= 0 else ceil(log(v) / _LOG_GAMMA)
            for cells, step, keep, waits in plan:
                if keep is None:
                    key: tuple[Any, ...] = (ts - ts % step, metric, q, a, r, w, d)
                else:
                    key = (
                        ts - ts % step, metric, q if keep[0] else None, a if keep[1] else None,
                        r if keep[2] else None, w if keep[3] else None, d if keep[4] else None,
                    )  # fmt: skip
                cell = cells.get(key)
                if cell is None:
                    cells[key] = Cell(1, us, v, v, {b: 1}, {ceil(v): 1} if waits else None)
                    continue
                if waits:
                    wt = cell.waits
                    assert wt is not None
                    sec = ceil(v)
                    wt[sec] = wt.get(sec, 0) + 1
                cell.count += 1
                cell.sum_us += us
                if v < cell.min:
                    cell.min = v
                if v > cell.max:
                    cell.max = v
                sk = cell.sketch
                sk[b] = sk.get(b, 0) + 1

    def cells(self) -> dict[str, dict[CellKey, Cell]]:
        """Every level's cells of the facts added so far."""
        out: dict[str, dict[CellKey, Cell]] = {}
        starts: dict[float, datetime] = {}
        for lv, (cells, *_) in zip(self.levels, self._plan, strict=True):
            named: dict[CellKey, Cell] = {}
            for key, cell in cells.items():
                at = starts.get(key[0])
                if at is None:
                    at = starts[key[0]] = datetime.fromtimestamp(key[0], UTC)
                named[(at, *key[1:])] = cell
            out[lv.name] = named
        return out


# -- answering aggregate queries from cells ----------------------------------------------


def rolled_metrics(metrics: Sequence[str]) -> list[str]:
    """The asked metrics cells answer (not those computed from single facts at query time)."""
    return [m for m in metrics if m not in NEEDS]


def level_for(
    start: datetime,
    end: datetime,
    granularity: str | None,
    tz: ZoneInfo,
    dimensions: Iterable[str],
) -> Level | None:
    """The coarsest level whose intervals tile every interval of the query exactly and
    that keeps every dimension it groups or filters by; None: only the facts can answer."""
    edges = boundaries(start, end, granularity, tz)
    wanted = {DIMENSION_FIELD[d] for d in dimensions}
    for lv in sorted(LEVELS, key=lambda lv: -lv.minutes):
        step = timedelta(minutes=lv.minutes)
        if wanted <= set(lv.fields) and all((e - EPOCH) % step == timedelta(0) for e in edges):
            return lv
    return None


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def stats(metric: str, cell: Cell) -> dict[str, Any]:
    if metric in COUNT_METRICS:
        return {"count": cell.count}
    p50, p90 = cell.quantiles((50, 90))
    return {
        "count": cell.count,
        "sum": round(cell.sum_us / 1000.0, 3),
        "min": _ms(cell.min),
        "max": _ms(cell.max),
        "p50": _ms(p50),
        "p90": _ms(p90),
    }


def answer(
    cells: Iterable[tuple[CellKey, Cell]],
    start: datetime,
    end: datetime,
    *,
    metrics: Sequence[str],
    granularity: str | None,
    tz: ZoneInfo,
    group_by: Sequence[str],
) -> list[dict[str, Any]]:
    """What `metrics.aggregate` gives for `metrics` (those `rolled_metrics` keeps), from the
    cells of a level `level_for` chose (already filtered as the query filters)."""
    edges = boundaries(start, end, granularity, tz)
    gidx = [FIELDS.index(DIMENSION_FIELD[g]) + 2 for g in group_by]  # positions in CellKey
    wanted = set(rolled_metrics(metrics))
    groups: dict[tuple[str | None, ...], dict[int, dict[str, Cell]]] = {}
    for key, cell in cells:
        at, metric = key[0], key[1]
        if metric not in wanted or not (start <= at < end) or cell.count == 0:
            continue
        idx = bisect.bisect_right(edges, at) - 1
        gkey = tuple(key[i] for i in gidx)
        accs = groups.setdefault(gkey, {}).setdefault(idx, {})  # type: ignore[arg-type]
        acc = accs.get(metric)
        if acc is None:
            accs[metric] = Cell(cell.count, cell.sum_us, cell.min, cell.max, dict(cell.sketch))
        else:
            acc.merge(cell)
    results = []
    labels = IntervalLabels(edges, tz)
    for gkey in sorted(groups, key=lambda k: tuple("" if v is None else v for v in k)):
        data = []
        for idx in sorted(groups[gkey]):
            accs = groups[gkey][idx]
            ms = [{"metric": m, "stats": stats(m, accs[m])} for m in metrics if m in accs]
            if ms:
                data.append({"interval": labels[idx], "metrics": ms})
        if data:
            results.append({"group": dict(zip(group_by, gkey, strict=True)), "data": data})
    return results


def _iso(t: datetime, tz: ZoneInfo) -> str:
    return t.astimezone(tz).isoformat(timespec="seconds")


class IntervalLabels:
    """`start/end` (ISO 8601 in `tz`) of the intervals between `edges`, by index; each
    made once (the groups of a result share their intervals)."""

    def __init__(self, edges: Sequence[datetime], tz: ZoneInfo) -> None:
        self._edges, self._tz = edges, tz
        self._made: dict[int, str] = {}

    def __getitem__(self, idx: int) -> str:
        got = self._made.get(idx)
        if got is None:
            e, tz = self._edges, self._tz
            got = self._made[idx] = f"{_iso(e[idx], tz)}/{_iso(e[idx + 1], tz)}"
        return got


def merge_results(
    parts: Sequence[list[dict[str, Any]]], metrics: Sequence[str], group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """Several aggregate results over the same intervals and groups (different metrics)
    as one, groups, intervals and metrics in the order `metrics.aggregate` gives them."""
    if len(parts) == 1:
        return parts[0]
    order = {m: i for i, m in enumerate(metrics)}
    merged: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}
    for part in parts:
        for r in part:
            gkey = tuple(r["group"].get(g) for g in group_by)
            by_interval = merged.setdefault(gkey, {})
            for d in r["data"]:
                by_interval.setdefault(d["interval"], []).extend(d["metrics"])
    results: list[dict[str, Any]] = []
    for gkey in sorted(merged, key=lambda k: tuple("" if v is None else v for v in k)):
        data: list[dict[str, Any]] = []
        for iv in sorted(merged[gkey], key=_start_of):
            ms = merged[gkey][iv]
            data.append({"interval": iv, "metrics": sorted(ms, key=lambda m: order[m["metric"]])})
        results.append({"group": dict(zip(group_by, gkey, strict=True)), "data": data})
    return results


def _start_of(interval: str) -> datetime:
    return datetime.fromisoformat(interval.split("/", 1)[0])

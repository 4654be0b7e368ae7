"""Metrics with Genesys names, as pure functions over conversation details.

The job: `observations(detail)` lists every metric fact of a conversation — one
row per thing counted or timed, stamped with the moment it happened (a wait is
counted in the interval it ended in, an offer in the interval it was offered)
and with its dimensions (queue, agent, route address, wrap-up code,
direction). `aggregate` buckets observations into the intervals of a
granularity in a time zone (local-calendar days, weeks and months; sub-day
steps in absolute time, so a DST day has 23 or 25 hours) and groups them;
each metric is a count, sum, min, max, p50 and p90 (durations, in
milliseconds as Genesys reports them) or a ratio (the service level).
docs/analytics.md defines every metric.

Service level is computed at query time from the answered and abandoned waits
against the `ServiceTarget`s of each queue (one or more, the first first): a
target counts a wait in calendar seconds or in the open hours of its
business-hours calendar (domain/calendars.py), so targets and calendars change
only how a wait is measured, never the stored facts. `oServiceLevel` and
`oServiceTarget` are reported once per target, with the target's name as the
entry's `qualifier`; `nOverSla` counts against the first target. An abandon
counts against every target only when it waited (in calendar seconds) longer
than the queue's short-abandon threshold.

What it must not do: read a clock or storage; the time zone comes as a name.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from postroom.analytics.details import ConversationDetail
from postroom.domain.calendars import BusinessCalendar

# The metrics a query may ask for (docs/analytics.md), and the facts each is built on.
DURATION_METRICS = (
    "tWait", "tAcd", "tAnswered", "tAbandon", "tAlert", "tNotResponding", "tHandle",
    "tAcw", "tPark", "tAgentResponseTime", "tFirstResponse",
)  # fmt: skip
COUNT_METRICS = ("nOffered", "nConnected", "nTransferred", "nOverSla", "nOutbound")
RATIO_METRICS = ("oServiceLevel", "oServiceTarget")
METRICS = (*COUNT_METRICS, *DURATION_METRICS, *RATIO_METRICS)
# Facts stored per conversation: the metrics less those computed from others at query time.
FACTS = tuple(m for m in METRICS if m not in ("nOverSla", "oServiceLevel", "oServiceTarget"))
NEEDS: dict[str, tuple[str, ...]] = {
    "nOverSla": ("tAnswered",),
    "oServiceLevel": ("tAnswered", "tAbandon"),
    "oServiceTarget": ("tAnswered", "tAbandon"),
}
# Dimensions, by their Genesys names.
DIMENSIONS = ("queueId", "userId", "addressTo", "wrapUpCode", "direction", "tag")
DIMENSION_FIELD = {
    "queueId": "queue",
    "userId": "agent",
    "addressTo": "route",
    "wrapUpCode": "wrapup_code",
    "direction": "direction",
    "tag": "tag",
}
GRANULARITIES = ("PT15M", "PT30M", "PT1H", "P1D", "P7D", "P1W", "P1M")
SHORT_ABANDON_S = 10.0  # an abandon within this many seconds does not count against SL


@dataclass(frozen=True, slots=True)
class Observation:
    metric: str
    at: datetime  # when it counts (the interval it falls in)
    value: float  # seconds for durations, 1 for counts
    queue: str | None = None
    agent: str | None = None
    route: str | None = None
    wrapup_code: str | None = None
    direction: str | None = None
    start: datetime | None = None  # a duration's start (for business-hours measures later)
    conversation: str = ""
    # One of the conversation's tags, when grouping by tag (a fact of a conversation with
    # two tags is counted in each tag's group); not part of the stored facts.
    tag: str | None = None

    def dimension(self, name: str) -> str | None:
        value: str | None = getattr(self, DIMENSION_FIELD[name])
        return value


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """'percent % answered within seconds', named `name` (the results' qualifier).

    With a `calendar` a wait counts in its open hours between the wait's start and
    end; without, in calendar seconds. `short_abandon_s` is the queue's threshold
    (None: the one `aggregate` is given)."""

    name: str
    percent: float
    seconds: float
    calendar: BusinessCalendar | None = None
    short_abandon_s: float | None = None

    def wait(self, o: Observation) -> float:
        """The wait of an answered or abandoned observation as this target counts it."""
        if self.calendar is None or o.start is None:
            return o.value
        return self.calendar.business_seconds(o.start, o.at)


Targets = Mapping[str, ServiceTarget | Sequence[ServiceTarget]]


def as_targets(t: ServiceTarget | Sequence[ServiceTarget]) -> tuple[ServiceTarget, ...]:
    """A queue's targets as a tuple (one target or several)."""
    return (t,) if isinstance(t, ServiceTarget) else tuple(t)


def observations(d: ConversationDetail) -> list[Observation]:
    """Every metric fact of one conversation (definitions in docs/analytics.md)."""
    out: list[Observation] = []
    base = {"route": d.route, "wrapup_code": d.wrapup_code, "direction": d.direction}

    def add(
        metric: str,
        at: datetime,
        value: float = 1.0,
        queue: str | None = None,
        agent: str | None = None,
        start: datetime | None = None,
    ) -> None:
        out.append(
            Observation(metric, at, value, queue, agent, start=start, conversation=d.key, **base)
        )

    if d.direction == "outbound":
        add("nOutbound", d.started_at, queue=d.queues[0] if d.queues else None, agent=(
            d.agents[0] if d.agents else None))  # fmt: skip
    handle: dict[int, list[float]] = {}
    handle_end: dict[int, tuple[datetime, str | None, str | None]] = {}
    open_parts: set[int] = set()
    for s in d.segments:
        secs = s.seconds
        if s.kind == "wait":
            add("nOffered", s.start, queue=s.queue)
            if s.end is None or secs is None:
                continue
            if s.outcome == "answered":
                add("tAnswered", s.end, secs, s.queue, s.answered_by, s.start)
            if s.outcome == "abandoned":
                add("tAbandon", s.end, secs, s.queue, None, s.start)
            if s.outcome in ("answered", "abandoned"):
                add("tAcd", s.end, secs, s.queue, s.answered_by, s.start)
            add("tWait", s.end, secs, s.queue, s.answered_by, s.start)
        elif s.kind == "alert":
            if s.end is None or secs is None:
                continue
            add("tAlert", s.end, secs, s.queue, s.agent, s.start)
            if s.outcome == "timed_out":
                add("tNotResponding", s.end, secs, s.queue, s.agent, s.start)
        else:
            if s.kind == "interact" and s.connect:
                add("nConnected", s.start, queue=s.queue, agent=s.agent)
            part = s.participation or 0
            if s.end is None or secs is None:
                open_parts.add(part)
                continue
            if s.kind == "park":
                add("tPark", s.end, secs, s.queue, s.agent, s.start)
                continue
            if s.kind == "wrapup":
                add("tAcw", s.end, secs, s.queue, s.agent, s.start)
            handle.setdefault(part, []).append(secs)
            prev = handle_end.get(part)
            if prev is None or s.end >= prev[0]:
                handle_end[part] = (s.end, s.queue, s.agent)
    for part, parts in handle.items():
        if part in open_parts:
            continue  # the agent still works on it: handle time counts when they leave
        end, queue, agent = handle_end[part]
        add("tHandle", end, sum(parts), queue, agent)
    for t in d.transfers:
        add("nTransferred", t.at, queue=t.from_queue, agent=t.from_agent)
    for r in d.responses:
        add("tAgentResponseTime", r.at, r.seconds, r.queue, r.agent)
        if r.first:
            add("tFirstResponse", r.at, r.seconds, r.queue, r.agent)
    return out


# -- intervals --------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA time zone; raises ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}; use an IANA name like Europe/Paris") from exc


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def boundaries(
    start: datetime, end: datetime, granularity: str | None, tz: ZoneInfo
) -> list[datetime]:
    """Interval edges from `start` to `end` (both included). Days, weeks (from Monday)
    and months follow the local calendar of `tz`; shorter steps are absolute."""
    # Aware arithmetic within one tzinfo is wall-clock arithmetic: step in UTC.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if granularity is None:
        return [start, end]
    edges = [start]
    step = {"PT15M": 15, "PT30M": 30, "PT1H": 60}.get(granularity)
    cur = start
    while True:
        if step is not None:
            nxt = cur + timedelta(minutes=step)
        else:
            local = cur.astimezone(tz).date()
            if granularity == "P1D":
                nday = local + timedelta(days=1)
            elif granularity in ("P7D", "P1W"):
                nday = local + timedelta(days=7 - local.weekday())
            elif granularity == "P1M":
                nday = date(local.year + local.month // 12, local.month % 12 + 1, 1)
            else:
                raise ValueError(f"unknown granularity {granularity!r}")
            nxt = _local_midnight(nday, tz).astimezone(UTC)
        if nxt >= end:
            edges.append(end)
            return edges
        edges.append(nxt)
        cur = nxt


# -- aggregation ------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of sorted values."""
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class _Acc:
    values: list[float] = field(default_factory=list)
    within: int = 0
    counted: int = 0
    target: float | None = None
    qualifier: str | None = None


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _stats(metric: str, acc: _Acc) -> dict[str, Any] | None:
    if metric in COUNT_METRICS:
        return {"count": len(acc.values)} if acc.values else None
    if metric in ("oServiceLevel", "oServiceTarget"):
        if acc.counted == 0:
            return None
        ratio = acc.within / acc.counted
        out: dict[str, Any] = {"numerator": acc.within, "denominator": acc.counted}
        if metric == "oServiceLevel":
            out["ratio"] = round(ratio, 6)
        if acc.target is not None:
            out["target"] = acc.target
        return out
    if not acc.values:
        return None
    v = sorted(acc.values)
    return {
        "count": len(v),
        "sum": _ms(sum(v)),
        "min": _ms(v[0]),
        "max": _ms(v[-1]),
        "p50": _ms(percentile(v, 50)),
        "p90": _ms(percentile(v, 90)),
    }


def _iso(t: datetime, tz: ZoneInfo) -> str:
    return t.astimezone(tz).isoformat(timespec="seconds")


def aggregate(
    obs: Iterable[Observation],
    start: datetime,
    end: datetime,
    *,
    metrics: Sequence[str],
    granularity: str | None = None,
    tz: ZoneInfo | None = None,
    group_by: Sequence[str] = (),
    targets: Targets | None = None,
    short_abandon_s: float = SHORT_ABANDON_S,
) -> list[dict[str, Any]]:
    """Genesys-shaped results: [{"group": {...}, "data": [{"interval", "metrics": [...]}]}].

    Observations outside [start, end) are ignored; each one falls in exactly one
    interval. Service level per queue uses `targets[queue]`, its targets first first (a
    queue without one does not count in oServiceLevel or nOverSla): one
    oServiceLevel / oServiceTarget entry per target name, `"qualifier": name`, in the
    order of the targets (first targets first, then by name). `short_abandon_s` is the
    threshold of targets that do not carry their queue's.
    """
    tz = tz or ZoneInfo("UTC")
    edges = boundaries(start, end, granularity, tz)
    wanted = set(metrics)
    facts = {f for m in wanted for f in NEEDS.get(m, (m,))}
    by_queue = {q: as_targets(t) for q, t in (targets or {}).items()}
    rank: dict[str, tuple[int, str]] = {}  # a qualifier's place among the entries
    sl = wanted & {"oServiceLevel", "oServiceTarget", "nOverSla"}
    groups: dict[tuple[str | None, ...], dict[int, dict[str, _Acc]]] = {}
    fields = [DIMENSION_FIELD[g] for g in group_by]

    def key_of(o: Observation) -> tuple[str | None, ...]:
        return tuple(getattr(o, f) for f in fields)

    for o in obs:
        if o.metric not in facts or not (start <= o.at < end):
            continue
        idx = bisect.bisect_right(edges, o.at) - 1
        gkey = key_of(o)
        accs = groups.setdefault(gkey, {}).setdefault(idx, {})
        if o.metric in wanted:
            accs.setdefault(o.metric, _Acc()).values.append(o.value)
        if not sl or o.metric not in ("tAnswered", "tAbandon"):
            continue
        queue_targets = by_queue.get(o.queue or "")
        if not queue_targets:
            continue
        if o.metric == "tAbandon":
            threshold = queue_targets[0].short_abandon_s
            if o.value <= (short_abandon_s if threshold is None else threshold):
                continue  # a short abandon: counts against no target
        for i, target in enumerate(queue_targets):
            if o.metric == "tAnswered":
                wait = target.wait(o)
                if i == 0 and wait > target.seconds and "nOverSla" in wanted:
                    accs.setdefault("nOverSla", _Acc()).values.append(1.0)
                within = 1 if wait <= target.seconds else 0
            else:
                within = 0  # a long abandon counts against every target
            if target.name not in rank or rank[target.name][0] > i:
                rank[target.name] = (i, target.name)
            for m in ("oServiceLevel", "oServiceTarget"):
                if m in wanted:
                    acc = accs.setdefault(f"{m}\x00{target.name}", _Acc(qualifier=target.name))
                    acc.within += within
                    acc.counted += 1
                    # One target in the cell when it is one queue's (or all share it).
                    pct = target.percent
                    acc.target = pct if acc.counted == 1 or acc.target == pct else None
    results = []
    for gkey in sorted(groups, key=lambda k: tuple("" if v is None else v for v in k)):
        data = []
        for idx in sorted(groups[gkey]):
            accs = groups[gkey][idx]
            ms = []
            for m in metrics:
                if m in RATIO_METRICS:
                    cells = [a for k, a in accs.items() if k.startswith(m + "\x00")]
                    cells.sort(key=lambda a: rank[a.qualifier or ""])
                    for a in cells:
                        st = _stats(m, a)
                        if st is not None:
                            ms.append({"metric": m, "qualifier": a.qualifier, "stats": st})
                elif m in accs:
                    st = _stats(m, accs[m])
                    if st is not None:
                        ms.append({"metric": m, "stats": st})
            if ms:
                data.append({"interval": f"{_iso(edges[idx], tz)}/{_iso(edges[idx + 1], tz)}",
                             "metrics": ms})  # fmt: skip
        if data:
            results.append({"group": dict(zip(group_by, gkey, strict=True)), "data": data})
    return results

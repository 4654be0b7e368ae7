"""Agents' status over time, from the event log: status segments and their aggregates.

The job: turn `presence_changed` event records (the router writes one whenever an
agent's presence or routing status changes, services/routing.py) into per-agent
status segments — agent, presence, routing status (Genesys names), start, and end
or open — and add up the time in each presence (`tSystemPresence`) and routing
status (`tAgentRoutingStatus`) per interval of a granularity in a time zone, a
segment that crosses an interval edge split at the edge and an open one counted
until the `now` it is given. docs/analytics.md defines the metrics.

What it must not do: read a clock, a database or anything but the records and
segments it is given.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from postroom.analytics.details import EventRecord
from postroom.analytics.metrics import boundaries

KIND = "presence_changed"
USER_METRICS = ("tAgentRoutingStatus", "tSystemPresence")
USER_DIMENSIONS = ("userId", "presence", "routingStatus")
ROUTING_STATUSES = ("OFF_QUEUE", "IDLE", "INTERACTING", "NOT_RESPONDING")


@dataclass(frozen=True, slots=True)
class StatusSegment:
    """One agent in one (presence, routing status) from `start` to `end` (None: still)."""

    agent: str
    presence: str  # ours: on_queue, available, away, ..., offline
    routing_status: str  # Genesys': OFF_QUEUE, IDLE, INTERACTING, NOT_RESPONDING
    start: datetime
    end: datetime | None
    event_id: int  # the event that began it

    @property
    def system_presence(self) -> str:
        """The Genesys-style system presence name (ON_QUEUE, AVAILABLE, AWAY, ...)."""
        return self.presence.upper()


def status_of(e: EventRecord) -> tuple[str, str, str] | None:
    """(agent, presence, routing status) of a `presence_changed` record, else None."""
    if e.kind != KIND:
        return None
    data = e.data or {}
    agent, presence, status = data.get("agent"), data.get("presence"), data.get("routing_status")
    if not (isinstance(agent, str) and isinstance(presence, str) and isinstance(status, str)):
        return None
    return agent, presence, status


def advance(
    current: StatusSegment | None, e: EventRecord
) -> tuple[StatusSegment | None, StatusSegment | None]:
    """The agent's open segment after `e` (a record of that agent, in id order):
    (the segment `e` closed or None, the open segment). A record repeating the
    current state changes nothing."""
    found = status_of(e)
    if found is None:
        return None, current
    agent, presence, status = found
    if current is not None and (current.presence, current.routing_status) == (presence, status):
        return None, current
    opened = StatusSegment(agent, presence, status, e.at, None, e.id)
    if current is None:
        return None, opened
    closed = StatusSegment(
        current.agent, current.presence, current.routing_status, current.start,
        max(current.start, e.at), current.event_id,
    )  # fmt: skip
    return closed, opened


def segments(records: Iterable[EventRecord]) -> list[StatusSegment]:
    """Every agent's status segments from the records (in id order), each agent's in
    time order, the last one of each agent open."""
    out: list[StatusSegment] = []
    current: dict[str, StatusSegment] = {}
    for e in records:
        found = status_of(e)
        if found is None:
            continue
        closed, opened = advance(current.get(found[0]), e)
        if closed is not None:
            out.append(closed)
        if opened is not None:
            current[found[0]] = opened
    out.extend(current.values())
    return sorted(out, key=lambda s: (s.agent, s.start, s.event_id))


# -- aggregation ------------------------------------------------------------------------


def _iso(t: datetime, tz: ZoneInfo) -> str:
    return t.astimezone(tz).isoformat(timespec="seconds")


def aggregate(
    segs: Iterable[StatusSegment],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    metrics: Sequence[str] = USER_METRICS,
    granularity: str | None = None,
    tz: ZoneInfo | None = None,
    group_by: Sequence[str] = ("userId",),
) -> list[dict[str, Any]]:
    """Genesys-shaped user aggregates: [{"group": {...}, "data": [{"interval", "metrics":
    [{"metric", "qualifier", "stats": {"sum": ms, "count"}}]}]}].

    Each segment is clipped to [start, end) and to `now` (an open one ends there), and
    split at every interval edge; `count` is the number of pieces in the interval."""
    tz = tz or ZoneInfo("UTC")
    edges = boundaries(start, end, granularity, tz)
    wanted = [m for m in USER_METRICS if m in metrics]
    limit = min(end, now)
    acc: dict[tuple[str, ...], dict[int, dict[tuple[str, str], list[float]]]] = {}
    for s in segs:
        lo = max(s.start, start)
        hi = min(s.end if s.end is not None else limit, limit)
        if hi <= lo:
            continue
        values = {
            "userId": s.agent, "presence": s.system_presence, "routingStatus": s.routing_status,
        }  # fmt: skip
        gkey = tuple(values[g] for g in group_by)
        quals = {"tAgentRoutingStatus": s.routing_status, "tSystemPresence": s.system_presence}
        idx = bisect.bisect_right(edges, lo) - 1
        while idx < len(edges) - 1 and edges[idx] < hi:
            piece = (min(hi, edges[idx + 1]) - max(lo, edges[idx])).total_seconds()
            cell = acc.setdefault(gkey, {}).setdefault(idx, {})
            for m in wanted:
                st = cell.setdefault((m, quals[m]), [0.0, 0])
                st[0] += piece
                st[1] += 1
            idx += 1
    results = []
    for gkey in sorted(acc):
        data = []
        for idx in sorted(acc[gkey]):
            cell = acc[gkey][idx]
            ms = [
                {"metric": m, "qualifier": q,
                 "stats": {"sum": round(cell[(m, q)][0] * 1000.0, 3),
                           "count": int(cell[(m, q)][1])}}
                for m, q in sorted(cell, key=lambda mq: (wanted.index(mq[0]), mq[1]))
            ]  # fmt: skip
            data.append({"interval": f"{_iso(edges[idx], tz)}/{_iso(edges[idx + 1], tz)}",
                         "metrics": ms})  # fmt: skip
        results.append({"group": dict(zip(group_by, gkey, strict=True)), "data": data})
    return results

"""Live queue observations, read from the current tables (not the projection).

The job: `queue_observations` gives, per queue, what is happening now in
Genesys' names — oWaiting, oAlerting, oInteracting, oLongestWaiting,
oOnQueueUsers, oOffQueueUsers and oUserRoutingStatuses — from `conversations`
(state, queue, enqueued_at; the state column is indexed) and `agents`
(presence, routing status and queue memberships). The observations query and
`GET /metrics` share it. docs/analytics.md defines each observation.

What it must not do: write anything, or know HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from postroom.store.db import as_utc
from postroom.store.schema import agents, conversations

OBSERVATION_METRICS = (
    "oWaiting", "oAlerting", "oInteracting", "oLongestWaiting", "oOnQueueUsers",
    "oOffQueueUsers", "oUserRoutingStatuses",
)  # fmt: skip
ROUTING_STATUS_NAMES = {
    "off_queue": "OFF_QUEUE",
    "idle": "IDLE",
    "interacting": "INTERACTING",
    "not_responding": "NOT_RESPONDING",
}


@dataclass(frozen=True, slots=True)
class QueueObservation:
    queue: str
    waiting: int = 0  # queued, not offered
    alerting: int = 0  # offered to an agent, not yet accepted
    interacting: int = 0  # connected to an agent (wrap-up and parked not included)
    longest_waiting_s: float | None = None  # the oldest of queued and alerting, since entering
    waiting_counted: int = 0  # conversations the longest wait was taken over
    on_queue_users: int = 0  # members with presence on_queue
    off_queue_users: int = 0  # members signed in (not offline) but not on queue
    routing_statuses: dict[str, int] = field(default_factory=dict)  # Genesys name -> members

    def as_json(self, metrics: Sequence[str] = OBSERVATION_METRICS) -> dict[str, object]:
        data: list[dict[str, object]] = []
        for m in metrics:
            if m == "oWaiting":
                data.append({"metric": m, "stats": {"count": self.waiting}})
            elif m == "oAlerting":
                data.append({"metric": m, "stats": {"count": self.alerting}})
            elif m == "oInteracting":
                data.append({"metric": m, "stats": {"count": self.interacting}})
            elif m == "oLongestWaiting":
                stats: dict[str, object] = {"count": self.waiting_counted}
                if self.longest_waiting_s is not None:
                    stats["calculatedMetricValue"] = round(self.longest_waiting_s * 1000.0, 3)
                data.append({"metric": m, "stats": stats})
            elif m == "oOnQueueUsers":
                data.append({"metric": m, "stats": {"count": self.on_queue_users}})
            elif m == "oOffQueueUsers":
                data.append({"metric": m, "stats": {"count": self.off_queue_users}})
            elif m == "oUserRoutingStatuses":
                for name in ROUTING_STATUS_NAMES.values():
                    n = self.routing_statuses.get(name, 0)
                    data.append({"metric": m, "qualifier": name, "stats": {"count": n}})
        return {"group": {"queueId": self.queue}, "data": data}


def queue_observations(
    conn: sa.Connection, names: Sequence[str], now: datetime
) -> list[QueueObservation]:
    """The observations of each queue in `names` (in that order)."""
    c = conversations
    counts: dict[tuple[str, str], int] = {}
    for q, state, n in conn.execute(
        sa.select(c.c.queue, c.c.state, sa.func.count())
        .where(c.c.state.in_(("queued", "alerting", "connected")))
        .group_by(c.c.queue, c.c.state)
    ):
        counts[(str(q), str(state))] = int(n)
    oldest: dict[str, datetime | None] = {
        str(q): as_utc(t)
        for q, t in conn.execute(
            sa.select(c.c.queue, sa.func.min(c.c.enqueued_at))
            .where(c.c.state.in_(("queued", "alerting")))
            .group_by(c.c.queue)
        )
    }
    members = conn.execute(
        sa.select(agents.c.queues, agents.c.presence, agents.c.routing_status)
    ).all()
    out = []
    for name in names:
        on = off = 0
        statuses: dict[str, int] = {}
        for queues, presence, status in members:
            if name not in (queues or ()):
                continue
            if presence == "on_queue":
                on += 1
            elif presence != "offline":
                off += 1
            if presence != "offline":
                key = ROUTING_STATUS_NAMES.get(str(status), str(status).upper())
                statuses[key] = statuses.get(key, 0) + 1
        first = oldest.get(name)
        waiting, alerting = counts.get((name, "queued"), 0), counts.get((name, "alerting"), 0)
        out.append(
            QueueObservation(
                queue=name,
                waiting=waiting,
                alerting=alerting,
                interacting=counts.get((name, "connected"), 0),
                longest_waiting_s=max(0.0, (now - first).total_seconds()) if first else None,
                waiting_counted=waiting + alerting,
                on_queue_users=on,
                off_queue_users=off,
                routing_statuses=statuses,
            )
        )
    return out

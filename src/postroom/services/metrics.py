"""The figures `GET /metrics` reports, read from the database at scrape time.

The job: `read_figures` gathers in one read transaction, with indexed counts
only, what Prometheus scrapes: the live observations of each queue
(services/analytics/observations.py), messages by status (intake and the
pipeline, quarantine included), the outbox by status, events by kind (the
router's decisions among them), the age of the oldest message waiting for the
pipeline and of the oldest overdue outbound message, the pipeline latency of
the latest messages (received → processed), and how far the analytics
projector lags behind `events`.

What it must not do: write anything, know HTTP or the Prometheus format (web/metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from postroom.services.analytics.observations import QueueObservation, queue_observations
from postroom.store.db import as_utc
from postroom.store.schema import analytics_checkpoint, events, messages, outbox

LATENCY_SAMPLE = 200  # the latest processed messages the pipeline latency is taken over


@dataclass(frozen=True, slots=True)
class Figures:
    queues: list[QueueObservation]
    messages: dict[str, int]  # status -> rows
    outbox: dict[str, int]  # status -> rows
    events: dict[str, int]  # kind -> rows
    oldest_pending_s: float | None  # a message waiting for the pipeline
    oldest_overdue_outbound_s: float | None  # a queued outbound message past its attempt time
    pipeline_latency_s: list[float]  # received -> processed, the latest messages, sorted
    analytics_lag_events: int  # events not yet projected


def _age(now: datetime, t: datetime | None) -> float | None:
    at = as_utc(t)
    return None if at is None else max(0.0, (now - at).total_seconds())


def read_figures(conn: sa.Connection, queue_names: Sequence[str], now: datetime) -> Figures:
    def by(col: sa.ColumnElement[str], table: sa.Table) -> dict[str, int]:
        query = sa.select(col, sa.func.count()).select_from(table).group_by(col)
        return {str(k): int(n) for k, n in conn.execute(query)}

    oldest_pending = conn.execute(
        sa.select(sa.func.min(messages.c.received_at)).where(messages.c.status == "pending")
    ).scalar()
    overdue = conn.execute(
        sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
            outbox.c.status == "queued", outbox.c.next_attempt_at <= now
        )
    ).scalar()
    # The pipeline writes `message_received` when it has processed a message: the
    # latest ones (by the kind index) against their received_at.
    latest = (
        sa.select(events.c.message_id, events.c.at)
        .where(events.c.kind == "message_received", events.c.message_id.is_not(None))
        .order_by(events.c.id.desc())
        .limit(LATENCY_SAMPLE)
        .subquery()
    )
    latency = sorted(
        max(0.0, (done - got).total_seconds())
        for done, got in (
            (as_utc(a), as_utc(r))
            for a, r in conn.execute(
                sa.select(latest.c.at, messages.c.received_at).join(
                    messages, messages.c.id == latest.c.message_id
                )
            )
        )
        if done is not None and got is not None
    )
    high = int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)
    projected = conn.execute(
        sa.select(analytics_checkpoint.c.last_event_id).where(analytics_checkpoint.c.id == 1)
    ).scalar()
    return Figures(
        queues=queue_observations(conn, queue_names, now),
        messages=by(messages.c.status, messages),
        outbox=by(outbox.c.status, outbox),
        events=by(events.c.kind, events),
        oldest_pending_s=_age(now, oldest_pending),
        oldest_overdue_outbound_s=_age(now, overdue),
        pipeline_latency_s=latency,
        analytics_lag_events=max(0, high - int(projected or 0)),
    )

"""`GET /metrics`: Postroom's figures in the Prometheus text format.

Translation only: a custom prometheus-client collector turns the figures that
services/metrics.py reads from the database at scrape time into metric
families (docs/operations.md "Metrics for Prometheus" lists them). Needs the
`read_metrics` permission (supervisors, admins, or an API token of theirs),
except from the addresses of `[web] metrics_allow`, which may scrape without
signing in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from postroom.domain import permissions
from postroom.domain.permissions import Permission
from postroom.services import metrics as svc
from postroom.services.analytics.observations import ROUTING_STATUS_NAMES
from postroom.web.deps import Ctx, authenticate, needs, refusal

router = APIRouter(tags=["status"])

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allow_list(values: Iterable[str]) -> tuple[Network, ...]:
    """The networks of `[web] metrics_allow`; raises ValueError naming a bad entry."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"[web] metrics_allow: {v!r} is not an address or network "
                "(e.g. 127.0.0.1 or 10.0.0.0/8)"
            ) from None
    return tuple(out)


def _allowed(host: str | None, nets: Sequence[Network]) -> bool:
    if not host or not nets:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in n for n in nets)


class PostroomCollector(Collector):
    """Reads the database on every collect (one scrape, one read transaction)."""

    def __init__(
        self,
        db: sa.Engine,
        clock: Callable[[], datetime],
        queue_names: Callable[[], Sequence[str]],
    ) -> None:
        self.db = db
        self.clock = clock
        self.queue_names = queue_names

    def collect(self) -> Iterator[Metric]:
        with self.db.connect() as conn:
            f = svc.read_figures(conn, self.queue_names(), self.clock())
        yield from _families(f)


def _families(f: svc.Figures) -> Iterator[Metric]:
    q = ["queue"]
    gauges = {
        "waiting": ("conversations waiting in the queue, not offered (oWaiting)", "waiting"),
        "alerting": ("conversations offered to an agent, not accepted yet (oAlerting)",
                     "alerting"),
        "interacting": ("conversations connected to an agent (oInteracting)", "interacting"),
        "on_queue_users": ("members on queue (oOnQueueUsers)", "on_queue_users"),
        "off_queue_users": ("members signed in but not on queue (oOffQueueUsers)",
                            "off_queue_users"),
    }  # fmt: skip
    for name, (doc, attr) in gauges.items():
        g = GaugeMetricFamily(f"postroom_queue_{name}", doc, labels=q)
        for o in f.queues:
            g.add_metric([o.queue], float(getattr(o, attr)))
        yield g
    g = GaugeMetricFamily(
        "postroom_queue_longest_waiting_seconds",
        "the longest wait now among queued and alerting conversations (oLongestWaiting)",
        labels=q,
    )
    for o in f.queues:
        g.add_metric([o.queue], o.longest_waiting_s or 0.0)
    yield g
    g = GaugeMetricFamily(
        "postroom_queue_users",
        "members signed in, by routing status (oUserRoutingStatuses)",
        labels=["queue", "routing_status"],
    )
    for o in f.queues:
        for status in ROUTING_STATUS_NAMES.values():
            g.add_metric([o.queue, status], float(o.routing_statuses.get(status, 0)))
    yield g
    g = GaugeMetricFamily(
        "postroom_messages", "messages by status (intake and the pipeline)", labels=["status"]
    )
    for status, n in sorted(f.messages.items()):
        g.add_metric([status], float(n))
    yield g
    g = GaugeMetricFamily("postroom_messages_quarantined", "messages held in quarantine")
    g.add_metric([], float(f.messages.get("quarantined", 0)))
    yield g
    g = GaugeMetricFamily("postroom_outbox", "outbound messages by status", labels=["status"])
    for status, n in sorted(f.outbox.items()):
        g.add_metric([status], float(n))
    yield g
    c = CounterMetricFamily(
        "postroom_events", "events written, by kind (the router's decisions among them)",
        labels=["kind"],
    )  # fmt: skip
    for kind, n in sorted(f.events.items()):
        c.add_metric([kind], float(n))
    yield c
    g = GaugeMetricFamily(
        "postroom_pipeline_oldest_pending_seconds",
        "age of the oldest message waiting for the pipeline (0: none)",
    )
    g.add_metric([], f.oldest_pending_s or 0.0)
    yield g
    g = GaugeMetricFamily(
        "postroom_outbox_oldest_overdue_seconds",
        "how long the most overdue queued outbound message is past its attempt time (0: none)",
    )
    g.add_metric([], f.oldest_overdue_outbound_s or 0.0)
    yield g
    g = GaugeMetricFamily(
        "postroom_pipeline_latency_seconds",
        f"received to processed, over the latest {svc.LATENCY_SAMPLE} messages",
        labels=["quantile"],
    )
    lat = f.pipeline_latency_s
    for label, qv in (("0.5", 0.5), ("0.9", 0.9), ("1", 1.0)):
        g.add_metric([label], lat[min(len(lat) - 1, int(qv * len(lat)))] if lat else 0.0)
    yield g
    g = GaugeMetricFamily(
        "postroom_analytics_lag_events", "events the analytics projector has not projected yet"
    )
    g.add_metric([], float(f.analytics_lag_events))
    yield g


def registry_for(ctx: Ctx) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        PostroomCollector(ctx.db, ctx.clock, lambda: [q.name for q in ctx.configured.queues])
    )
    return registry


@router.get("/metrics", openapi_extra=needs(Permission.READ_METRICS), response_class=Response)
async def metrics(request: Request, ctx: Ctx) -> Response:
    """Prometheus text format (docs/operations.md lists the metrics). Needs the
    `read_metrics` permission, or a caller address in `[web] metrics_allow`."""
    host = request.client.host if request.client else None
    if not _allowed(host, allow_list(ctx.config.metrics_allow)):
        principal = await authenticate(request, ctx)
        if not permissions.allows(principal.user.role, Permission.READ_METRICS):
            raise refusal(Permission.READ_METRICS)
    registry = registry_for(ctx)
    body = await anyio.to_thread.run_sync(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

"""Analytics use cases: the projector from `events` (projector.py) and the queries over
what it keeps (queries.py; series.py for the dashboard's charts). This package's
public API is re-exported here."""

from postroom.services.analytics.projector import (
    AnalyticsProjector,
    ProjectorConfig,
    Sink,
    record,
)
from postroom.services.analytics.queries import (
    Filter,
    Predicate,
    aggregates,
    details,
    iter_details,
    service_level_waits,
    targets_of,
)
from postroom.services.analytics.series import (
    BUCKETS,
    backlog,
    buckets_json,
    wait_distribution,
)

__all__ = [
    "BUCKETS",
    "AnalyticsProjector",
    "Filter",
    "Predicate",
    "ProjectorConfig",
    "Sink",
    "aggregates",
    "backlog",
    "buckets_json",
    "details",
    "iter_details",
    "record",
    "service_level_waits",
    "targets_of",
    "wait_distribution",
]

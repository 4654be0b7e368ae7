"""Analytics use cases: the projector from `events` (projector.py) and the queries over
what it keeps (queries.py). This package's public API is re-exported here."""

from postroom.services.analytics.projector import (
    AnalyticsProjector,
    ProjectorConfig,
    Sink,
    record,
)
from postroom.services.analytics.queries import (
    MAX_HITS,
    Filter,
    Predicate,
    aggregates,
    details,
    iter_details,
    service_level_waits,
    targets_of,
)

__all__ = [
    "MAX_HITS",
    "AnalyticsProjector",
    "Filter",
    "Predicate",
    "ProjectorConfig",
    "Sink",
    "aggregates",
    "details",
    "iter_details",
    "record",
    "service_level_waits",
    "targets_of",
]

"""Analytics use cases: the projector from `events` (projector.py) with its sinks (agents'
status, users.py; conversation tags, tags.py), the queries over what they keep
(queries.py; series.py for the dashboard's charts) and the live queue observations
(observations.py). This package's public API is re-exported here."""

from postroom.services.analytics.observations import (
    OBSERVATION_METRICS,
    QueueObservation,
    queue_observations,
)
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
from postroom.services.analytics.series import (
    BUCKETS,
    backlog,
    buckets_json,
    wait_distribution,
)
from postroom.services.analytics.tags import TagSink
from postroom.services.analytics.users import UserStatusSink, user_aggregates, user_segments


def standard_sinks() -> tuple[Sink, ...]:
    """The projections that ride on the projector's pass (the worker and the rebuild
    command use the same, so a rebuild gives what the worker keeps)."""
    return (UserStatusSink(), TagSink())


__all__ = [
    "BUCKETS",
    "MAX_HITS",
    "OBSERVATION_METRICS",
    "AnalyticsProjector",
    "Filter",
    "Predicate",
    "ProjectorConfig",
    "QueueObservation",
    "Sink",
    "TagSink",
    "UserStatusSink",
    "aggregates",
    "backlog",
    "buckets_json",
    "details",
    "iter_details",
    "queue_observations",
    "record",
    "service_level_waits",
    "standard_sinks",
    "targets_of",
    "user_aggregates",
    "user_segments",
    "wait_distribution",
]

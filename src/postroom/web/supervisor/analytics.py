"""Analytics over HTTP: `POST /api/v1/analytics/conversations/aggregates/query` and
`.../details/query`, `.../users/aggregates/query` (agents' time in each status),
`.../queues/observations/query` (live), and the dashboard's series
`.../queues/waits/distribution/query` and `.../queues/backlog/query`, as JSON or
streamed CSV (`Accept: text/csv` or `?format=csv`).

Translation only: the request shapes (Genesys' where it fits) are validated here,
each refusal naming its field (422); the figures come from services/analytics/queries.py
and series.py.
Needs the `see_all_work` permission (supervisors and administrators).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, available_timezones

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from postroom.analytics import metrics as am
from postroom.services import analytics as svc
from postroom.web.deps import CanSeeAllWork, Ctx

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

MAX_SPAN = timedelta(days=400)
MAX_INTERVALS = 5000
STEP = {"PT15M": 900, "PT30M": 1800, "PT1H": 3600, "P1D": 86400, "P7D": 604800,
        "P1W": 604800, "P1M": 28 * 86400}  # fmt: skip
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")

Metric = Literal[
    "nOffered", "nConnected", "nTransferred", "nOverSla", "nOutbound", "tWait", "tAcd",
    "tAnswered", "tAbandon", "tAlert", "tNotResponding", "tHandle", "tAcw", "tPark",
    "tAgentResponseTime", "tFirstResponse", "oServiceLevel", "oServiceTarget",
]  # fmt: skip
Dimension = Literal["queueId", "userId", "addressTo", "wrapUpCode", "direction", "tag"]
UserMetric = Literal["tAgentRoutingStatus", "tSystemPresence"]
UserDimension = Literal["userId", "presence", "routingStatus"]
ObservationMetric = Literal[
    "oWaiting", "oAlerting", "oInteracting", "oLongestWaiting", "oOnQueueUsers",
    "oOffQueueUsers", "oUserRoutingStatuses",
]  # fmt: skip
MIN_YEAR, MAX_YEAR = 1900, 9000
Granularity = Literal["PT15M", "PT30M", "PT1H", "P1D", "P7D", "P1W", "P1M"]


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


class PredicateIn(BaseModel):
    type: Literal["dimension"] = "dimension"
    dimension: Dimension
    operator: Literal["matches"] = "matches"
    value: str = Field(max_length=320)


class DetailPredicateIn(PredicateIn):
    dimension: Dimension | Literal["outcome"]  # type: ignore[assignment]


class FilterIn(BaseModel):
    type: Literal["and", "or"] = "and"
    predicates: list[PredicateIn] = Field(default_factory=list, max_length=20)

    def to_service(self) -> svc.Filter:
        return svc.Filter(
            self.type, tuple(svc.Predicate(p.dimension, p.value) for p in self.predicates)
        )


class DetailFilterIn(FilterIn):
    predicates: list[DetailPredicateIn] = Field(default_factory=list, max_length=20)  # type: ignore[assignment]


class _Query(BaseModel):
    interval: str = Field(
        max_length=100,
        description='"start/end", ISO 8601 with offsets, e.g. '
        '"2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00"; at most 400 days',
    )
    timeZone: str = Field(default="UTC", max_length=64, description="an IANA time zone name")

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        parts = v.split("/")
        if len(parts) != 2:
            raise ValueError('the interval is "start/end" in ISO 8601')
        try:
            start, end = (datetime.fromisoformat(p) for p in parts)
        except ValueError:
            raise ValueError('the interval is "start/end" in ISO 8601, e.g. '
                             '"2026-03-29T00:00:00Z/2026-03-30T00:00:00Z"') from None  # fmt: skip
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("the interval's start and end need a UTC offset (Z or +01:00)")
        if not all(MIN_YEAR <= t.year <= MAX_YEAR for t in (start, end)):
            # (far years overflow local-time arithmetic in the time zones)
            raise ValueError(f"the interval's years must be from {MIN_YEAR} to {MAX_YEAR}")
        if end <= start:
            raise ValueError("the interval's end must come after its start")
        if end - start > MAX_SPAN:
            raise ValueError("the interval may span at most 400 days")
        return v

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, v: str) -> str:
        if not _ZONE_NAME.match(v) or v not in _zones():
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like Europe/Paris")
        return v

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.interval.split("/")[0])

    @property
    def end(self) -> datetime:
        return datetime.fromisoformat(self.interval.split("/")[1])

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timeZone)


def _few_intervals(start: datetime, end: datetime, granularity: str | None) -> None:
    if granularity is not None:
        n = (end - start).total_seconds() / STEP[granularity]
        if n > MAX_INTERVALS:
            raise ValueError(
                f"granularity: at most {MAX_INTERVALS} intervals; choose a longer "
                "granularity or a shorter interval"
            )


class AggregateQuery(_Query):
    granularity: Granularity | None = Field(
        default=None, description="interval length; none: one interval for the whole range"
    )
    groupBy: list[Dimension] = Field(default_factory=list, max_length=3)
    filter: FilterIn | None = None
    metrics: list[Metric] = Field(min_length=1, max_length=len(am.METRICS))

    @model_validator(mode="after")
    def _few_enough(self) -> AggregateQuery:
        _few_intervals(self.start, self.end, self.granularity)
        return self


class QueuePredicateIn(PredicateIn):
    dimension: Literal["queueId"]


class QueueAgentPredicateIn(PredicateIn):
    dimension: Literal["queueId", "userId"]


class WaitFilterIn(BaseModel):
    """A wait is kept when its queue is one of the queueId values (none given: any) and
    the agent who answered it one of the userId values (none given: any)."""

    type: Literal["and"] = "and"
    predicates: list[QueueAgentPredicateIn] = Field(default_factory=list, max_length=20)

    def values(self, dimension: str) -> list[str]:
        return [p.value for p in self.predicates if p.dimension == dimension]


class BacklogFilterIn(WaitFilterIn):
    predicates: list[QueuePredicateIn] = Field(default_factory=list, max_length=20)  # type: ignore[assignment]


class WaitDistributionQuery(_Query):
    filter: WaitFilterIn | None = None


class BacklogQuery(_Query):
    granularity: Granularity | None = Field(
        default="PT1H", description="the step between counts; none: the start (and now)"
    )
    filter: BacklogFilterIn | None = None

    @model_validator(mode="after")
    def _few_enough(self) -> BacklogQuery:
        _few_intervals(self.start, self.end, self.granularity)
        return self


class UserPredicateIn(BaseModel):
    type: Literal["dimension"] = "dimension"
    dimension: Literal["userId"]
    operator: Literal["matches"] = "matches"
    value: str = Field(max_length=200)


class UserFilterIn(BaseModel):
    type: Literal["or"] | Literal["and"] = "or"
    predicates: list[UserPredicateIn] = Field(default_factory=list, max_length=100)

    def agents(self) -> list[str] | None:
        """The agents to include (all: an empty list); None when the filter matches
        nobody (an "and" of two different agents)."""
        values = sorted({p.value for p in self.predicates})
        if self.type == "and" and len(values) > 1:
            return None
        return values


def _by_user() -> list[UserDimension]:
    return ["userId"]


def _user_metrics() -> list[UserMetric]:
    return ["tAgentRoutingStatus", "tSystemPresence"]


class UserAggregateQuery(_Query):
    granularity: Granularity | None = Field(
        default=None, description="interval length; none: one interval for the whole range"
    )
    groupBy: list[UserDimension] = Field(default_factory=_by_user, max_length=3)
    filter: UserFilterIn | None = None
    metrics: list[UserMetric] = Field(default_factory=_user_metrics, min_length=1, max_length=2)

    @model_validator(mode="after")
    def _few_enough(self) -> UserAggregateQuery:
        if self.granularity is not None:
            n = (self.end - self.start).total_seconds() / STEP[self.granularity]
            if n > MAX_INTERVALS:
                raise ValueError(
                    f"granularity: at most {MAX_INTERVALS} intervals; choose a longer "
                    "granularity or a shorter interval"
                )
        return self


class ObservedQueuePredicateIn(BaseModel):
    type: Literal["dimension"] = "dimension"
    dimension: Literal["queueId"]
    operator: Literal["matches"] = "matches"
    value: str = Field(max_length=200)


class QueueFilterIn(BaseModel):
    type: Literal["or"] = "or"
    predicates: list[ObservedQueuePredicateIn] = Field(default_factory=list, max_length=100)


class ObservationQuery(BaseModel):
    filter: QueueFilterIn | None = None
    metrics: list[ObservationMetric] | None = Field(default=None, min_length=1, max_length=7)


class Paging(BaseModel):
    pageSize: int = Field(default=25, ge=1, le=100)
    pageNumber: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _within_the_hits(self) -> Paging:
        if self.pageSize * self.pageNumber > svc.MAX_HITS:
            raise ValueError(
                f"pages reach the first {svc.MAX_HITS} conversations; narrow the interval "
                "or the filter (or use CSV, which lists every one)"
            )
        return self


class DetailsQuery(_Query):
    filter: DetailFilterIn | None = None
    paging: Paging = Field(default_factory=Paging)


Format = Annotated[Literal["json", "csv"] | None, Query(description="csv: the same as CSV")]


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _cell(v: Any) -> Any:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: quote it.
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def _csv(header: list[str], rows: Iterator[list[Any]], name: str) -> StreamingResponse:
    def body() -> Iterator[str]:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        for row in rows:
            w.writerow([_cell(v) for v in row])
            if buf.tell() > 16384:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# `qualifier`: the service-level target's name (oServiceLevel, oServiceTarget), else empty.
STAT_COLUMNS = ["count", "sum", "min", "max", "p50", "p90", "ratio", "numerator",
                "denominator", "target"]  # fmt: skip


@router.post("/conversations/aggregates/query")
async def aggregates_query(
    body: AggregateQuery, request: Request, ctx: Ctx, _user: CanSeeAllWork, format: Format = None
) -> Any:
    """Metrics per interval and group (docs/analytics.md). Durations in milliseconds."""
    targets = svc.targets_of(ctx.configured.queues, ctx.configured.calendars)
    results = await anyio.to_thread.run_sync(
        lambda: svc.aggregates(
            ctx.db,
            body.start,
            body.end,
            metrics=body.metrics,
            granularity=body.granularity,
            tz=body.zone,
            group_by=body.groupBy,
            filter=body.filter.to_service() if body.filter else None,
            targets=targets,
        )
    )
    if not _wants_csv(request, format):
        return {"results": results}

    def rows() -> Iterator[list[Any]]:
        for r in results:
            group = [r["group"].get(g) for g in body.groupBy]
            for d in r["data"]:
                for m in d["metrics"]:
                    st = m["stats"]
                    yield [d["interval"], *group, m["metric"], m.get("qualifier"),
                           *(st.get(c) for c in STAT_COLUMNS)]  # fmt: skip

    header = ["interval", *body.groupBy, "metric", "qualifier", *STAT_COLUMNS]
    return _csv(header, rows(), "aggregates")


USER_COLUMNS = ["interval", "userId", "metric", "qualifier", "count", "sum"]


@router.post("/users/aggregates/query")
async def users_aggregates_query(
    body: UserAggregateQuery,
    request: Request,
    ctx: Ctx,
    _user: CanSeeAllWork,
    format: Format = None,
) -> Any:
    """Agents' time in each routing status (`tAgentRoutingStatus`) and presence
    (`tSystemPresence`) per interval, in milliseconds, the status as the qualifier
    (docs/analytics.md). A status still going on counts until now."""
    agents = body.filter.agents() if body.filter else []
    now = ctx.clock()
    results: list[dict[str, Any]] = []
    if agents is not None:
        results = await anyio.to_thread.run_sync(
            lambda: svc.user_aggregates(
                ctx.db,
                body.start,
                body.end,
                now=now,
                metrics=body.metrics,
                granularity=body.granularity,
                tz=body.zone,
                group_by=body.groupBy,
                agents=agents,
            )
        )
    if not _wants_csv(request, format):
        return {"results": results}
    extra = [g for g in body.groupBy if g != "userId"]

    def rows() -> Iterator[list[Any]]:
        for r in results:
            g = r["group"]
            for d in r["data"]:
                for m in d["metrics"]:
                    st = m["stats"]
                    yield [d["interval"], g.get("userId"), *(g.get(x) for x in extra),
                           m["metric"], m["qualifier"], st["count"], st["sum"]]  # fmt: skip

    header = ["interval", "userId", *extra, "metric", "qualifier", "count", "sum"]
    return _csv(header, rows(), "users")


OBSERVATION_COLUMNS = ["queueId", "metric", "qualifier", "count", "calculatedMetricValue"]


@router.post("/queues/observations/query")
async def queue_observations_query(
    request: Request,
    ctx: Ctx,
    _user: CanSeeAllWork,
    body: ObservationQuery | None = None,
    format: Format = None,
) -> Any:
    """What is happening now in each queue (oWaiting, oAlerting, oInteracting,
    oLongestWaiting in milliseconds, oOnQueueUsers, oOffQueueUsers, members by routing
    status), from the live tables. Every configured queue unless filtered; the body
    may be left out."""
    body = body or ObservationQuery()
    configured = [q.name for q in ctx.configured.queues]
    if body.filter and body.filter.predicates:
        wanted = {p.value for p in body.filter.predicates}
        names = [q for q in configured if q in wanted]
    else:
        names = configured
    metrics = list(body.metrics or svc.OBSERVATION_METRICS)
    now = ctx.clock()

    def read() -> list[dict[str, Any]]:
        with ctx.db.connect() as conn:
            return [o.as_json(metrics) for o in svc.queue_observations(conn, names, now)]

    results = await anyio.to_thread.run_sync(read)
    if not _wants_csv(request, format):
        return {"results": results}

    def rows() -> Iterator[list[Any]]:
        for r in results:
            for m in r["data"]:
                st = m["stats"]
                yield [r["group"]["queueId"], m["metric"], m.get("qualifier"), st.get("count"),
                       st.get("calculatedMetricValue")]  # fmt: skip

    return _csv(OBSERVATION_COLUMNS, rows(), "observations")


DETAIL_COLUMNS = ["conversationId", "messageId", "start", "end", "direction", "addressTo",
                  "outcome", "wrapUpCode", "queues", "agents", "messagesIn", "messagesOut",
                  "transfers"]  # fmt: skip


@router.post("/conversations/details/query")
async def details_query(
    body: DetailsQuery, request: Request, ctx: Ctx, _user: CanSeeAllWork, format: Format = None
) -> Any:
    """Conversations that started in the interval, oldest first, a page at a time; as CSV,
    every matching conversation (no paging)."""
    flt = body.filter.to_service() if body.filter else None
    if not _wants_csv(request, format):
        total, capped, page = await anyio.to_thread.run_sync(
            lambda: svc.details(
                ctx.db,
                body.start,
                body.end,
                filter=flt,
                page_size=body.paging.pageSize,
                page_number=body.paging.pageNumber,
            )
        )
        return {"totalHits": total, "totalHitsCapped": capped, "conversations": page}

    def rows() -> Iterator[list[Any]]:
        for d in svc.iter_details(ctx.db, body.start, body.end, filter=flt):
            yield [";".join(d[c]) if c in ("queues", "agents") else d.get(c)
                   for c in DETAIL_COLUMNS]  # fmt: skip

    return _csv(DETAIL_COLUMNS, rows(), "details")


@router.post("/queues/waits/distribution/query")
async def wait_distribution_query(
    body: WaitDistributionQuery,
    request: Request,
    ctx: Ctx,
    _user: CanSeeAllWork,
    format: Format = None,
) -> Any:
    """Answered waits in the interval per queue, counted in fixed buckets of wait
    length (docs/analytics.md, "Dashboard series")."""
    flt = body.filter or WaitFilterIn()
    names = ctx.configured.queue_names
    results = await anyio.to_thread.run_sync(
        lambda: svc.wait_distribution(
            ctx.db,
            body.start,
            body.end,
            queues=flt.values("queueId"),
            agents=flt.values("userId"),
            names=names,
        )
    )
    buckets = svc.buckets_json()
    if not _wants_csv(request, format):
        return {"interval": body.interval, "buckets": buckets, "results": results}

    def rows() -> Iterator[list[Any]]:
        for r in results:
            for b, n in zip(buckets, r["counts"], strict=True):
                yield [r["group"]["queueId"], b["label"], b["fromMs"], b["toMs"], n]

    return _csv(["queueId", "bucket", "fromMs", "toMs", "count"], rows(), "wait-distribution")


@router.post("/queues/backlog/query")
async def backlog_query(
    body: BacklogQuery, request: Request, ctx: Ctx, _user: CanSeeAllWork, format: Format = None
) -> Any:
    """Conversations waiting in each queue at every interval boundary of the range that
    is not in the future, and now (docs/analytics.md, "Dashboard series")."""
    flt = body.filter or BacklogFilterIn()
    names = ctx.configured.queue_names
    now = ctx.clock()
    results = await anyio.to_thread.run_sync(
        lambda: svc.backlog(
            ctx.db,
            body.start,
            body.end,
            granularity=body.granularity,
            tz=body.zone,
            now=now,
            queues=flt.values("queueId"),
            names=names,
        )
    )
    if not _wants_csv(request, format):
        return {"interval": body.interval, "results": results}

    def rows() -> Iterator[list[Any]]:
        for r in results:
            for d in r["data"]:
                yield [d["at"], r["group"]["queueId"], d["waiting"]]

    return _csv(["at", "queueId", "waiting"], rows(), "backlog")

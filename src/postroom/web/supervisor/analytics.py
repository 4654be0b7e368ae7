"""Analytics over HTTP: `POST /api/v1/analytics/conversations/aggregates/query` and
`.../details/query`, as JSON or streamed CSV (`Accept: text/csv` or `?format=csv`).

Translation only: the request shapes (Genesys' where it fits) are validated here,
each refusal naming its field (422); the figures come from services/analytics/queries.py.
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
Dimension = Literal["queueId", "userId", "addressTo", "wrapUpCode", "direction"]
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


class AggregateQuery(_Query):
    granularity: Granularity | None = Field(
        default=None, description="interval length; none: one interval for the whole range"
    )
    groupBy: list[Dimension] = Field(default_factory=list, max_length=3)
    filter: FilterIn | None = None
    metrics: list[Metric] = Field(min_length=1, max_length=len(am.METRICS))

    @model_validator(mode="after")
    def _few_enough(self) -> AggregateQuery:
        if self.granularity is not None:
            n = (self.end - self.start).total_seconds() / STEP[self.granularity]
            if n > MAX_INTERVALS:
                raise ValueError(
                    f"granularity: at most {MAX_INTERVALS} intervals; choose a longer "
                    "granularity or a shorter interval"
                )
        return self


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


STAT_COLUMNS = ["count", "sum", "min", "max", "p50", "p90", "ratio", "numerator",
                "denominator", "target"]  # fmt: skip


@router.post("/conversations/aggregates/query")
async def aggregates_query(
    body: AggregateQuery, request: Request, ctx: Ctx, _user: CanSeeAllWork, format: Format = None
) -> Any:
    """Metrics per interval and group (docs/analytics.md). Durations in milliseconds."""
    targets = svc.targets_of(ctx.configured.queues)
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
                    yield [d["interval"], *group, m["metric"], *(st.get(c) for c in STAT_COLUMNS)]

    return _csv(["interval", *body.groupBy, "metric", *STAT_COLUMNS], rows(), "aggregates")


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

"""The dashboard's series on SQLite and PostgreSQL: the wait distribution and the
backlog equal their definitions computed from the replayed events of a random
history (any granularity and time zone), and the API answers them as JSON and CSV
over conversations the real router handled, refuses hostile input naming the field,
and only for supervisors and admins."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from postroom.analytics import metrics as am
from postroom.analytics.details import replay
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import open_store, utc_now
from postroom.services.analytics import AnalyticsProjector, backlog, wait_distribution
from postroom.services.analytics.series import BUCKETS, backlog_edges, bucket_of, waiting_at
from tests.integration import test_api_fixtures as fx
from tests.integration.test_analytics_projector import _insert
from tests.integration.test_api_fixtures import Api
from tests.unit.analytics.generator import T0, history

api = fx.api  # the shared fixture

DIST = "/api/v1/analytics/queues/waits/distribution/query"
BACKLOG = "/api/v1/analytics/queues/backlog/query"


@pytest.fixture
def db(any_settings: Settings) -> Iterator[sa.Engine]:
    engine = open_store(any_settings, seed=False)
    yield engine
    engine.dispose()


def test_bucket_edges() -> None:
    assert [bucket_of(s) for s in (0, 59.9, 60, 299, 300, 899, 900, 3599, 3600)] == [
        0, 0, 1, 1, 2, 2, 3, 3, 4,
    ]  # fmt: skip
    assert [bucket_of(s) for s in (14399, 14400, 86399, 86400, 10**9)] == [4, 5, 5, 6, 6]
    assert len(BUCKETS) == 7


@pytest.mark.parametrize(
    ("seed", "granularity", "zone"),
    [(1, "PT1H", "UTC"), (2, "PT15M", "Europe/Paris"), (3, "P1D", "America/New_York"),
     (4, None, "UTC")],
)  # fmt: skip
def test_series_equal_their_definitions_from_events(
    db: sa.Engine, seed: int, granularity: str | None, zone: str
) -> None:
    evs = history(seed, conversations=60, span_h=30.0)
    _insert(db, evs)
    AnalyticsProjector(db, utc_now).rebuild()
    details = replay(evs)
    tz = ZoneInfo(zone)
    start, end = T0 + timedelta(hours=3), T0 + timedelta(hours=27)
    now = T0 + timedelta(hours=20, minutes=7)  # the range runs on past now
    names = ["support", "nowhere"]

    # Wait distribution: the answered waits (tAnswered) in the range, by bucket.
    want: dict[str | None, list[int]] = {"support": [0] * 7, "nowhere": [0] * 7}
    for d in details:
        for o in am.observations(d):
            if o.metric == "tAnswered" and start <= o.at < end:
                want.setdefault(o.queue, [0] * 7)[bucket_of(o.value)] += 1
    got = wait_distribution(db, start, end, names=names)
    assert {r["group"]["queueId"]: r["counts"] for r in got} == want
    assert sum(r["total"] for r in got) > 0
    one = wait_distribution(db, start, end, queues=["support"], names=names)
    assert [r["group"]["queueId"] for r in one] == ["support"]

    # Backlog: waits open at each edge, per queue.
    waits: dict[str | None, list[tuple[datetime, datetime | None]]] = {}
    for d in details:
        for s in d.segments:
            if s.kind == "wait":
                waits.setdefault(s.queue, []).append((s.start, s.end))
    edges = backlog_edges(start, end, granularity, tz, now)
    assert edges[-1] == now and all(e <= now for e in edges)
    got_b = backlog(db, start, end, granularity=granularity, tz=tz, now=now, names=names)
    by_queue = {r["group"]["queueId"]: r["data"] for r in got_b}
    assert set(by_queue) == set(waits) | {"nowhere"}
    for queue, data in by_queue.items():
        assert [datetime.fromisoformat(x["at"]) for x in data] == edges
        assert [x["waiting"] for x in data] == [waiting_at(waits.get(queue, []), e) for e in edges]
        assert [datetime.fromisoformat(x["at"]).utcoffset() for x in data] == [
            e.astimezone(tz).utcoffset() for e in edges
        ]  # local times of the zone
    assert any(x["waiting"] for data in by_queue.values() for x in data)
    # Nothing before the range starts: no edges.
    assert backlog(db, start, end, granularity="PT1H", tz=tz, now=start - timedelta(1)) == []


def _interval() -> str:
    now = datetime.now(UTC)
    return f"{(now - timedelta(days=1)).isoformat()}/{(now + timedelta(days=1)).isoformat()}"


def _day(api: Api) -> tuple[int, int]:
    api.on_queue("ann")
    answered = api.offered_and_accepted("ann")
    ann = api.client("ann")
    assert ann.post(f"/api/v1/conversations/{answered}/disconnect").status_code == 200
    r = ann.post(f"/api/v1/conversations/{answered}/wrapup", json={"code": "resolved"})
    assert r.status_code == 200, r.text
    api.wait_state(answered, "closed")
    r = ann.put("/api/v1/users/ann/presence", json={"presence": "offline"})
    assert r.status_code == 200, r.text
    waiting = api.deliver(subject="Nobody free")  # ann is off the queue: it waits
    api.wait_state(waiting, "queued")
    AnalyticsProjector(api.db, utc_now).run_until_caught_up(settle_s=0.0)
    return answered, waiting


def test_series_endpoints_as_json_and_csv(api: Api) -> None:
    _day(api)
    sue = api.client("sue")
    body = {"interval": _interval(), "timeZone": "Europe/Paris"}
    r = sue.post(DIST, json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [b["label"] for b in got["buckets"]] == [b.label for b in BUCKETS]
    assert got["buckets"][0] == {"label": "<1m", "fromMs": 0, "toMs": 60000}
    support = next(x for x in got["results"] if x["group"] == {"queueId": "support"})
    assert support["total"] == 1 and support["counts"][0] == 1  # answered within a minute
    flt = {"type": "and", "predicates": [{"dimension": "userId", "value": "nobody"}]}
    r = sue.post(DIST, json={**body, "filter": flt})
    assert all(x["total"] == 0 for x in r.json()["results"])
    for kw in ({"headers": {"Accept": "text/csv"}}, {"params": {"format": "csv"}}):
        r = sue.post(DIST, json=body, **kw)  # type: ignore[arg-type]
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        mine = [int(x["count"]) for x in rows if x["queueId"] == "support"]
        assert mine == support["counts"]

    back = {**body, "granularity": "PT1H"}
    r = sue.post(BACKLOG, json=back)
    assert r.status_code == 200, r.text
    support_b = next(x for x in r.json()["results"] if x["group"] == {"queueId": "support"})
    assert support_b["data"][-1]["waiting"] == 1  # "Nobody free" waits now
    assert support_b["data"][0]["waiting"] == 0  # a day ago nothing waited
    assert support_b["data"][0]["at"].endswith(("+01:00", "+02:00"))  # in Paris time
    only = {"type": "and", "predicates": [{"dimension": "queueId", "value": "support"}]}
    r = sue.post(BACKLOG, json={**back, "filter": only})
    assert [x["group"]["queueId"] for x in r.json()["results"]] == ["support"]
    r = sue.post(BACKLOG, params={"format": "csv"}, json={**back, "filter": only})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["at"], int(x["waiting"])) for x in rows] == [
        (d["at"], d["waiting"]) for d in support_b["data"]
    ]


def test_series_refuse_hostile_input(api: Api) -> None:
    sue = api.client("sue")
    ok = {"interval": _interval()}
    cases = [
        (DIST, {**ok, "interval": "yesterday"}, "interval"),
        (DIST, {**ok, "interval": "2020-01-01T00:00:00Z/2026-01-01T00:00:00Z"}, "interval"),
        (DIST, {**ok, "timeZone": "../../etc/passwd"}, "timeZone"),
        (DIST, {**ok, "filter": {"predicates": [{"dimension": "mood", "value": "x"}]}},
         "filter.predicates.0.dimension"),
        (DIST, {**ok, "filter": {"type": "or", "predicates": []}}, "filter.type"),
        (DIST, {**ok, "filter": {"predicates": [{"dimension": "queueId", "value": "x" * 400}]}},
         "filter.predicates.0.value"),
        (BACKLOG, {**ok, "granularity": "PT1M"}, "granularity"),
        (BACKLOG, {**ok, "filter": {"predicates": [{"dimension": "userId", "value": "ann"}]}},
         "filter.predicates.0.dimension"),
        (BACKLOG, {**ok, "interval": 5}, "interval"),
    ]  # fmt: skip
    for path, body, field in cases:
        r = sue.post(path, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.json())
    many = [{"dimension": "queueId", "value": str(i)} for i in range(21)]
    r = sue.post(DIST, json={**ok, "filter": {"predicates": many}})
    assert r.status_code == 422
    year = {"interval": "2025-01-01T00:00:00Z/2026-01-01T00:00:00Z", "granularity": "PT15M"}
    r = sue.post(BACKLOG, json=year)
    assert r.status_code == 422 and "granularity" in r.json()["error"]["message"]


def test_agents_may_not_query_series(api: Api) -> None:
    ann = api.client("ann")
    assert ann.post(DIST, json={"interval": _interval()}).status_code == 403
    assert ann.post(BACKLOG, json={"interval": _interval()}).status_code == 403

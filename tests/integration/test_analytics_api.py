"""The analytics API on SQLite and PostgreSQL, over conversations the real router
handled: aggregates and details as JSON and CSV, validation naming the field, and the
permission (supervisors, not agents)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from postroom.runtime.wiring import utc_now
from postroom.services.analytics import AnalyticsProjector
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture

AGG = "/api/v1/analytics/conversations/aggregates/query"
DETAILS = "/api/v1/analytics/conversations/details/query"


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


def _metrics(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (data,) = result["data"]
    return {m["metric"]: m["stats"] for m in data["metrics"]}


def test_aggregates_and_details_as_json_and_csv(api: Api) -> None:
    answered, waiting = _day(api)
    sue = api.client("sue")
    body = {
        "interval": _interval(),
        "timeZone": "Europe/Paris",
        "groupBy": ["queueId"],
        "metrics": ["nOffered", "nConnected", "tHandle", "oServiceLevel", "tAnswered"],
    }
    r = sue.post(AGG, json=body)
    assert r.status_code == 200, r.text
    (support,) = [x for x in r.json()["results"] if x["group"] == {"queueId": "support"}]
    m = _metrics(support)
    assert m["nOffered"] == {"count": 2}
    assert m["nConnected"] == {"count": 1}
    assert m["tHandle"]["count"] == 1 and m["tAnswered"]["count"] == 1
    assert (m["oServiceLevel"]["numerator"], m["oServiceLevel"]["denominator"]) == (1, 1)
    (data,) = support["data"]
    assert [x.get("qualifier") for x in data["metrics"] if x["metric"] == "oServiceLevel"] == [
        "default"
    ]
    # The same as CSV, by Accept header and by ?format=csv.
    for kw in ({"headers": {"Accept": "text/csv"}}, {"params": {"format": "csv"}}):
        r = sue.post(AGG, json=body, **kw)  # type: ignore[arg-type]
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        offered = next(x for x in rows if x["queueId"] == "support" and x["metric"] == "nOffered")
        assert offered["count"] == "2" and offered["qualifier"] == ""
        sl = next(x for x in rows if x["queueId"] == "support" and x["metric"] == "oServiceLevel")
        assert (sl["qualifier"], sl["numerator"]) == ("default", "1")  # the target's name

    r = sue.post(DETAILS, json={"interval": _interval(), "paging": {"pageSize": 1}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["totalHits"] == 2 and len(got["conversations"]) == 1
    assert got["totalHitsCapped"] is False
    assert got["conversations"][0]["conversationId"] == answered
    second = sue.post(DETAILS, json={"interval": _interval(), "paging": {"pageSize": 1,
                                                                        "pageNumber": 2}})  # fmt: skip
    assert second.json()["conversations"][0]["conversationId"] == waiting
    by_ann = {"type": "and", "predicates": [{"dimension": "userId", "value": "ann"}]}
    r = sue.post(DETAILS, json={"interval": _interval(), "filter": by_ann})
    (only,) = r.json()["conversations"]
    assert (only["conversationId"], only["outcome"], only["wrapUpCode"]) == (
        answered, "answered", "resolved",
    )  # fmt: skip
    assert [s["kind"] for s in only["segments"]][:3] == ["wait", "alert", "interact"]
    r = sue.post(DETAILS, params={"format": "csv"}, json={"interval": _interval()})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(x["conversationId"]) for x in rows] == [answered, waiting]
    assert rows[0]["outcome"] == "answered" and rows[1]["outcome"] == "open"


def test_refusals_name_the_field(api: Api) -> None:
    sue = api.client("sue")
    ok = {"interval": _interval(), "metrics": ["nOffered"]}
    cases = [
        ({**ok, "interval": "yesterday"}, "interval"),
        ({**ok, "interval": "2026-03-02T00:00:00/2026-03-03T00:00:00"}, "interval"),
        ({**ok, "interval": "2026-03-03T00:00:00Z/2026-03-02T00:00:00Z"}, "interval"),
        ({**ok, "interval": "2020-01-01T00:00:00Z/2026-01-01T00:00:00Z"}, "interval"),
        ({**ok, "timeZone": "Mars/Olympus"}, "timeZone"),
        ({**ok, "timeZone": "../../etc/passwd"}, "timeZone"),
        ({**ok, "metrics": ["nHappiness"]}, "metrics.0"),
        ({**ok, "groupBy": ["mood"]}, "groupBy.0"),
        ({**ok, "granularity": "PT1M"}, "granularity"),
    ]
    for body, field in cases:
        r = sue.post(AGG, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.json())
    many = {**ok, "interval": "2025-01-01T00:00:00Z/2026-01-01T00:00:00Z", "granularity": "PT15M"}
    r = sue.post(AGG, json=many)
    assert r.status_code == 422 and "granularity" in r.json()["error"]["message"]
    r = sue.post(DETAILS, json={"interval": _interval(), "paging": {"pageSize": 1000}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "paging.pageSize"
    past = {"pageSize": 100, "pageNumber": 101}  # past the first 10,000 conversations
    r = sue.post(DETAILS, json={"interval": _interval(), "paging": past})
    assert r.status_code == 422 and "10000" in r.json()["error"]["message"], r.text


def test_agents_may_not_query_analytics(api: Api) -> None:
    r = api.client("ann").post(AGG, json={"interval": _interval(), "metrics": ["nOffered"]})
    assert r.status_code == 403
    r = api.client("ann").post(DETAILS, json={"interval": _interval()})
    assert r.status_code == 403


def test_a_transfer_through_the_real_router(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    r = api.client("ann").post(f"/api/v1/conversations/{cid}/transfer", json={"queue": "billing"})
    assert r.status_code == 200, r.text
    api.wait_state(cid, "queued")
    AnalyticsProjector(api.db, utc_now).run_until_caught_up(settle_s=0.0)
    sue = api.client("sue")
    body = {"interval": _interval(), "groupBy": ["queueId"],
            "metrics": ["nOffered", "nTransferred", "tAnswered"]}  # fmt: skip
    results = {
        x["group"]["queueId"]: _metrics(x) for x in sue.post(AGG, json=body).json()["results"]
    }
    assert results["support"]["nTransferred"] == {"count": 1}
    assert results["support"]["tAnswered"]["count"] == 1
    assert results["billing"] == {"nOffered": {"count": 1}}
    (d,) = sue.post(DETAILS, json={"interval": _interval()}).json()["conversations"]
    waits = [(s["queue"], s["outcome"]) for s in d["segments"] if s["kind"] == "wait"]
    assert waits == [("support", "answered"), ("billing", None)]
    assert (d["transfers"], d["outcome"]) == (1, "open")

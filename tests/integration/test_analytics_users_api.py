"""The users aggregates, the live queue observations and the tag dimension of the
analytics API on SQLite and PostgreSQL, over what the real router did: JSON and CSV,
hostile input refused with 422 naming the field, interval years bounded, and the
permission (supervisors, not agents)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postroom.runtime.wiring import utc_now
from postroom.services.analytics import AnalyticsProjector, standard_sinks
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture

USERS = "/api/v1/analytics/users/aggregates/query"
OBS = "/api/v1/analytics/queues/observations/query"
AGG = "/api/v1/analytics/conversations/aggregates/query"


def _interval() -> str:
    now = datetime.now(UTC)
    return f"{(now - timedelta(days=1)).isoformat()}/{(now + timedelta(days=1)).isoformat()}"


def _project(api: Api) -> None:
    AnalyticsProjector(api.db, utc_now, sinks=standard_sinks()).run_until_caught_up(settle_s=0.0)


def _worked(api: Api) -> int:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    ann = api.client("ann")
    assert ann.post(f"/api/v1/conversations/{cid}/disconnect").status_code == 200
    r = ann.post(f"/api/v1/conversations/{cid}/wrapup", json={"code": "resolved"})
    assert r.status_code == 200, r.text
    api.wait_state(cid, "closed")
    r = ann.put("/api/v1/users/ann/presence", json={"presence": "away"})
    assert r.status_code == 200, r.text
    _project(api)
    return cid


def _by_metric(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    (data,) = result["data"]
    return {(m["metric"], m["qualifier"]): m["stats"] for m in data["metrics"]}


def test_users_aggregates_as_the_dashboard_asks_and_as_csv(api: Api) -> None:
    _worked(api)
    sue = api.client("sue")
    body = {"interval": _interval(), "granularity": None, "timeZone": "Europe/Paris",
            "groupBy": ["userId"], "metrics": ["tAgentRoutingStatus", "tSystemPresence"]}  # fmt: skip
    r = sue.post(USERS, json=body)
    assert r.status_code == 200, r.text
    (ann,) = [x for x in r.json()["results"] if x["group"] == {"userId": "ann"}]
    m = _by_metric(ann)
    for key in (("tAgentRoutingStatus", "IDLE"), ("tAgentRoutingStatus", "INTERACTING"),
                ("tAgentRoutingStatus", "OFF_QUEUE"), ("tSystemPresence", "ON_QUEUE"),
                ("tSystemPresence", "AWAY")):  # fmt: skip
        assert key in m, key
        assert m[key]["count"] >= 1 and m[key]["sum"] >= 0
    # away is still going on: it counts until now, so it grows between two queries
    first = m[("tSystemPresence", "AWAY")]["sum"]
    again = _by_metric(next(x for x in sue.post(USERS, json=body).json()["results"]
                            if x["group"] == {"userId": "ann"}))  # fmt: skip
    assert again[("tSystemPresence", "AWAY")]["sum"] >= first
    # filtered to one agent; bob never went on queue, so he is not there
    only = sue.post(USERS, json=body | {"filter": {"type": "or", "predicates": [
        {"dimension": "userId", "value": "bob"}]}})  # fmt: skip
    assert only.status_code == 200 and all(x["group"]["userId"] == "bob" for x in only.json()["results"])
    both = {"type": "and", "predicates": [{"dimension": "userId", "value": "ann"},
                                          {"dimension": "userId", "value": "bob"}]}  # fmt: skip
    assert sue.post(USERS, json=body | {"filter": both}).json() == {"results": []}
    r = sue.post(USERS, json=body, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "interval,userId,metric,qualifier,count,sum"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    idle = next(x for x in rows if x["userId"] == "ann" and x["qualifier"] == "IDLE")
    assert idle["metric"] == "tAgentRoutingStatus" and int(idle["count"]) >= 1


def test_users_aggregates_by_routing_status_and_by_the_hour(api: Api) -> None:
    _worked(api)
    body = {"interval": _interval(), "granularity": "PT1H", "groupBy": ["routingStatus"],
            "metrics": ["tAgentRoutingStatus"]}  # fmt: skip
    r = api.client("sue").post(USERS, json=body)
    assert r.status_code == 200, r.text
    groups = {x["group"]["routingStatus"] for x in r.json()["results"]}
    assert {"IDLE", "OFF_QUEUE"} <= groups


def test_queue_observations_live_as_json_and_csv(api: Api) -> None:
    cid = api.deliver(subject="Nobody free")  # nobody on queue: it waits
    api.wait_state(cid, "queued")
    api.on_queue("bob")  # bob takes it: alerting
    api.wait_state(cid, "alerting", "bob")
    api.deliver(subject="Second")
    sue = api.client("sue")
    r = sue.post(OBS, json={"filter": {"predicates": [{"dimension": "queueId", "value": "support"}]}})
    assert r.status_code == 200, r.text
    (support,) = r.json()["results"]
    assert support["group"] == {"queueId": "support"}
    m = {(d["metric"], d.get("qualifier")): d["stats"] for d in support["data"]}
    assert m[("oWaiting", None)] == {"count": 1}
    assert m[("oAlerting", None)] == {"count": 1}
    assert m[("oInteracting", None)] == {"count": 0}
    assert m[("oLongestWaiting", None)]["count"] == 2
    assert m[("oLongestWaiting", None)]["calculatedMetricValue"] >= 0
    assert m[("oOnQueueUsers", None)] == {"count": 1}
    assert m[("oUserRoutingStatuses", "INTERACTING")] == {"count": 1}
    # every configured queue without a filter; only the metrics asked for
    r = sue.post(OBS, json={"metrics": ["oWaiting"]})
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) >= 2 and all([d["metric"] for d in x["data"]] == ["oWaiting"] for x in results)
    no_body = sue.post(OBS)  # the body may be left out
    assert no_body.status_code == 200
    assert [x["group"] for x in no_body.json()["results"]] == [x["group"] for x in results_all(sue)]
    r = sue.post(OBS, json={}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert r.text.splitlines()[0] == "queueId,metric,qualifier,count,calculatedMetricValue"
    assert next(x for x in rows if x["queueId"] == "support" and x["metric"] == "oWaiting")["count"] == "1"


def results_all(client: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = client.post(OBS, json={}).json()["results"]
    return out


def test_the_tag_dimension_groups_and_filters_conversation_aggregates(api: Api) -> None:
    api.deliver(subject="From the boss", sender="Boss <boss@vip.example>")  # a rule tags it vip
    api.deliver(subject="Plain")
    _project(api)
    sue = api.client("sue")
    body = {"interval": _interval(), "groupBy": ["tag"], "metrics": ["nOffered"]}
    r = sue.post(AGG, json=body)
    assert r.status_code == 200, r.text
    got = {x["group"]["tag"]: x["data"][0]["metrics"][0]["stats"]["count"] for x in r.json()["results"]}
    assert got == {"vip": 1, None: 1}
    flt = {"type": "and", "predicates": [{"dimension": "tag", "value": "vip"}]}
    r = sue.post(AGG, json={"interval": _interval(), "metrics": ["nOffered"], "filter": flt})
    assert r.json()["results"][0]["data"][0]["metrics"][0]["stats"] == {"count": 1}
    r = sue.post(AGG, json=body, params={"format": "csv"})
    assert r.text.splitlines()[0].startswith("interval,tag,metric")
    r = sue.post("/api/v1/analytics/conversations/details/query",
                 json={"interval": _interval(), "filter": flt})  # fmt: skip
    assert r.status_code == 200 and r.json()["totalHits"] == 1


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (USERS, {"interval": "0001-01-01T00:00:00Z/0001-01-02T00:00:00Z"}, "interval"),
        (USERS, {"interval": "9999-12-30T00:00:00Z/9999-12-31T00:00:00Z"}, "interval"),
        (AGG, {"interval": "9999-12-30T00:00:00Z/9999-12-31T00:00:00Z", "metrics": ["nOffered"]},
         "interval"),
        (AGG, {"interval": "1899-12-30T00:00:00Z/1899-12-31T00:00:00Z", "metrics": ["nOffered"]},
         "interval"),
        (USERS, {"interval": "x", "metrics": ["tAgentRoutingStatus"]}, "interval"),
        (USERS, {"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "metrics": ["nOffered"]},
         "metrics.0"),
        (USERS, {"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "metrics": []}, "metrics"),
        (USERS, {"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "groupBy": ["queueId"]},
         "groupBy.0"),
        (USERS, {"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "timeZone": "Mars/Base"},
         "timeZone"),
        (USERS, {"interval": "2026-01-01T00:00:00Z/2027-01-02T00:00:00Z", "granularity": "PT15M"},
         None),
        (USERS, {"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "filter": {
            "predicates": [{"dimension": "userId", "value": "a" * 201}]}}, "filter.predicates.0.value"),
        (USERS, {"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "filter": {
            "predicates": [{"dimension": "userId", "value": "a"}] * 101}}, "filter.predicates"),
        (OBS, {"metrics": ["nOffered"]}, "metrics.0"),
        (OBS, {"metrics": []}, "metrics"),
        (OBS, {"filter": {"predicates": [{"dimension": "userId", "value": "ann"}]}},
         "filter.predicates.0.dimension"),
        (OBS, {"filter": {"predicates": [{"dimension": "queueId", "value": "q"}] * 101}},
         "filter.predicates"),
        (OBS, [1, 2], None),
    ],
)
def test_hostile_input_is_a_422_naming_the_field(
    api: Api, path: str, body: Any, field: str | None
) -> None:
    r = api.client("sue").post(path, json=body)
    assert r.status_code == 422, r.text
    if field is not None:
        assert r.json()["error"]["field"] == field, r.json()


def test_agents_may_not_query_users_or_observations(api: Api) -> None:
    ann = api.client("ann")
    assert ann.post(USERS, json={"interval": _interval()}).status_code == 403
    assert ann.post(OBS, json={}).status_code == 403

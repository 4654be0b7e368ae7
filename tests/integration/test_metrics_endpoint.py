"""`GET /metrics` on SQLite and PostgreSQL: the Prometheus text format (parsed with
prometheus_client's parser) with the live queue observations, messages, outbox and
events figures read at scrape time; 401 without credentials, 403 for an agent, 200 for
a supervisor's API token; addresses in `[web] metrics_allow` scrape without signing in;
a bad allow-list entry stops the start with its name."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from postroom.runtime.settings import Settings
from postroom.services import users as user_svc
from postroom.web import metrics as web_metrics
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_supervisor_scrapes_the_live_figures(api: Api) -> None:
    cid = api.deliver(subject="Waiting")
    api.wait_state(cid, "queued")
    api.on_queue("bob")
    api.wait_state(cid, "alerting", "bob")
    api.deliver(subject="Second")
    token = user_svc.create_token(api.db, api.comps.clock, "sue", "prometheus")
    with TestClient(api.app) as client:
        r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    got = _samples(r.text)
    support = (("queue", "support"),)
    assert got[("postroom_queue_waiting", support)] == 1
    assert got[("postroom_queue_alerting", support)] == 1
    assert got[("postroom_queue_on_queue_users", support)] == 1
    assert got[("postroom_queue_longest_waiting_seconds", support)] >= 0
    assert got[("postroom_queue_users", (("queue", "support"), ("routing_status", "INTERACTING")))] == 1
    assert got[("postroom_messages", (("status", "processed"),))] == 2
    assert got[("postroom_messages_quarantined", ())] == 0
    assert got[("postroom_events_total", (("kind", "offer_created"),))] == 1
    assert got[("postroom_events_total", (("kind", "presence_changed"),))] >= 1
    assert ("postroom_pipeline_latency_seconds", (("quantile", "0.5"),)) in got
    assert got[("postroom_analytics_lag_events", ())] >= 1  # no projector ran in this test


def test_who_may_scrape(api: Api) -> None:
    agent = user_svc.create_token(api.db, api.comps.clock, "ann", "prometheus")
    admin = user_svc.create_token(api.db, api.comps.clock, "adam", "prometheus")
    with TestClient(api.app) as client:
        assert client.get("/metrics").status_code == 401
        r = client.get("/metrics", headers={"Authorization": f"Bearer {agent}"})
        assert r.status_code == 403 and "read_metrics" in r.json()["error"]["message"]
        assert client.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        assert client.get("/metrics", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_an_allowed_address_scrapes_without_signing_in(any_settings: Settings) -> None:
    # TestClient's peer is "testclient", not an address: never allowed by a network
    a = fx.make_api(any_settings, metrics_allow=("127.0.0.1",))
    try:
        with TestClient(a.app) as client:
            assert client.get("/metrics").status_code == 401
        with TestClient(a.app, client=("127.0.0.1", 5000)) as local:
            r = local.get("/metrics")
            assert r.status_code == 200, r.text
            assert "postroom_queue_waiting" in r.text
        with TestClient(a.app, client=("10.1.2.3", 5000)) as other:
            assert other.get("/metrics").status_code == 401
    finally:
        fx.close_api(a)


def test_a_bad_allow_list_entry_is_named() -> None:
    with pytest.raises(ValueError, match="not-an-address"):
        web_metrics.allow_list(["127.0.0.1", "not-an-address"])
    assert len(web_metrics.allow_list(["::1", "10.0.0.0/8"])) == 2


def test_the_metrics_allow_setting_reads_lists() -> None:
    from postroom.runtime.settings import from_mapping

    s = from_mapping({"web": {"metrics_allow": ["127.0.0.1", "10.0.0.0/8"]}})
    assert s.web.metrics_allow == ("127.0.0.1", "10.0.0.0/8")
    assert from_mapping({}).web.metrics_allow == ()

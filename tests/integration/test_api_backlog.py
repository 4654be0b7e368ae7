"""The backlog API: supervisors act on waiting work and on agents; agents get 403;
refusals are named 409s; the pages answer supervisors. On both stores."""

from __future__ import annotations

from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture


def test_agents_cannot_act_on_the_backlog_or_on_agents(api: Api) -> None:
    cid = api.deliver()
    ann = api.client("ann")
    base = f"/api/v1/conversations/{cid}"
    denied = [
        ann.post(f"{base}/assign", json={"agent": "ann", "mode": "connect"}),
        ann.post(f"{base}/move", json={"queue": "billing"}),
        ann.post(f"{base}/priority", json={"priority": 3}),
        ann.post(f"{base}/close", json={"reason": "spam"}),
        ann.post("/api/v1/conversations/bulk", json={"ids": [cid], "action": "move", "queue": "billing"}),
        ann.post("/api/v1/agents/bob/requeue"),
        ann.post("/api/v1/agents/bob/off-queue"),
        ann.get("/api/v1/supervisor/agents"),
        ann.get("/supervisor/agents"),
        ann.get("/supervisor/queues/support"),
    ]
    assert [r.status_code for r in denied] == [403] * len(denied)
    assert api.conv(cid).state == "queued"


def test_supervisor_assigns_moves_and_closes_and_reads_the_board(api: Api) -> None:
    a = api.deliver("first", message_id="<a@x.example>")
    b = api.deliver("second", message_id="<b@x.example>", sender="other@customer.example")
    sue = api.client("sue")
    r = sue.post(f"/api/v1/conversations/{a}/assign", json={"agent": "ann", "mode": "connect"})
    assert r.status_code == 200, r.text
    assert (api.conv(a).state, api.conv(a).agent_id) == ("connected", "ann")
    # ann (capacity 1) is full: a second connect is a named refusal, unless overridden
    r = sue.post(f"/api/v1/conversations/{b}/assign", json={"agent": "ann", "mode": "connect"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "backlog_refused", r.text
    assert "capacity" in r.json()["error"]["message"]
    # a held conversation has no backlog actions: 409, not 500
    r = sue.post(f"/api/v1/conversations/{a}/close", json={"reason": "spam"})
    assert r.status_code == 409 and "only waiting work" in r.json()["error"]["message"]
    r = sue.post(f"/api/v1/conversations/{b}/move", json={"queue": "nowhere"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_action"
    r = sue.post("/api/v1/conversations/bulk", json={"ids": [b, a], "action": "move", "queue": "billing"})
    assert r.json() == {"results": [
        {"id": b, "ok": True, "error": None},
        {"id": a, "ok": False, "error": "conversation is connected; only waiting work can be moved"},
    ]}
    board = sue.get("/api/v1/supervisor/agents").json()["agents"]
    ann = next(x for x in board if x["id"] == "ann")
    assert (ann["holding"], ann["capacity"]) == (1, 1)
    page = sue.get("/supervisor/queues/billing")
    assert page.status_code == 200 and f'value="{b}"' in page.text and 'id="bulk"' in page.text
    assert sue.get("/supervisor/agents").status_code == 200
    r = sue.post("/api/v1/agents/ann/requeue")
    assert r.status_code == 200, r.text
    assert api.conv(a).state in ("queued", "alerting")
    assert sue.post("/api/v1/agents/nobody/requeue").status_code == 404


def test_thread_view_offers_backlog_actions_to_supervisors_while_it_waits(api: Api) -> None:
    cid = api.deliver()
    page = api.client("sue").get(f"/workspace/parts/conversation/{cid}")
    assert page.status_code == 200 and 'id="backlog-actions"' in page.text
    assert "/static/supervisor/backlog.js" in page.text
    r = api.client("sue").post(f"/api/v1/conversations/{cid}/assign", json={"agent": "ann", "mode": "connect"})
    assert r.status_code == 200, r.text
    page = api.client("sue").get(f"/workspace/parts/conversation/{cid}")
    assert 'id="backlog-actions"' not in page.text  # held now: no backlog actions

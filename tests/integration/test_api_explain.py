"""Why did this happen, over the API: the router stores why each offer went to its
agent (`GET .../routing`, supervisors), and the conversation's timeline lists its
events, messages and wrap-up notes in order (supervisors; agents for their own)."""

from __future__ import annotations

from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture


def test_offer_explanation_is_stored_and_served_to_supervisors(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    story = api.client("sue").get(f"/api/v1/conversations/{cid}/routing")
    assert story.status_code == 200, story.text
    (offer,) = story.json()["offers"]
    assert (offer["agent"], offer["outcome"]) == ("ann", "accepted")
    why = offer["why"]
    assert why["rule"] == offer["rule"] == "only_eligible_agent"
    assert why["eligible"] == 1 and why["considered"] >= 2
    assert why["passed_over"].get("off_queue", 0) >= 1  # bob is not on queue
    assert ["bob", "off_queue"] in why["named"]
    # Agents may not read routing explanations, not even of their own work.
    assert api.client("ann").get(f"/api/v1/conversations/{cid}/routing").status_code == 403
    assert api.client("sue").get("/api/v1/conversations/999999/routing").status_code == 404


def test_timeline_lists_events_messages_and_notes_in_order(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    c = api.client("ann")
    assert c.post(f"/api/v1/conversations/{cid}/disconnect").status_code == 200
    r = c.post(f"/api/v1/conversations/{cid}/wrapup", json={"code": "resolved", "notes": "new toner"})
    assert r.status_code == 200, r.text
    api.wait_state(cid, "closed")
    sup = api.client("sue").get(f"/api/v1/conversations/{cid}/timeline").json()["entries"]
    kinds = [e["kind"] for e in sup]
    assert kinds[0] == "message_in"
    for before, after in [("message_in", "offer_created"), ("offer_created", "wrapup_notes"),
                          ("offer_created", "conversation_closed")]:
        assert kinds.index(before) < kinds.index(after), kinds
    notes = next(e for e in sup if e["kind"] == "wrapup_notes")
    assert notes["data"]["notes"] == "new toner"
    assert "why" in next(e for e in sup if e["kind"] == "offer_created")["data"]
    # The agent reads their own timeline, without the routing explanation.
    own = c.get(f"/api/v1/conversations/{cid}/timeline")
    assert own.status_code == 200
    offer = next(e for e in own.json()["entries"] if e["kind"] == "offer_created")
    assert "why" not in offer["data"]
    # Another agent may not see it at all.
    assert api.client("bob").get(f"/api/v1/conversations/{cid}/timeline").status_code == 404

"""The event stream (SSE) on a real server: offers reach only their agent,
Last-Event-ID resumes without loss, open streams keep an agent's presence and
a browser gone longer than presence_timeout_s takes the agent off queue."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from postroom.services import users as user_svc
from postroom.store.schema import agents, events
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import (
    Api,
    LiveServer,
    SseReader,
    close_api,
    eventually,
    login,
    make_api,
)

api = fx.api  # the shared fixture


def _data(e: dict[str, Any]) -> dict[str, Any]:
    return json.loads(e["data"])


def test_offer_reaches_its_agent_and_supervisors_but_not_other_agents(api: Api) -> None:
    with LiveServer(api.app) as srv:
        ann, bob, sue = (login(srv.url, u) for u in ("ann", "bob", "sue"))
        streams = {u: SseReader(c) for u, c in (("ann", ann), ("bob", bob), ("sue", sue))}
        try:
            assert all(s.status == 200 for s in streams.values())
            r = ann.put("/api/v1/users/ann/presence", json={"presence": "on_queue"})
            assert r.status_code == 200
            cid = api.deliver(subject="Secret subject")
            offer = eventually(lambda: [e for e in streams["ann"].events if e.get("event") == "offer_created"])[0]
            assert _data(offer)["conversation_id"] == cid and _data(offer)["data"]["deadline"]
            assert int(offer["id"]) == _data(offer)["id"]
            eventually(lambda: "offer_created" in streams["sue"].kinds())
            assert "routing_status_changed" in streams["ann"].kinds()
            time.sleep(0.5)
            assert all(
                _data(e).get("conversation_id") != cid for e in streams["bob"].events
            ), streams["bob"].events
            assert "routing_status_changed" not in streams["bob"].kinds()  # ann's status is hers
        finally:
            for s in streams.values():
                s.close()


def test_reconnect_with_last_event_id_resumes_without_loss(api: Api) -> None:
    with LiveServer(api.app) as srv:
        ann = login(srv.url, "ann")
        first = SseReader(ann)
        ann.put("/api/v1/users/ann/presence", json={"presence": "on_queue"})
        cid = api.deliver()
        eventually(lambda: "offer_created" in first.kinds())
        last_id = first.events[-1]["id"]
        first.close()
        # while disconnected: accept, then end
        api.client("ann").post(f"/api/v1/conversations/{cid}/accept")
        api.client("ann").post(f"/api/v1/conversations/{cid}/disconnect")
        api.wait_state(cid, "closed")
        again = SseReader(ann, headers={"Last-Event-ID": last_id})
        try:
            got = eventually(lambda: [e for e in again.events if e.get("event") == "conversation_closed"])
            ids = [int(e["id"]) for e in again.events]
            assert ids == sorted(ids) and min(ids) > int(last_id)
            states = [_data(e)["data"].get("to") for e in again.events if e.get("event") == "conversation_state_changed"]
            assert "connected" in states and got
        finally:
            again.close()
        # without Last-Event-ID a new stream starts from now: nothing old is replayed
        fresh = SseReader(ann)
        try:
            time.sleep(0.5)
            assert fresh.events == []
        finally:
            fresh.close()


def test_stream_needs_authentication_and_accepts_tokens(api: Api) -> None:
    with LiveServer(api.app) as srv:
        import httpx

        anon = httpx.Client(base_url=srv.url, timeout=10)
        assert anon.get("/api/v1/events/stream").status_code == 401
        token = user_svc.create_token(api.db, api.comps.clock, "ann", "cli")
        c = httpx.Client(base_url=srv.url, timeout=10, headers={"Authorization": f"Bearer {token}"})
        s = SseReader(c)
        try:
            assert s.status == 200
            r = c.put("/api/v1/users/ann/presence", json={"presence": "on_queue"})
            assert r.status_code == 200, r.text
            eventually(lambda: "routing_status_changed" in s.kinds())
        finally:
            s.close()


def test_presence_timeout_takes_a_gone_browser_off_queue(any_settings: Any) -> None:
    a = make_api(any_settings, presence_watch=True, presence_timeout_s=1.5, heartbeat_s=0.3)
    try:
        with LiveServer(a.app) as srv:
            ann = login(srv.url, "ann")
            stream = SseReader(ann)
            assert ann.put("/api/v1/users/ann/presence", json={"presence": "on_queue"}).status_code == 200

            def presence() -> tuple[str, str]:
                with a.db.connect() as conn:
                    row = conn.execute(sa.select(agents.c.presence, agents.c.routing_status).where(agents.c.id == "ann")).one()
                return row.presence, row.routing_status

            time.sleep(3)  # twice the time-out: the open stream's heartbeats keep her on queue
            assert presence() == ("on_queue", "idle")
            stream.close()
            eventually(lambda: presence() == ("offline", "off_queue"), timeout=10)
    finally:
        close_api(a)


def test_agents_without_web_activity_are_left_alone(api: Api) -> None:
    from postroom.services import agents as agent_svc

    agent_svc.request(api.db, api.comps.clock, "presence", agent_id="bob", data={"presence": "on_queue"})
    later = api.comps.clock() + timedelta(hours=1)
    assert user_svc.agents_gone(api.db, later, 60) == []
    api.client("ann")  # a login is web activity
    agent_svc.request(api.db, api.comps.clock, "presence", agent_id="ann", data={"presence": "on_queue"})
    assert user_svc.agents_gone(api.db, api.comps.clock(), 60) == []
    assert user_svc.agents_gone(api.db, later, 60) == ["ann"]


def test_delivery_outcomes_reach_the_agents_of_the_thread_and_supervisors(api: Api) -> None:
    from postroom.services.outbound import DeliveryResult, OutboundConfig, OutboundService
    from tests.integration.test_outbound import dsn

    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    with LiveServer(api.app) as srv:
        streams = {u: SseReader(login(srv.url, u)) for u in ("ann", "bob", "sue")}
        try:
            ann = api.client("ann")
            sent = [ann.post(f"/api/v1/conversations/{cid}/send", json={"text": t}).json() for t in ("one", "two")]
            svc = OutboundService(api.db, api.comps.blobs, OutboundConfig(), api.comps.clock)
            first, second = sorted(svc.claim_due(10), key=lambda d: d.outbox_id)
            svc.record([(first, DeliveryResult(False, False, "451 4.7.1 try later")),
                        (second, DeliveryResult(False, True, "550 5.1.1 no such user"))])
            api.comps.spool().accept_sync(dsn(sent[0]["message_id"]), source="smtp", envelope_from="",
                                          envelope_to=["support@example.com"])
            api.comps.intake.drain()
            outcomes = ("delivery_deferred", "delivery_failed", "bounce_received")

            def delivery_events(who: str) -> list[dict[str, Any]]:
                return [e for e in streams[who].events if e.get("event") in outcomes]

            for who in ("ann", "sue"):
                eventually(lambda w=who: len(delivery_events(w)) == 3)
                got = delivery_events(who)
                assert sorted(e["event"] for e in got) == sorted(outcomes)
                assert all(_data(e)["conversation_id"] == cid for e in got)
            time.sleep(0.5)
            assert not [e for e in streams["bob"].events if e.get("event") in outcomes]
        finally:
            for s in streams.values():
                s.close()


def test_new_email_events_reach_its_agent_only(api: Api) -> None:
    with LiveServer(api.app) as srv:
        streams = {u: SseReader(login(srv.url, u)) for u in ("ann", "bob")}
        try:
            r = api.client("ann").post("/api/v1/conversations", json={
                "queue": "support", "to": ["ada@customer.example"], "subject": "Hello", "text": "Hi"})
            assert r.status_code == 201, r.text
            cid = r.json()["conversation_id"]
            got = eventually(lambda: {e["event"] for e in streams["ann"].events} >= {"conversation_created", "message_queued"})
            assert got
            assert all(_data(e)["conversation_id"] == cid for e in streams["ann"].events
                       if e["event"] in ("conversation_created", "message_queued"))
            time.sleep(0.5)
            assert all(_data(e).get("conversation_id") != cid for e in streams["bob"].events)
        finally:
            for s in streams.values():
                s.close()


def _add_events(api: Api, rows: list[tuple[str, int, dict[str, Any]]]) -> int:
    """Append events as the router writes them; returns the id before them."""
    with api.db.begin() as conn:
        before = int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)
        conn.execute(
            events.insert(),
            [
                {"at": api.comps.clock(), "kind": kind, "conversation_id": cid, "data": data}
                for kind, cid, data in rows
            ],
        )
    return before


def test_a_busy_system_does_not_push_an_agents_own_events_out_of_the_replay(api: Api) -> None:
    # 1,500 events about other agents' conversations, then 3 offers to ann.
    others = [("offer_created", 900_000 + i, {"agent": "bob"}) for i in range(1500)]
    mine = [("offer_created", 800_000 + i, {"agent": "ann"}) for i in range(3)]
    last_seen = _add_events(api, others)
    _add_events(api, mine)
    with LiveServer(api.app) as srv:
        ann = login(srv.url, "ann")
        again = SseReader(ann, headers={"Last-Event-ID": str(last_seen)})
        try:
            got = eventually(
                lambda: [e for e in again.events if e.get("event") == "offer_created"]
                if len([e for e in again.events if e.get("event") == "offer_created"]) >= 3
                else None
            )
            time.sleep(0.3)
            assert "resync" not in again.kinds()
            assert sorted(_data(e)["conversation_id"] for e in got) == [800_000, 800_001, 800_002]
            assert all(_data(e)["data"]["agent"] == "ann" for e in again.events)
        finally:
            again.close()
        # more of ann's own than the limit: resync (with an id past the backlog)
        _add_events(api, [("offer_created", 700_000 + i, {"agent": "ann"}) for i in range(1001)])
        again = SseReader(ann, headers={"Last-Event-ID": str(last_seen)})
        try:
            eventually(lambda: "resync" in again.kinds())
            resync = next(e for e in again.events if e.get("event") == "resync")
            assert int(resync["id"]) > last_seen
            time.sleep(0.3)
            assert "offer_created" not in again.kinds()
        finally:
            again.close()


def test_a_supervisor_reconnecting_after_1500_events_gets_resync(api: Api) -> None:
    last_seen = _add_events(api, [("offer_created", 900_000 + i, {"agent": "bob"}) for i in range(1500)])
    with LiveServer(api.app) as srv:
        sue = login(srv.url, "sue")  # sees everything: all 1,500 are hers to replay
        again = SseReader(sue, headers={"Last-Event-ID": str(last_seen)})
        try:
            eventually(lambda: "resync" in again.kinds())
        finally:
            again.close()

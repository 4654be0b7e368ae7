"""Today's achieved service level of a queue (GET /api/v1/queues): the share of
conversations answered or abandoned since 00:00 UTC that were answered within
the queue's service level seconds, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from postroom.store.schema import conversations, events
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture


def _support(api: Api) -> dict[str, Any]:
    queues = api.client("sue").get("/api/v1/queues").json()["queues"]
    return next(q for q in queues if q["name"] == "support")["service_level"]


def _waited_since(api: Api, cid: int, when: datetime) -> None:
    """Make the conversation's wait start at `when` (its enqueue time in the event log)."""
    with api.db.begin() as conn:
        row = conn.execute(
            sa.select(events.c.id, events.c.data).where(
                events.c.conversation_id == cid, events.c.kind == "conversation_created"
            )
        ).one()
        conn.execute(
            events.update()
            .where(events.c.id == row.id)
            .values(data={**row.data, "enqueued_at": when.isoformat()})
        )
        conn.execute(
            conversations.update().where(conversations.c.id == cid).values(enqueued_at=when)
        )


def test_service_level_counts_only_fast_answers_of_today(api: Api) -> None:
    sl = _support(api)
    assert sl["percent"] is None and (sl["answered"], sl["answered_within"], sl["abandoned"]) == (0, 0, 0)
    assert (sl["target_percent"], sl["threshold_s"]) == (80.0, 86400.0)
    since = datetime.fromisoformat(sl["since"])
    assert since == datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    api.on_queue("ann")
    fast = api.offered_and_accepted("ann")  # ann is now full: the next goes to bob
    api.on_queue("bob")
    slow = api.offered_and_accepted("bob", subject="Waited two days")
    waiting = api.deliver(subject="Still waiting")  # not answered: does not count
    api.wait_state(waiting, "queued")
    _waited_since(api, slow, datetime.now(UTC) - timedelta(days=2))
    sl = _support(api)
    assert (sl["answered"], sl["answered_within"], sl["abandoned"]) == (2, 1, 0)
    assert sl["percent"] == 50.0
    one = api.client("sue").get("/api/v1/queues/support").json()
    assert one["service_level"] == sl and one["waiting"] == 1

    # An answer before today's midnight is not today's.
    with api.db.begin() as conn:
        conn.execute(
            events.update()
            .where(events.c.conversation_id == fast, events.c.kind == "conversation_state_changed")
            .values(at=since - timedelta(hours=1))
        )
    sl = _support(api)
    assert (sl["answered"], sl["answered_within"], sl["percent"]) == (1, 0, 0.0)
    # The page shows it beside the target, marked as below it.
    part = api.client("sue").get("/workspace/parts/queues").text
    assert '<td data-figure="service_level" class="hot">0 %</td>' in part


def test_a_transfer_out_does_not_change_the_source_queues_service_level(api: Api) -> None:
    """The service level belongs to the queue segment in which the conversation waited:
    transferring it to another queue (which restarts its wait there) leaves the first
    queue's figure as it was (it used to jump from 0 % to 100 %)."""
    api.on_queue("ann")
    slow = api.offered_and_accepted("ann", subject="Waited two days")
    _waited_since(api, slow, datetime.now(UTC) - timedelta(days=2))
    sl = _support(api)
    assert (sl["answered"], sl["answered_within"], sl["percent"]) == (1, 0, 0.0)
    r = api.client("ann").post(f"/api/v1/conversations/{slow}/transfer", json={"queue": "billing"})
    assert r.status_code == 200, r.text
    api.wait_state(slow, "queued")
    sl = _support(api)
    assert (sl["answered"], sl["answered_within"], sl["percent"]) == (1, 0, 0.0)

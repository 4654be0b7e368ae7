"""Supervisors' actions through the router, on both stores: assign (offer, connect,
capacity), move, priority, close, bulk (500), races, requeue an agent's work."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services import agents as svc
from postroom.services.routing import RoutingService
from postroom.services.supervisor import backlog, board
from postroom.store.schema import conversations, events, routing_inbox, threads
from tests.mailfactory import make_email


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def comps(any_settings: Settings) -> Iterator[Components]:
    c = build(any_settings, clock=Clock())
    yield c
    c.close()


class Router:
    """The router polling in a thread, as `postroom serve` runs it."""

    def __init__(self, c: Components) -> None:
        self.service = RoutingService(c.engine, c.settings.queues, c.clock)
        self.service.rebuild()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                self.service.poll()
            self.stop.wait(0.02)


@pytest.fixture
def router(comps: Components) -> Iterator[Router]:
    r = Router(comps)
    yield r
    r.stop.set()
    r.thread.join(5)


def deliver(c: Components, n: int = 1) -> list[int]:
    for i in range(n):
        c.spool().accept_sync(
            make_email(subject=f"help {i}", sender=f"c{i}@customer.example", message_id=f"<m{i}@x.example>"),
            source="smtp",
            envelope_to=["support@example.com"],
        )
    c.intake.drain()
    with c.engine.connect() as conn:
        return [int(i) for (i,) in conn.execute(sa.select(conversations.c.id).order_by(conversations.c.id))]


def waiting_rows(c: Components, n: int) -> list[int]:
    """`n` queued conversations written as intake writes them (thread, conversation,
    `enqueued` request), without parsing n emails."""
    now = c.clock()
    with c.engine.begin() as conn:
        ids = []
        for i in range(n):
            tid = conn.execute(
                threads.insert().values(subject=f"bulk {i}", created_at=now, last_activity_at=now).returning(threads.c.id)
            ).scalar_one()
            cid = conn.execute(
                conversations.insert()
                .values(thread_id=tid, state="queued", queue="support", priority=0, skills=[], tags=[], created_at=now, enqueued_at=now)
                .returning(conversations.c.id)
            ).scalar_one()
            conn.execute(routing_inbox.insert().values(at=now, kind="enqueued", conversation_id=cid, data={}))
            ids.append(int(cid))
    return ids


def conv(c: Components, cid: int) -> sa.Row[Any]:
    with c.engine.connect() as conn:
        return conn.execute(sa.select(conversations).where(conversations.c.id == cid)).one()


def kinds(c: Components, cid: int) -> list[str]:
    with c.engine.connect() as conn:
        return [k for (k,) in conn.execute(sa.select(events.c.kind).where(events.c.conversation_id == cid).order_by(events.c.id))]


def agent(c: Components, name: str, *, on_queue: bool = True, capacity: int = 1) -> None:
    svc.add_agent(c.engine, c.clock, name, queues=["support"], capacity=capacity, known_queues=[q.name for q in c.settings.queues])
    if on_queue:
        rid = svc.request(c.engine, c.clock, "presence", agent_id=name, data={"presence": "on_queue"})
        assert svc.wait_result(c.engine, rid, 5) == "ok"


def act(c: Components, action: backlog.Action, cid: int, **params: Any) -> None:
    data = backlog.check_params(action, params, queues=[q.name for q in c.settings.queues], agent_ids=["ann", "bob"])
    backlog.one(c.engine, c.clock, action, cid, data, by="sue", wait_s=5)


def test_connect_a_queued_conversation_to_an_absent_agent(comps: Components, router: Router) -> None:
    agent(comps, "ann", on_queue=False)
    (cid,) = deliver(comps)
    act(comps, "assign", cid, agent="ann", mode="connect")
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("connected", "ann")
    assert "supervisor_connected" in kinds(comps, cid)


def test_offer_to_another_agent_withdraws_the_current_offer(comps: Components, router: Router) -> None:
    agent(comps, "ann")
    (cid,) = deliver(comps)
    agent(comps, "bob")
    for _ in range(100):
        if conv(comps, cid).state == "alerting":
            break
        router.stop.wait(0.02)
    first = conv(comps, cid).agent_id
    other = "bob" if first == "ann" else "ann"
    act(comps, "assign", cid, agent=other, mode="offer")
    row = conv(comps, cid)
    assert (row.state, row.agent_id) == ("alerting", other)
    with comps.engine.connect() as conn:
        withdrawn = conn.execute(sa.select(events.c.data).where(events.c.kind == "offer_withdrawn", events.c.conversation_id == cid)).scalars().all()
    assert {"agent": first, "reason": "reassigned"} in withdrawn


def test_capacity_refusal_is_a_named_409_error_and_override_works(comps: Components, router: Router) -> None:
    agent(comps, "ann")
    a, b = deliver(comps, 2)
    for _ in range(100):
        if conv(comps, a).state == "alerting":
            break
        router.stop.wait(0.02)
    with pytest.raises(backlog.BacklogActionRefused, match="capacity"):
        act(comps, "assign", b, agent="ann", mode="connect")
    act(comps, "assign", b, agent="ann", mode="connect", override_capacity=True)
    assert conv(comps, b).agent_id == "ann"


def test_held_work_is_refused_not_an_error(comps: Components, router: Router) -> None:
    agent(comps, "ann", on_queue=False)
    (cid,) = deliver(comps)
    act(comps, "assign", cid, agent="ann", mode="connect")
    with pytest.raises(backlog.BacklogActionRefused, match="only waiting work"):
        act(comps, "close", cid, reason="spam")
    with pytest.raises(backlog.BacklogActionRefused, match="only waiting work"):
        act(comps, "move", cid, queue="billing")


def test_move_priority_and_close(comps: Components, router: Router) -> None:
    a, b = deliver(comps, 2)
    act(comps, "move", a, queue="billing")
    assert conv(comps, a).queue == "billing"
    act(comps, "priority", b, priority=7, skills=[["tax", 3]])
    row = conv(comps, b)
    assert (row.priority, row.skills) == (7, [["tax", 3.0]])
    assert "requirements_changed" in kinds(comps, b)
    act(comps, "close", b, reason="other", note="sent twice by mistake")
    row = conv(comps, b)
    assert (row.state, row.close_reason) == ("closed", "other: sent twice by mistake")
    assert kinds(comps, b)[-2:] == ["conversation_discarded", "conversation_closed"]
    with pytest.raises(backlog.InvalidBacklogAction):
        act(comps, "close", a, reason="other")


def _pending(c: Components) -> int:
    with c.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(routing_inbox).where(routing_inbox.c.done_at.is_(None))).scalar_one())


def test_bulk_move_of_500(comps: Components, router: Router) -> None:
    ids = waiting_rows(comps, 500)
    for _ in range(500):
        if conv(comps, ids[-1]).enqueued_at is not None and not _pending(comps):
            break
        router.stop.wait(0.02)
    data = backlog.check_params("move", {"queue": "billing"}, queues=["support", "billing"], agent_ids=[])
    results = backlog.submit(comps.engine, comps.clock, "move", [*ids, 999_999], data, by="sue", wait_s=60)
    assert [r.ok for r in results[:-1]] == [True] * 500
    assert results[-1].to_json() == {"id": 999_999, "ok": False, "error": "no conversation 999999"}
    with comps.engine.connect() as conn:
        queues = conn.execute(sa.select(conversations.c.queue).distinct()).scalars().all()
    assert queues == ["billing"]


def test_accepted_in_the_meantime_is_refused(comps: Components, router: Router) -> None:
    agent(comps, "ann")
    (cid,) = deliver(comps)
    with router.lock:  # the agent accepts and the supervisor closes, in one batch
        with comps.engine.begin() as conn:
            conn.execute(routing_inbox.insert().values(at=comps.clock(), kind="accept", agent_id="ann", conversation_id=cid, data={}))
        router.service.poll()
    with pytest.raises(backlog.BacklogActionRefused, match="connected"):
        act(comps, "close", cid, reason="spam")


def test_requeue_all_work_and_off_queue(comps: Components, router: Router) -> None:
    agent(comps, "ann", capacity=3)
    a, b = deliver(comps, 2)
    for _ in range(100):
        if conv(comps, b).state == "alerting":
            break
        router.stop.wait(0.02)
    rid = svc.request(comps.engine, comps.clock, "accept", agent_id="ann", conversation_id=a)
    assert svc.wait_result(comps.engine, rid, 5) == "ok"
    backlog.agent_request(comps.engine, comps.clock, "ann", "presence", {"presence": "offline"}, wait_s=5)
    backlog.agent_request(comps.engine, comps.clock, "ann", "requeue_agent", {}, wait_s=5)
    assert [(conv(comps, i).state, conv(comps, i).agent_id) for i in (a, b)] == [("queued", None)] * 2
    (row,) = board.agent_board(comps.engine, comps.clock())
    assert (row["id"], row["presence"], row["holding"], row["capacity"]) == ("ann", "offline", 0, 3)
    assert row["seconds_in_status"] == 0.0
    waiting = board.backlog(comps.engine, "support", comps.clock())
    assert [w["id"] for w in waiting] == [a, b]

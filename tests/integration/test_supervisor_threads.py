"""Splitting and merging conversations (services/supervisor/threads.py) with the router:
messages move with their ids, later replies follow them, waiting work leaves its
queue through the router, held work is refused, events are written, and the access
rule (`thread_agents`) grows only for the agents who handled the moved messages.
Both stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.domain.errors import NotFoundError, ThreadChangeConflict, ThreadChangeError
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services.conversations.events import STREAM_KINDS
from postroom.services.routing import RoutingService
from postroom.services.supervisor import threads
from postroom.store.schema import conversations, events, messages, thread_agents
from tests.integration.test_routing_service import Clock, ask, conv, on_queue
from tests.mailfactory import make_email

BOB = "Bob Other <bob@elsewhere.example>"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def comps(any_settings: Settings, clock: Clock) -> Iterator[Components]:
    c = build(any_settings, clock=clock)
    yield c
    c.close()


@pytest.fixture
def router(comps: Components, clock: Clock) -> RoutingService:
    r = RoutingService(comps.engine, comps.settings.queues, clock)
    r.rebuild()
    return r


def mail(c: Components, mid: str, **kw: Any) -> tuple[int, int]:
    """Deliver one email with Message-ID <mid@customer.example>: (message id, conversation id)."""
    raw = make_email(message_id=f"<{mid}@customer.example>", **kw)
    pk = c.spool().accept_sync(raw, source="smtp", envelope_to=["support@example.com"]).message_pk
    c.intake.drain()
    with c.engine.connect() as conn:
        row = conn.execute(sa.select(messages.c.conversation_id).where(messages.c.id == pk)).one()
    return pk, int(row.conversation_id)


def reply(c: Components, mid: str, to: str, **kw: Any) -> tuple[int, int]:
    return mail(c, mid, in_reply_to=f"<{to}@customer.example>", subject="Re: Printer", **kw)


def placed(c: Components, pk: int) -> tuple[int, int]:
    with c.engine.connect() as conn:
        row = conn.execute(
            sa.select(messages.c.conversation_id, messages.c.thread_id).where(messages.c.id == pk)
        ).one()
    return int(row.conversation_id), int(row.thread_id)


def kinds(c: Components, cid: int) -> list[str]:
    with c.engine.connect() as conn:
        return [
            k
            for (k,) in conn.execute(
                sa.select(events.c.kind).where(events.c.conversation_id == cid).order_by(events.c.id)
            )
        ]


def agents_of(c: Components, thread_id: int) -> set[str]:
    with c.engine.connect() as conn:
        return {
            a
            for (a,) in conn.execute(
                sa.select(thread_agents.c.agent_id).where(thread_agents.c.thread_id == thread_id)
            )
        }


def test_split_moves_the_message_and_later_ones_into_a_new_queued_conversation(
    comps: Components, router: RoutingService
) -> None:
    m1, cid = mail(comps, "a1")
    m2, _ = reply(comps, "a2", "a1")
    m3, same = reply(comps, "a3", "a2")
    assert same == cid
    router.poll()
    old_thread = conv(comps, cid).thread_id

    result = threads.split(comps.engine, comps.clock, cid, m2, "sue")

    assert result.moved == (m2, m3)
    new = result.new_conversation_id
    assert placed(comps, m1) == (cid, old_thread)
    assert placed(comps, m2) == placed(comps, m3) == (new, result.new_thread_id)
    assert result.new_thread_id != old_thread
    assert conv(comps, new).state == "queued" and conv(comps, new).queue == conv(comps, cid).queue
    assert "conversation_split" in kinds(comps, cid) and "conversation_split" in STREAM_KINDS
    assert kinds(comps, new) == ["conversation_created"]
    # The router takes the new conversation in as it would a new one.
    on_queue(comps, router, "ann")
    router.poll()
    assert conv(comps, new).state == "alerting" or conv(comps, cid).state == "alerting"
    assert router.engine.conversation(str(new)) is not None

    # A customer reply to a moved message joins the new thread; one to an earlier
    # message the original.
    late, where = reply(comps, "a4", "a3")
    assert placed(comps, late) == (new, result.new_thread_id) and where == new
    early, where = reply(comps, "a5", "a1")
    assert placed(comps, early) == (cid, old_thread)


def test_split_refuses_the_first_message_and_one_from_elsewhere(
    comps: Components, router: RoutingService
) -> None:
    m1, cid = mail(comps, "b1")
    other, _ = mail(comps, "b2", subject="Something else")
    with pytest.raises(ThreadChangeError, match="nothing would remain"):
        threads.split(comps.engine, comps.clock, cid, m1, "sue")
    with pytest.raises(ThreadChangeError, match="is not in conversation"):
        threads.split(comps.engine, comps.clock, cid, other, "sue")
    with pytest.raises(NotFoundError):
        threads.split(comps.engine, comps.clock, 999_999, m1, "sue")
    assert placed(comps, m1)[0] == cid


def test_merge_of_a_waiting_source_moves_its_messages_and_it_leaves_its_queue(
    comps: Components, router: RoutingService
) -> None:
    _, target = mail(comps, "c1")
    s1, source = mail(comps, "c2", subject="Printer still on fire")
    assert source != target
    router.poll()
    assert conv(comps, source).state == "queued"

    result = threads.merge(comps.engine, comps.clock, source, target, "sue")

    assert result.moved == (s1,) and result.source_state == "queued"
    assert placed(comps, s1) == (target, conv(comps, target).thread_id)
    assert "conversation_merged" in kinds(comps, source)
    assert "conversation_merged" in kinds(comps, target)
    router.poll()
    row = conv(comps, source)
    assert row.state == "closed" and row.close_reason == f"merged into conversation {target}"
    assert kinds(comps, source)[-1] == "conversation_closed"
    assert router.engine.conversation(str(source)) is None or (
        router.engine.conversation(str(source)).state == "closed"  # type: ignore[union-attr]
    )
    assert conv(comps, target).state == "queued"
    # A reply to the merged message threads into the target now.
    _, where = reply(comps, "c3", "c2")
    assert where == target


def test_merge_of_an_alerting_source_withdraws_its_offer(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    _, source = mail(comps, "d1")
    router.poll()
    assert conv(comps, source).state == "alerting"
    _, target = mail(comps, "d2", subject="Other")
    threads.merge(comps.engine, comps.clock, source, target, "sue")
    router.poll()
    assert "offer_withdrawn" in kinds(comps, source)
    assert conv(comps, source).state == "closed"
    router.poll()
    assert conv(comps, target).state == "alerting" and conv(comps, target).agent_id == "ann"


def test_merge_refusals(comps: Components, router: RoutingService) -> None:
    on_queue(comps, router, "ann")
    _, held = mail(comps, "e1")
    router.poll()
    assert ask(comps, router, "accept", "ann", held) == "ok"
    _, waiting = mail(comps, "e2", subject="Second")
    _, stranger = mail(comps, "e3", subject="Hello", sender=BOB)
    router.poll()
    with pytest.raises(ThreadChangeConflict, match="connected with ann"):
        threads.merge(comps.engine, comps.clock, held, waiting, "sue")
    with pytest.raises(ThreadChangeError, match="into itself"):
        threads.merge(comps.engine, comps.clock, waiting, waiting, "sue")
    with pytest.raises(ThreadChangeConflict, match="force"):
        threads.merge(comps.engine, comps.clock, stranger, waiting, "sue")
    assert conv(comps, stranger).state != "closed"
    # Into a closed conversation: refused; with force, different customers merge.
    with comps.engine.begin() as conn:
        conn.execute(conversations.update().where(conversations.c.id == held).values(state="closed"))
    with pytest.raises(ThreadChangeConflict, match="is closed"):
        threads.merge(comps.engine, comps.clock, waiting, held, "sue")
    forced = threads.merge(comps.engine, comps.clock, stranger, waiting, "sue", force=True)
    assert forced.forced


def test_access_follows_the_moved_messages_only_for_the_agents_who_handled_them(
    comps: Components, router: RoutingService
) -> None:
    on_queue(comps, router, "ann")
    _, cid = mail(comps, "f1")
    router.poll()
    assert ask(comps, router, "accept", "ann", cid) == "ok"
    m2, _ = reply(comps, "f2", "f1")
    split = threads.split(comps.engine, comps.clock, cid, m2, "sue")
    assert agents_of(comps, split.new_thread_id) == {"ann"}

    # Ann ends her conversation; Bob (another agent) handles another customer exchange.
    assert ask(comps, router, "end", "ann", cid) == "ok"
    assert ask(comps, router, "wrapup", "ann", cid, code="") == "ok"
    on_queue(comps, router, "bob")
    router.poll()  # the split conversation is offered to someone
    _, target = mail(comps, "f3", subject="A new question")
    router.poll()
    holder = conv(comps, target).agent_id
    assert holder in ("ann", "bob")
    source_thread = conv(comps, cid).thread_id
    target_thread = conv(comps, target).thread_id
    before_source = agents_of(comps, source_thread)
    threads.merge(comps.engine, comps.clock, cid, target, "sue")
    # Ann handled the merged messages: she takes part in the target thread; nobody
    # gains the source's own thread.
    assert "ann" in agents_of(comps, target_thread)
    assert agents_of(comps, source_thread) == before_source


def test_a_conversation_merged_away_can_be_neither_source_nor_target_again(
    comps: Components, router: RoutingService
) -> None:
    """Two merges of the same pair in opposite directions: the second is refused
    (the rows are locked, so on PostgreSQL it waits for the first and then sees it),
    also before the router has closed the first one's source."""
    _, a = mail(comps, "g1")
    _, b = mail(comps, "g2", subject="Same again")
    _, c = mail(comps, "g3", subject="And again")
    threads.merge(comps.engine, comps.clock, a, b, "sue")
    with pytest.raises(ThreadChangeConflict, match=f"merged into conversation {b} already"):
        threads.merge(comps.engine, comps.clock, b, a, "sue")
    with pytest.raises(ThreadChangeConflict, match="already"):
        threads.merge(comps.engine, comps.clock, a, c, "sue")
    router.poll()
    assert conv(comps, a).state == "closed" and conv(comps, b).state != "closed"


def test_two_opposite_merges_at_once_cannot_both_succeed(
    comps: Components, router: RoutingService
) -> None:
    _, a = mail(comps, "h1")
    _, b = mail(comps, "h2", subject="Twice")
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def run(src: int, dst: int) -> None:
        start.wait()
        try:
            threads.merge(comps.engine, comps.clock, src, dst, "sue")
            outcomes.append("merged")
        except ThreadChangeConflict:
            outcomes.append("refused")

    workers = [threading.Thread(target=run, args=p) for p in ((a, b), (b, a))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert sorted(outcomes) == ["merged", "refused"]
    with comps.engine.connect() as conn:
        left = {
            int(cid)
            for (cid,) in conn.execute(
                sa.select(messages.c.conversation_id).where(messages.c.conversation_id.in_([a, b]))
            )
        }
    assert len(left) == 1  # every message in the one that received them

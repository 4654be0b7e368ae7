"""Which thread a message joins: only the thread's participants join by
In-Reply-To/References; a reply that arrives before the message it answers is
joined by it later. Through the intake service, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services.outbound import OutboundConfig, OutboundService
from postroom.store.schema import events, messages
from tests.mailfactory import make_email


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def comps(any_settings: Settings, clock: FakeClock) -> Iterator[Components]:
    c = build(any_settings, clock=clock)
    yield c
    c.close()


def deliver(c: Components, raw: bytes) -> sa.Row[Any]:
    acc = c.spool().accept_sync(raw, source="smtp", envelope_to=("support@example.com",))
    c.intake.drain()
    with c.engine.connect() as conn:
        r = conn.execute(sa.select(messages).where(messages.c.id == acc.message_pk)).one()
    assert r.status == "processed", r.error
    return r


def thread_created(c: Components, thread_id: int) -> dict[str, Any]:
    with c.engine.connect() as conn:
        data = conn.execute(
            sa.select(events.c.data).where(
                events.c.kind == "thread_created", events.c.thread_id == thread_id
            )
        ).scalar_one()
    assert isinstance(data, dict)
    return data


ROOT = "<root1@customer.example>"


def root_mail(**kw: Any) -> bytes:
    return make_email(message_id=ROOT, **kw)


def test_cc_colleague_replying_all_joins(comps: Components) -> None:
    first = deliver(comps, root_mail(headers={"Cc": "Bob <bob@customer.example>"}))
    reply = deliver(
        comps,
        make_email(
            sender="Bob <bob@customer.example>",
            to="support@example.com",
            headers={"Cc": "alice@customer.example"},
            subject="Re: Printer on fire",
            in_reply_to=ROOT,
            references=ROOT,
        ),
    )
    assert (reply.thread_id, reply.conversation_id) == (first.thread_id, first.conversation_id)


def test_a_colleague_in_to_joins_too(comps: Components) -> None:
    first = deliver(comps, root_mail(to="support@example.com, dave@customer.example"))
    reply = deliver(comps, make_email(sender="dave@customer.example", in_reply_to=ROOT))
    assert reply.conversation_id == first.conversation_id


def test_the_customer_joins_whatever_the_case_of_the_address(comps: Components) -> None:
    first = deliver(comps, root_mail())
    reply = deliver(comps, make_email(sender="ALICE@Customer.Example", references=ROOT))
    assert (reply.thread_id, reply.conversation_id) == (first.thread_id, first.conversation_id)


@pytest.mark.parametrize("header", ["references", "in_reply_to"])
def test_a_stranger_naming_the_thread_starts_a_new_one_and_it_is_recorded(
    comps: Components, header: str
) -> None:
    first = deliver(comps, root_mail())
    hostile = deliver(
        comps,
        make_email(
            sender="Mallory <mallory@evil.test>",
            subject="Re: Printer on fire",
            **{header: f"<unknown@elsewhere> {ROOT}" if header == "references" else ROOT},
        ),
    )
    assert hostile.thread_id != first.thread_id
    assert hostile.conversation_id != first.conversation_id
    assert thread_created(comps, hostile.thread_id) == {
        "referenced_thread": first.thread_id,
        "reason": "sender is not a participant",
    }
    # Nor did the stranger become a participant: a second try is refused again.
    again = deliver(comps, make_email(sender="mallory@evil.test", in_reply_to=ROOT))
    assert again.thread_id != first.thread_id
    assert thread_created(comps, again.thread_id)["referenced_thread"] == first.thread_id


def test_whoever_we_wrote_to_may_answer_our_message(comps: Components, clock: FakeClock) -> None:
    first = deliver(comps, root_mail())
    out = OutboundService(comps.engine, comps.blobs, OutboundConfig(), clock)
    sent = out.queue_reply(
        first.conversation_id,
        text="Forwarding to our printer partner.",
        to=["Carol <carol@partner.example>"],
    )
    carol = deliver(
        comps, make_email(sender="Carol@partner.example", in_reply_to=f"<{sent.message_id}>")
    )
    assert (carol.thread_id, carol.conversation_id) == (first.thread_id, first.conversation_id)
    # Someone we did not write to gets a thread of their own, even with our id.
    other = deliver(
        comps, make_email(sender="eve@partner.example", references=f"<{sent.message_id}>")
    )
    assert other.thread_id != first.thread_id
    assert thread_created(comps, other.thread_id)["referenced_thread"] == first.thread_id


def test_a_reply_that_arrives_first_is_joined_by_the_message_it_answers(
    comps: Components,
) -> None:
    reply = deliver(
        comps, make_email(sender="alice@customer.example", subject="Re: Printer", in_reply_to=ROOT)
    )
    root = deliver(comps, root_mail())
    assert (root.thread_id, root.conversation_id) == (reply.thread_id, reply.conversation_id)
    # and a later reply to either joins the same thread
    later = deliver(comps, make_email(in_reply_to=ROOT))
    assert later.thread_id == reply.thread_id


def test_a_chain_read_newest_first_ends_in_one_thread(comps: Components) -> None:
    mid_a = "<a@customer.example>"
    b = deliver(
        comps,
        make_email(
            sender="support@example.com",
            to="alice@customer.example",
            in_reply_to=mid_a,
            references=f"{ROOT} {mid_a}",
        ),
    )
    a = deliver(comps, make_email(message_id=mid_a, in_reply_to=ROOT, references=ROOT))
    root = deliver(comps, root_mail())
    assert a.thread_id == b.thread_id == root.thread_id


def test_a_stranger_cannot_prepare_a_thread_for_a_message_to_come(comps: Components) -> None:
    trap = deliver(
        comps,
        make_email(
            sender="mallory@evil.test",
            headers={"Cc": "alice@customer.example"},  # makes alice a participant of the trap
            in_reply_to=ROOT,
        ),
    )
    root = deliver(comps, root_mail())  # alice wrote to us, not to mallory
    assert root.thread_id != trap.thread_id


def test_a_quarantined_message_released_after_a_reply_to_it_joins_that_reply(
    comps: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postroom.services import quarantine

    def broken(*_: Any) -> Any:
        raise ValueError("boom")

    monkeypatch.setattr(comps.intake, "_decide", broken)
    acc = comps.spool().accept_sync(root_mail(), source="smtp", envelope_to=["support@example.com"])
    comps.intake.drain()
    monkeypatch.undo()
    reply = deliver(comps, make_email(in_reply_to=ROOT))
    quarantine.release(comps.engine, acc.message_pk, comps.clock)
    comps.intake.drain()
    with comps.engine.connect() as conn:
        root = conn.execute(sa.select(messages).where(messages.c.id == acc.message_pk)).one()
    assert root.status == "processed"
    assert (root.thread_id, root.conversation_id) == (reply.thread_id, reply.conversation_id)

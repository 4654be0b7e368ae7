"""Why a message joined its thread: intake records a code and ids with each inbound
message (`messages.thread_reason`), the API's message JSON carries it with its
sentence. The threading decisions themselves are test_intake_threading.py's. On
SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services.conversations import get_conversation
from postroom.services.users import User
from postroom.store.schema import conversations
from tests.integration.test_intake_threading import ROOT, FakeClock, deliver, root_mail
from tests.mailfactory import make_email


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def comps(any_settings: Settings, clock: FakeClock) -> Iterator[Components]:
    c = build(any_settings, clock=clock)
    yield c
    c.close()


def test_first_message_is_a_new_thread_with_no_match(comps: Components) -> None:
    first = deliver(comps, root_mail())
    assert first.thread_reason == {"code": "no_match"}


def test_in_reply_to_names_the_matched_message(comps: Components) -> None:
    first = deliver(comps, root_mail())
    reply = deliver(comps, make_email(in_reply_to=ROOT, references=ROOT))
    assert reply.thread_reason == {
        "code": "in_reply_to",
        "thread": first.thread_id,
        "message": first.id,
        "message_id": ROOT.strip("<>"),
    }


def test_references_alone_say_references(comps: Components) -> None:
    first = deliver(comps, root_mail())
    reply = deliver(comps, make_email(references=f"<other@elsewhere> {ROOT}"))
    assert reply.thread_reason is not None
    assert reply.thread_reason["code"] == "references"
    assert (reply.thread_reason["thread"], reply.thread_reason["message"]) == (
        first.thread_id, first.id,
    )  # fmt: skip


def test_subject_token_with_a_participant(comps: Components) -> None:
    first = deliver(comps, root_mail())
    token = f"PR-{first.thread_id}"
    again = deliver(comps, make_email(subject=f"Still broken [#{token}]"))
    assert again.thread_id == first.thread_id
    assert again.thread_reason == {
        "code": "subject_token", "thread": first.thread_id, "token": token,
    }  # fmt: skip


def test_a_stranger_gets_not_participant_naming_the_thread(comps: Components) -> None:
    first = deliver(comps, root_mail())
    hostile = deliver(comps, make_email(sender="mallory@evil.test", in_reply_to=ROOT))
    assert hostile.thread_id != first.thread_id
    assert hostile.thread_reason == {"code": "not_participant", "thread": first.thread_id}


def test_the_message_a_reply_answered_says_the_reply_arrived_first(comps: Components) -> None:
    reply = deliver(comps, make_email(subject="Re: Printer", in_reply_to=ROOT))
    root = deliver(comps, root_mail())
    assert root.thread_reason == {"code": "reply_arrived_first", "thread": reply.thread_id}


def test_a_thread_closed_too_long_ago_is_not_reopened_and_it_says_so(
    comps: Components, clock: FakeClock
) -> None:
    first = deliver(comps, root_mail())
    with comps.engine.begin() as conn:
        conn.execute(
            conversations.update()
            .where(conversations.c.id == first.conversation_id)
            .values(state="closed", closed_at=clock.now)
        )
    clock.now += timedelta(days=31)
    late = deliver(comps, make_email(in_reply_to=ROOT))
    assert late.thread_id != first.thread_id
    assert late.thread_reason == {
        "code": "reopen_window_passed", "thread": first.thread_id, "days": 30,
    }  # fmt: skip


def test_the_conversation_json_carries_the_reason_and_its_sentence(comps: Components) -> None:
    first = deliver(comps, root_mail())
    reply = deliver(comps, make_email(in_reply_to=ROOT))
    boss = User("boss", "Boss", None, "supervisor")
    conv: dict[str, Any] = get_conversation(comps.engine, boss, int(first.conversation_id))
    by_id = {m["id"]: m["thread_reason"] for m in conv["messages"]}
    assert by_id[first.id] == {"code": "no_match", "text": "new thread: no match"}
    assert by_id[reply.id]["text"] == (
        f"In-Reply-To matched message {first.id} of thread {first.thread_id}, "
        "and the sender is a participant"
    )

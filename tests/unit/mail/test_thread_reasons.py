"""The stored form of why a message joined its thread, and its sentence (mail/threading.py)."""

from __future__ import annotations

import pytest

from postroom.mail.threading import THREAD_REASONS, describe_thread_reason, thread_reason


def test_reason_keeps_code_and_ids_and_drops_nones() -> None:
    assert thread_reason("in_reply_to", thread=7, message=123, message_id=None) == {
        "code": "in_reply_to", "thread": 7, "message": 123,
    }  # fmt: skip


def test_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError):
        thread_reason("guessed")


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (thread_reason("in_reply_to", thread=7, message=123),
         "In-Reply-To matched message 123 of thread 7, and the sender is a participant"),
        (thread_reason("references", thread=7, message_id="a@b"),
         "References matched <a@b> of thread 7, and the sender is a participant"),
        (thread_reason("subject_token", thread=12, token="PR-12"),
         "subject token [#PR-12] and the sender is a participant"),
        (thread_reason("not_participant", thread=7),
         "new thread: the sender is not a participant of thread 7 that it names"),
        (thread_reason("no_match"), "new thread: no match"),
    ],
)  # fmt: skip
def test_each_reason_reads_as_a_sentence(reason: dict[str, object], text: str) -> None:
    assert describe_thread_reason(reason) == text


def test_every_code_has_a_sentence_and_junk_has_none() -> None:
    for code in THREAD_REASONS:
        assert describe_thread_reason({"code": code, "thread": 1, "days": 30})
    assert describe_thread_reason(None) is None
    assert describe_thread_reason({"code": "nonsense"}) is None
    assert describe_thread_reason("in_reply_to") is None

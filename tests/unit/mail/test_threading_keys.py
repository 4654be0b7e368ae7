"""Subject tokens and our recognizable outbound Message-IDs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postroom.mail.threading import (
    outbound_message_id,
    reference_ids,
    subject_with_token,
    thread_token,
    token_from_our_message_id,
    tokens_in_subject,
)


def test_token_in_subject_round_trip() -> None:
    subject = subject_with_token("Re: Printer", thread_token("PR", 1042))
    assert subject == "Re: Printer [#PR-1042]"
    assert subject_with_token(subject, "PR-1042") == subject  # never twice
    assert tokens_in_subject(subject, "PR") == [1042]
    assert tokens_in_subject("[#pr-7] and [#XX-9] [#PR-8]", "PR") == [7, 8]
    assert tokens_in_subject("PR-1042 without brackets", "PR") == []


@given(
    st.integers(min_value=1, max_value=10**12),
    st.text(alphabet="abcdef0123456789", min_size=8, max_size=32),
)
def test_our_message_ids_are_recognized(thread_id: int, unique: str) -> None:
    token = thread_token("PR", thread_id)
    mid = outbound_message_id(token, unique, "postroom.example")
    assert token_from_our_message_id(mid, "postroom.example") == token
    assert token_from_our_message_id(mid, "other.example") is None


def test_foreign_ids_are_not_ours() -> None:
    assert token_from_our_message_id("abc@postroom.example", "postroom.example") is None


def test_reference_ids_most_specific_first_without_repeats() -> None:
    assert reference_ids(["c"], ["a", "b", "c"]) == ["c", "b", "a"]

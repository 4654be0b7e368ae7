"""Conversation state transitions follow DESIGN.md."""

from postroom.domain.states import ConversationState as S
from postroom.domain.states import can_transition


def test_allowed_and_forbidden_transitions() -> None:
    assert can_transition(S.QUEUED, S.ALERTING)
    assert can_transition(S.ALERTING, S.QUEUED)  # declined or timed out
    assert can_transition(S.CONNECTED, S.PARKED) and can_transition(S.PARKED, S.CONNECTED)
    assert can_transition(S.QUEUED, S.CLOSED)  # discarded
    assert not can_transition(S.QUEUED, S.CONNECTED)
    assert not can_transition(S.CLOSED, S.QUEUED)
    assert not can_transition(S.WRAPUP, S.CONNECTED)

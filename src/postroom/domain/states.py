"""Conversation and message states, and which transitions are allowed.

Standard library only; no I/O. DESIGN.md ("Conversation states") is the source.
"""

from __future__ import annotations

from enum import StrEnum


class ConversationState(StrEnum):
    QUEUED = "queued"
    ALERTING = "alerting"
    CONNECTED = "connected"
    PARKED = "parked"
    WRAPUP = "wrapup"
    CLOSED = "closed"


ALLOWED_TRANSITIONS: dict[ConversationState, frozenset[ConversationState]] = {
    ConversationState.QUEUED: frozenset({ConversationState.ALERTING, ConversationState.CLOSED}),
    ConversationState.ALERTING: frozenset({ConversationState.QUEUED, ConversationState.CONNECTED}),
    ConversationState.CONNECTED: frozenset(
        {
            ConversationState.QUEUED,
            ConversationState.ALERTING,
            ConversationState.PARKED,
            ConversationState.WRAPUP,
        }
    ),
    ConversationState.PARKED: frozenset({ConversationState.CONNECTED, ConversationState.QUEUED}),
    ConversationState.WRAPUP: frozenset({ConversationState.CLOSED}),
    ConversationState.CLOSED: frozenset(),
}


def can_transition(current: ConversationState, target: ConversationState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


class MessageStatus(StrEnum):
    """Where a stored message stands in the intake pipeline."""

    PENDING = "pending"  # spooled, durable, not yet through the pipeline
    PROCESSED = "processed"  # threaded and attached to a conversation (or a bounce target)
    DUPLICATE = "duplicate"  # seen before: recorded, not re-processed
    QUARANTINED = "quarantined"  # a stage failed or the loop guard held it
    DISCARDED = "discarded"  # a rule or an operator dropped it, with a reason

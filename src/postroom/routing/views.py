"""Read-only snapshots of engine state for callers, explanations and tests.

Frozen copies, built on request; changing them changes nothing in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from postroom.routing.model import (
    ConversationState,
    OfferRule,
    Presence,
    RoutingStatus,
    SkillRequirement,
)
from postroom.routing.policy import Profile


@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    presence: Presence
    status: RoutingStatus
    not_responding: bool
    capacity: int
    free: int
    load: tuple[str, ...]  # conversations holding capacity (alerting, connected, held wrap-up)
    parked: tuple[str, ...]
    idle_since: float
    queues: frozenset[str]
    skills: tuple[tuple[str, float], ...]
    languages: frozenset[str]
    max_parked: int

    def skill_map(self) -> dict[str, float]:
        return dict(self.skills)


@dataclass(frozen=True, slots=True)
class ConversationView:
    conversation_id: str
    queue_id: str
    state: ConversationState
    priority: int
    skills: tuple[SkillRequirement, ...]
    language: str | None
    enqueued_at: float
    deadline: float
    ring: int
    profile: Profile  # requirements in the current ring
    preferred_agents: tuple[str, ...]
    preferred_open: bool
    preferred_until: float
    last_agent_id: str | None
    last_agent_at: float | None
    declined_by: tuple[str, ...]
    agent_id: str | None
    offer_deadline: float | None
    offer_direct: bool
    offer_rule: OfferRule | None
    wrapup_deadline: float | None
    park_until: float | None

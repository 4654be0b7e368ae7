"""The engine's mutable records of agents and conversations.

Plain data with derived properties; the engine is the only writer. No rules
beyond "what is free capacity" and "what is the routing status" live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postroom.routing.model import (
    AgentConfig,
    ConversationState,
    OfferRule,
    Presence,
    RoutingStatus,
    SkillRequirement,
)
from postroom.routing.policy import ConversationKey


@dataclass(slots=True, eq=False)
class AgentState:
    agent_id: str
    skills: dict[str, float]
    languages: frozenset[str]
    queues: set[str]
    capacity: int
    max_parked: int
    presence: Presence = "offline"
    not_responding: bool = False
    # Idle since: the last time the agent went on queue (or back from
    # not_responding) or let go of a piece of work (ended, wrapped up, parked,
    # transferred, withdrawn). Receiving work does not move it.
    idle_since: float = 0.0
    load: dict[str, None] = field(default_factory=dict)  # alerting, connected, held wrap-up
    parked: dict[str, None] = field(default_factory=dict)
    status: RoutingStatus = "off_queue"  # last status announced

    @classmethod
    def from_config(cls, config: AgentConfig, now: float) -> AgentState:
        return cls(
            agent_id=config.agent_id,
            skills=dict(config.skills),
            languages=config.languages,
            queues=set(config.queues),
            capacity=config.capacity,
            max_parked=config.max_parked,
            idle_since=now,
        )

    def apply(self, config: AgentConfig) -> None:
        self.skills = dict(config.skills)
        self.languages = config.languages
        self.queues = set(config.queues)
        self.capacity = config.capacity
        self.max_parked = config.max_parked

    @property
    def routable(self) -> bool:
        return self.presence == "on_queue" and not self.not_responding

    @property
    def free(self) -> int:
        """Free email capacity for routing (0 when the agent takes no routed work)."""
        # Written out (not via `routable`/max): this is read on every routing decision.
        if self.presence != "on_queue" or self.not_responding:
            return 0
        free = self.capacity - len(self.load)
        return free if free > 0 else 0

    def derived_status(self) -> RoutingStatus:
        if self.presence != "on_queue":
            return "off_queue"
        if self.not_responding:
            return "not_responding"
        return "interacting" if self.load else "idle"


@dataclass(slots=True, eq=False)
class ConversationRecord:
    conversation_id: str
    queue_id: str
    priority: int
    skills: tuple[SkillRequirement, ...]
    language: str | None
    enqueued_at: float
    deadline: float
    explicit_deadline: float | None = None
    preferred_agents: tuple[str, ...] = ()
    preferred_until: float = 0.0
    preferred_open: bool = False  # closed by the timer at preferred_until, never by reading now
    last_agent_id: str | None = None
    last_agent_at: float | None = None
    state: ConversationState = "queued"
    ring: int = 0
    # Agents who declined or missed it, in order. A tuple, not a set: almost always
    # empty (the shared `()` costs nothing per conversation) and at most a few long.
    declined_by: tuple[str, ...] = ()
    agent_id: str | None = None  # alerting, connected, wrap-up or parked with
    offer_deadline: float | None = None
    offer_direct: bool = False  # a transfer to an agent: falls back to the queue if missed
    offer_rule: OfferRule | None = None
    wrapup_deadline: float | None = None
    park_until: float | None = None
    sl_pending: bool = True  # entered the queue and not yet accepted
    # Where the waiting index holds it (written by `WaitingWork` only): the order
    # key (None: not indexed), whose last item is the requirement profile (shared
    # between conversations with equal requirements), and whether it is listed per
    # preferred agent or under its last agent.
    key: ConversationKey | None = None
    listed_preferred: tuple[str, ...] = ()
    listed_last: str | None = None

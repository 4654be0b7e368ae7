"""Small builders for routing unit tests."""

from __future__ import annotations

from collections.abc import Iterable

from postroom.routing.engine import Engine
from postroom.routing.model import (
    AgentConfig,
    AgentPresenceChanged,
    Decision,
    Offer,
    QueueConfig,
)


def agent(agent_id: str, *queues: str, capacity: int = 1, **skills: float) -> AgentConfig:
    return AgentConfig(
        agent_id,
        queues=frozenset(queues or ("q",)),
        skills=tuple(sorted(skills.items())),
        capacity=capacity,
    )


def engine(
    queues: Iterable[QueueConfig] = (QueueConfig("q"),),
    agents: Iterable[AgentConfig] = (),
    on_queue: Iterable[tuple[str, float]] = (),
) -> Engine:
    """An engine with `agents` configured (off queue) and the listed ones put on queue."""
    e = Engine(queues, agents)
    for agent_id, at in on_queue:
        e.handle(AgentPresenceChanged(at, agent_id, "on_queue"))
    return e


def offers(decisions: Iterable[Decision]) -> list[tuple[str, str]]:
    return [(d.conversation_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


def only_offer(decisions: Iterable[Decision]) -> Offer:
    found = [d for d in decisions if isinstance(d, Offer)]
    assert len(found) == 1, found
    return found[0]

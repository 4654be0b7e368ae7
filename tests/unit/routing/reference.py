"""A deliberately simple matcher for checking the indexed engine.

`ReferenceEngine` keeps the engine's event handling but replaces the matching
step with a scan over every conversation and every agent, written from the
rules in docs/routing.md without the engine's indexes or policy helpers. The
property tests require both to make identical decisions on random streams.

It also takes a `ConversationAssigned` in its own way (a connected record and
one more unit of the agent's load, with no index touched): the scans below must
then find that agent without free capacity while its load is at or above its
capacity, also above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from postroom.routing.engine import Engine, Match, _Reject
from postroom.routing.model import ConversationAssigned, OfferRule, QueueConfig
from postroom.routing.state import AgentState, ConversationRecord


def free_capacity(a: AgentState) -> int:
    if a.presence != "on_queue" or a.not_responding:
        return 0
    return max(0, a.capacity - len(a.load))


def requirements(queue: QueueConfig, c: ConversationRecord) -> tuple[dict[str, float], str | None]:
    if queue.rings and c.ring >= len(queue.rings):
        return {}, None
    dropped: set[str] = set()
    language = c.language
    for ring in queue.rings[: c.ring]:
        dropped |= ring.skills_to_remove
        if ring.remove_language:
            language = None
    needed: dict[str, float] = {}
    if queue.evaluation != "any_agent":
        for req in c.skills:
            if req.name not in dropped:
                needed[req.name] = max(needed.get(req.name, 0.0), req.min_proficiency)
    return needed, language


def meets(a: AgentState, needed: dict[str, float], language: str | None) -> bool:
    for name, minimum in needed.items():
        if name not in a.skills or a.skills[name] < minimum:
            return False
    return language is None or language in a.languages


def last_agent(engine: Engine, c: ConversationRecord) -> AgentState | None:
    queue = engine._queues[c.queue_id]
    mode = queue.last_agent_routing_mode
    if mode == "disabled" or c.last_agent_id is None or c.last_agent_at is None:
        return None
    if engine.now - c.last_agent_at > queue.last_agent_window_s:
        return None
    a = engine._agents.get(c.last_agent_id)
    if a is None or free_capacity(a) == 0 or a.agent_id in c.declined_by:
        return None
    if mode == "queue_members_only" and c.queue_id not in a.queues:
        return None
    return a


def eligible_agents(engine: Engine, c: ConversationRecord) -> list[AgentState]:
    queue = engine._queues[c.queue_id]
    needed, language = requirements(queue, c)
    found = []
    for a in engine._agents.values():
        if free_capacity(a) == 0 or c.queue_id not in a.queues:
            continue
        if not meets(a, needed, language):
            continue
        if c.preferred_open and a.agent_id not in c.preferred_agents:
            continue
        found.append(a)
    return found


def waiting_order(queue: QueueConfig, c: ConversationRecord) -> tuple[float, float, str]:
    if queue.scoring_method == "priority_only":
        return (-c.priority, c.enqueued_at, c.conversation_id)
    if queue.scoring_method == "deadline":
        return (c.deadline, c.enqueued_at, c.conversation_id)
    return (c.enqueued_at - 60.0 * c.priority, c.enqueued_at, c.conversation_id)


def has_partner(engine: Engine, c: ConversationRecord) -> bool:
    return last_agent(engine, c) is not None or bool(eligible_agents(engine, c))


def unmatched_pairs(engine: Engine) -> list[tuple[str, str]]:
    """(conversation, agent) pairs that could be matched but are not: must stay empty."""
    pairs = []
    for c in engine._convs.values():
        if c.state != "queued":
            continue
        la = last_agent(engine, c)
        if la is not None:
            pairs.append((c.conversation_id, la.agent_id))
        pairs.extend((c.conversation_id, a.agent_id) for a in eligible_agents(engine, c))
    return pairs


class ReferenceEngine(Engine):
    def _event_handlers(self) -> dict[type, Callable[[Any], None]]:
        return {**super()._event_handlers(), ConversationAssigned: self._reference_assigned}

    def _reference_assigned(self, e: ConversationAssigned) -> None:
        if e.conversation_id in self._convs:
            raise _Reject("conversation is already being routed")
        if e.queue_id not in self._queues:
            raise _Reject(f"unknown queue {e.queue_id!r}")
        if e.agent_id not in self._agents:
            raise _Reject(f"unknown agent {e.agent_id!r}")
        now = self.now
        self._convs[e.conversation_id] = ConversationRecord(
            e.conversation_id,
            e.queue_id,
            e.priority,
            e.skills,
            e.language,
            enqueued_at=now,
            deadline=self._queues[e.queue_id].service_level.due(now),
            preferred_until=now,
            state="connected",
            agent_id=e.agent_id,
            offer_rule="assigned",
            sl_pending=False,
        )
        self._agents[e.agent_id].load[e.conversation_id] = None
        self._touched.add(e.agent_id)  # its routing status follows from the load

    def _next_match(self) -> Match | None:
        heads: dict[str, ConversationRecord] = {}
        for c in self._convs.values():
            if c.state != "queued" or not has_partner(self, c):
                continue
            queue = self._queues[c.queue_id]
            best = heads.get(c.queue_id)
            if best is None or waiting_order(queue, c) < waiting_order(queue, best):
                heads[c.queue_id] = c
        if not heads:
            return None
        if all(self._queues[q].scoring_method == "deadline" for q in heads):
            chosen = min(heads.values(), key=lambda c: (c.deadline, c.queue_id, c.conversation_id))
        else:
            chosen = min(
                heads.values(),
                key=lambda c: (c.enqueued_at - 60.0 * c.priority, c.queue_id, c.conversation_id),
            )
        la = last_agent(self, chosen)
        if la is not None:
            return Match(chosen, la, "last_agent", False, False)
        queue = self._queues[chosen.queue_id]
        candidates = eligible_agents(self, chosen)
        fresh = [a for a in candidates if a.agent_id not in chosen.declined_by]
        pool = fresh or candidates

        def score(a: AgentState) -> float:
            names = {r.name for r in chosen.skills}
            if queue.evaluation != "best_skills" or not names:
                return 0.0
            return sum(a.skills.get(n, 0.0) for n in names) / len(names)

        def rank(a: AgentState) -> tuple[float, int, float, str]:
            return (-score(a), -free_capacity(a), a.idle_since, a.agent_id)

        pool.sort(key=rank)
        rule: OfferRule = "only_eligible_agent"
        if len(pool) > 1:
            first, second = rank(pool[0]), rank(pool[1])
            names: list[OfferRule] = [
                "best_skills",
                "more_free_capacity",
                "longest_idle",
                "agent_id_tiebreak",
            ]
            rule = next(
                (n for n, x, y in zip(names, first, second, strict=True) if x != y),
                "agent_id_tiebreak",
            )
        return Match(chosen, pool[0], rule, chosen.preferred_open, not fresh)

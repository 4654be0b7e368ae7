"""Routing rules as pure functions: requirements per ring, eligibility, order keys.

The engine, the explanation and the simulator share these so that they can never
disagree on what a rule means. Nothing here holds state, reads a clock or
knows about indexes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from postroom.routing.model import (
    PRIORITY_SECONDS,
    OfferRule,
    QueueConfig,
    SkillRequirement,
)

# A requirement profile: (sorted (skill, minimum) pairs, required language or None).
# Conversations with the same profile in the same queue are interchangeable for
# eligibility, which is what lets the waiting index group them.
Profile = tuple[tuple[tuple[str, float], ...], str | None]
ANY_MEMBER: Profile = ((), None)

# Order of waiting work in a queue: (first, second, conversation id, profile). The
# conversation id is unique, so the profile riding at the end never takes part in
# a comparison; it is there so that the indexes can check an agent against a
# waiting conversation without looking the conversation up.
ConversationKey = tuple[float, float, str, Profile]
AgentKey = tuple[float, int, float, str]


def active_profile(
    queue: QueueConfig,
    skills: Iterable[SkillRequirement],
    language: str | None,
    ring: int,
) -> Profile:
    """What an agent must have for a conversation in `ring` of `queue`."""
    removed: set[str] = set()
    drop_language = False
    if queue.rings:  # (computed on every enqueue: the common case skips this)
        if ring >= len(queue.rings):
            return ANY_MEMBER  # the final ring: any queue member
        for passed in queue.rings[:ring]:
            removed |= passed.skills_to_remove
            drop_language = drop_language or passed.remove_language
    if queue.evaluation == "any_agent":
        reqs: tuple[tuple[str, float], ...] = ()
    else:
        merged: dict[str, float] = {}
        for req in skills:
            if req.name not in removed:
                merged[req.name] = max(merged.get(req.name, 0.0), req.min_proficiency)
        reqs = tuple(sorted(merged.items())) if len(merged) > 1 else tuple(merged.items())
    return reqs, (None if drop_language else language)


def ring_expiry(queue: QueueConfig, enqueued_at: float, ring: int) -> float | None:
    """When a conversation in `ring` moves to the next one (None: it never does)."""
    if ring >= len(queue.rings):
        return None
    return enqueued_at + sum(r.expansion_timeout_s for r in queue.rings[: ring + 1])


def unmet(skills: Mapping[str, float], languages: Iterable[str], profile: Profile) -> list[str]:
    """Why an agent's skills and languages do not cover `profile` (empty: they do)."""
    reasons: list[str] = []
    for name, minimum in profile[0]:
        level = skills.get(name)
        if level is None:
            reasons.append(f"lacks skill {name!r}")
        elif level < minimum:
            reasons.append(f"skill {name!r} at {level:g}, needs {minimum:g}")
    if profile[1] is not None and profile[1] not in languages:
        reasons.append(f"lacks language {profile[1]!r}")
    return reasons


def satisfies(skills: Mapping[str, float], languages: Iterable[str], profile: Profile) -> bool:
    for name, minimum in profile[0]:
        level = skills.get(name)
        if level is None or level < minimum:
            return False
    return profile[1] is None or profile[1] in languages


def conversation_key(
    queue: QueueConfig,
    priority: int,
    enqueued_at: float,
    deadline: float,
    conversation_id: str,
    profile: Profile,
) -> ConversationKey:
    """Order of waiting work inside one queue: smaller goes first.

    With `timestamp_and_priority` the first item equals the cross-queue key's
    first item (`cross_queue_key`), which lets the engine compare such heads
    across queues without looking their conversations up.
    """
    if queue.scoring_method == "priority_only":
        return (-float(priority), enqueued_at, conversation_id, profile)
    if queue.scoring_method == "deadline":
        return (deadline, enqueued_at, conversation_id, profile)
    # Priority 0 (most work) keeps the enqueue time itself: one float object less per key.
    effective = enqueued_at - priority * PRIORITY_SECONDS if priority else enqueued_at
    return (effective, enqueued_at, conversation_id, profile)


def cross_queue_key(
    priority: int, enqueued_at: float, queue_id: str, conversation_id: str
) -> tuple[float, str, str]:
    """Between the heads of different queues, the oldest effective time goes first."""
    return (enqueued_at - priority * PRIORITY_SECONDS, queue_id, conversation_id)


def skill_score(skills: Mapping[str, float], requested: Iterable[SkillRequirement]) -> float:
    """Average proficiency over the requested skills (a missing skill counts as 0)."""
    names = sorted({r.name for r in requested})
    if not names:
        return 0.0
    return sum(skills.get(n, 0.0) for n in names) / len(names)


def agent_key(
    queue: QueueConfig,
    free: int,
    idle_since: float,
    agent_id: str,
    skills: Mapping[str, float],
    requested: Iterable[SkillRequirement],
) -> AgentKey:
    """Choice among eligible agents: smaller goes first.

    best_skills ranks by skill score first; every method then prefers more free
    capacity (so work spreads instead of piling on one agent), then the agent idle
    longest, then the agent id so that ties are deterministic.
    """
    score = skill_score(skills, requested) if queue.evaluation == "best_skills" else 0.0
    return (-score, -free, idle_since, agent_id)


_RULE_BY_FIELD: tuple[OfferRule, ...] = (
    "best_skills",
    "more_free_capacity",
    "longest_idle",
    "agent_id_tiebreak",
)


def deciding_rule(winner: AgentKey, runner_up: AgentKey | None) -> OfferRule:
    """The first key field that separated the winner from the next best agent."""
    if runner_up is None:
        return "only_eligible_agent"
    for index, (a, b) in enumerate(zip(winner, runner_up, strict=True)):
        if a != b:
            return _RULE_BY_FIELD[index]
    return "agent_id_tiebreak"

"""Why a conversation is where it is: eligible agents, reasons for the others, the rule.

`explain(engine, conversation_id)` reads the engine's snapshots and the rules in
`policy.py`; it changes nothing and computes nothing the engine did not.
"""

from __future__ import annotations

from dataclasses import dataclass

from postroom.routing.engine import Engine
from postroom.routing.model import ConversationState, OfferRule
from postroom.routing.policy import Profile, agent_key, deciding_rule, unmet
from postroom.routing.views import AgentView, ConversationView


@dataclass(frozen=True, slots=True)
class AgentVerdict:
    agent_id: str
    eligible: bool
    reasons: tuple[str, ...]  # why not eligible (empty when eligible)
    notes: tuple[str, ...] = ()  # facts that change the agent's rank, e.g. an earlier decline


@dataclass(frozen=True, slots=True)
class Explanation:
    conversation_id: str
    state: ConversationState
    queue_id: str
    ring: int
    requirements: Profile  # skills (name, minimum) and language in the current ring
    agent_id: str | None  # the agent it is with, or would go to now
    rule: OfferRule | None  # the rule that picked that agent
    summary: str
    agents: tuple[AgentVerdict, ...]


def _verdict(
    c: ConversationView, a: AgentView, last_agent: str | None, now_ok_last: bool
) -> AgentVerdict:
    reasons: list[str] = []
    notes: list[str] = []
    if a.presence != "on_queue":
        reasons.append(f"off queue (presence {a.presence})")
    elif a.not_responding:
        reasons.append("not responding: must go on queue again")
    elif a.free <= 0:
        reasons.append(f"no free capacity ({len(a.load)} of {a.capacity} in use)")
    if a.agent_id == last_agent and now_ok_last:
        notes.append("last agent of the thread: offered first")
        return AgentVerdict(a.agent_id, not reasons, tuple(reasons), tuple(notes))
    if c.queue_id not in a.queues:
        reasons.append(f"not a member of queue {c.queue_id!r}")
    reasons.extend(unmet(a.skill_map(), a.languages, c.profile))
    if c.preferred_open and a.agent_id not in c.preferred_agents:
        reasons.append(f"not a preferred agent (preferred window until {c.preferred_until:g})")
    if a.agent_id in c.declined_by:
        notes.append("declined or missed it before: offered only if no one else is eligible")
    if a.agent_id == last_agent:
        notes.append("last agent of the thread, but last-agent routing does not apply now")
    return AgentVerdict(a.agent_id, not reasons, tuple(reasons), tuple(notes))


def explain(engine: Engine, conversation_id: str) -> Explanation | None:
    """None when the conversation is unknown or closed."""
    c = engine.conversation(conversation_id)
    if c is None:
        return None
    queue = engine.queue(c.queue_id)
    assert queue is not None
    last_now = engine.last_agent_applies(conversation_id)
    involved = {a.agent_id for a in engine.agents() if c.queue_id in a.queues}
    involved |= set(c.preferred_agents) | set(c.declined_by)
    for extra in (c.last_agent_id, c.agent_id):
        if extra is not None:
            involved.add(extra)
    verdicts: list[AgentVerdict] = []
    views: dict[str, AgentView] = {}
    for agent_id in sorted(involved):
        a = engine.agent(agent_id)
        if a is None:
            verdicts.append(AgentVerdict(agent_id, False, ("unknown agent",)))
            continue
        views[agent_id] = a
        if c.state != "queued":
            verdicts.append(AgentVerdict(agent_id, agent_id == c.agent_id, ()))
            continue
        verdicts.append(_verdict(c, a, c.last_agent_id, last_now == agent_id))

    if c.state != "queued":
        if c.offer_rule == "assigned":
            summary = f"{c.state} with {c.agent_id}, assigned to them without an offer"
        else:
            how = c.offer_rule or "unknown rule"
            summary = f"{c.state} with {c.agent_id}, chosen by rule {how}"
        return Explanation(
            c.conversation_id, c.state, c.queue_id, c.ring, c.profile, c.agent_id,
            c.offer_rule, summary, tuple(verdicts),
        )  # fmt: skip

    if last_now is not None:
        summary = f"last-agent routing: goes to {last_now}"
        return Explanation(
            c.conversation_id, c.state, c.queue_id, c.ring, c.profile, last_now,
            "last_agent", summary, tuple(verdicts),
        )  # fmt: skip
    eligible = [views[v.agent_id] for v in verdicts if v.eligible]
    if not eligible:
        summary = "waiting: no eligible agent has free capacity"
        if c.preferred_open:
            summary += f" (only preferred agents until {c.preferred_until:g})"
        return Explanation(
            c.conversation_id, c.state, c.queue_id, c.ring, c.profile, None, None,
            summary, tuple(verdicts),
        )  # fmt: skip
    fresh = [a for a in eligible if a.agent_id not in c.declined_by] or eligible
    ranked = sorted(
        (agent_key(queue, a.free, a.idle_since, a.agent_id, a.skill_map(), c.skills), a)
        for a in fresh
    )
    rule = deciding_rule(ranked[0][0], ranked[1][0] if len(ranked) > 1 else None)
    winner = ranked[0][1].agent_id
    return Explanation(
        c.conversation_id, c.state, c.queue_id, c.ring, c.profile, winner, rule,
        f"would go to {winner} by rule {rule}", tuple(verdicts),
    )  # fmt: skip

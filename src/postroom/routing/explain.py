"""Why a conversation is where it is: eligible agents, reasons for the others, the rule.

`explain(engine, conversation_id)` reads the engine's snapshots and the rules in
`policy.py`; it changes nothing and computes nothing the engine did not.
`explain_offer` says, for one `Offer` decision just made, who was considered, the
rule that chose and why the others were passed over, compactly (counts by reason
and a capped list of names), for the router to store with the offer.
`explain_waiting` is the same verdicts for a waiting conversation from plain
snapshots (built from stored rows by a process that has no engine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from postroom.routing.engine import Engine
from postroom.routing.model import ConversationState, Offer, OfferRule, QueueConfig
from postroom.routing.policy import Profile, agent_key, deciding_rule, unmet
from postroom.routing.views import AgentView, ConversationView


@dataclass(frozen=True, slots=True)
class AgentVerdict:
    agent_id: str
    eligible: bool
    reasons: tuple[str, ...]  # why not eligible (empty when eligible)
    notes: tuple[str, ...] = ()  # facts that change the agent's rank, e.g. an earlier decline
    codes: tuple[str, ...] = ()  # the reasons as codes (REASON_CODES), in the same order


# Why an agent was passed over, as stored (the text is the edge's to render).
REASON_CODES = (
    "off_queue",
    "not_responding",
    "at_capacity",
    "not_member",
    "missing_skill",
    "missing_language",
    "not_preferred",
    "declined_before",
    "ranked_lower",
    "unknown_agent",
)


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
    c: ConversationView,
    a: AgentView,
    last_agent: str | None,
    now_ok_last: bool,
    free: int | None = None,
) -> AgentVerdict:
    """`free`: the agent's free capacity to judge by (default: the view's)."""
    reasons: list[str] = []
    codes: list[str] = []
    notes: list[str] = []
    free = a.free if free is None else free
    if a.presence != "on_queue":
        reasons.append(f"off queue (presence {a.presence})")
        codes.append("off_queue")
    elif a.not_responding:
        reasons.append("not responding: must go on queue again")
        codes.append("not_responding")
    elif free <= 0:
        in_use = len(a.load) - (free - a.free)  # offers made after this decision set aside
        reasons.append(f"no free capacity ({in_use} of {a.capacity} in use)")
        codes.append("at_capacity")
    if a.agent_id == last_agent and now_ok_last:
        notes.append("last agent of the thread: offered first")
        return AgentVerdict(a.agent_id, not reasons, tuple(reasons), tuple(notes), tuple(codes))
    if c.queue_id not in a.queues:
        reasons.append(f"not a member of queue {c.queue_id!r}")
        codes.append("not_member")
    missing = unmet(a.skill_map(), a.languages, c.profile)
    reasons.extend(missing)
    codes.extend("missing_language" if m.startswith("lacks language") else "missing_skill"
                 for m in missing)  # fmt: skip
    if c.preferred_open and a.agent_id not in c.preferred_agents:
        reasons.append(f"not a preferred agent (preferred window until {c.preferred_until:g})")
        codes.append("not_preferred")
    if a.agent_id in c.declined_by:
        notes.append("declined or missed it before: offered only if no one else is eligible")
    if a.agent_id == last_agent:
        notes.append("last agent of the thread, but last-agent routing does not apply now")
    return AgentVerdict(a.agent_id, not reasons, tuple(reasons), tuple(notes), tuple(codes))


def _involved(c: ConversationView, agents: Sequence[AgentView]) -> list[str]:
    """The agents an explanation speaks of: the queue's members, the preferred agents,
    those who declined it, its last agent and its holder."""
    involved = {a.agent_id for a in agents if c.queue_id in a.queues}
    involved |= set(c.preferred_agents) | set(c.declined_by)
    for extra in (c.last_agent_id, c.agent_id):
        if extra is not None:
            involved.add(extra)
    return sorted(involved)


def explain(engine: Engine, conversation_id: str) -> Explanation | None:
    """None when the conversation is unknown or closed."""
    c = engine.conversation(conversation_id)
    if c is None:
        return None
    queue = engine.queue(c.queue_id)
    assert queue is not None
    agents = engine.agents()
    if c.state == "queued":
        return explain_waiting(queue, c, agents, engine.last_agent_applies(conversation_id))
    by_id = {a.agent_id: a for a in agents}
    verdicts = tuple(
        AgentVerdict(agent_id, agent_id == c.agent_id, ())
        if agent_id in by_id
        else AgentVerdict(agent_id, False, ("unknown agent",), codes=("unknown_agent",))
        for agent_id in _involved(c, agents)
    )
    if c.offer_rule == "assigned":
        summary = f"{c.state} with {c.agent_id}, assigned to them without an offer"
    else:
        how = c.offer_rule or "unknown rule"
        summary = f"{c.state} with {c.agent_id}, chosen by rule {how}"
    return Explanation(
        c.conversation_id, c.state, c.queue_id, c.ring, c.profile, c.agent_id,
        c.offer_rule, summary, verdicts,
    )  # fmt: skip


def explain_waiting(
    queue: QueueConfig,
    c: ConversationView,
    agents: Sequence[AgentView],
    last_agent_now: str | None,
) -> Explanation:
    """Who could take the waiting conversation `c` and why each of the others cannot;
    who would get it now by which rule. `agents`: every agent known (snapshots);
    `last_agent_now`: the last agent if last-agent routing would pick them now."""
    by_id = {a.agent_id: a for a in agents}
    verdicts: list[AgentVerdict] = []
    for agent_id in _involved(c, agents):
        a = by_id.get(agent_id)
        if a is None:
            unknown = AgentVerdict(agent_id, False, ("unknown agent",), codes=("unknown_agent",))
            verdicts.append(unknown)
            continue
        verdicts.append(_verdict(c, a, c.last_agent_id, last_agent_now == agent_id))
    if last_agent_now is not None:
        summary = f"last-agent routing: goes to {last_agent_now}"
        return Explanation(
            c.conversation_id, c.state, c.queue_id, c.ring, c.profile, last_agent_now,
            "last_agent", summary, tuple(verdicts),
        )  # fmt: skip
    eligible = [by_id[v.agent_id] for v in verdicts if v.eligible]
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


# At most this many agents are named in a stored offer explanation (the rest are counted).
MAX_NAMED = 10


# Named first: those who nearly got it, then those further away.
_NEAR_FIRST = (
    "ranked_lower", "declined_before", "at_capacity", "not_responding",
    "missing_skill", "missing_language", "not_preferred", "off_queue",
    "not_member", "unknown_agent",
)  # fmt: skip
_NEARNESS = {code: rank for rank, code in enumerate(_NEAR_FIRST)}


@dataclass(frozen=True, slots=True)
class OfferExplanation:
    """Why one offer went to its agent, as the router stores it (`to_data`)."""

    conversation_id: str
    agent_id: str
    rule: OfferRule
    ring: int
    requirements: Profile
    considered: int  # agents looked at (members, preferred, earlier decliners, last agent)
    eligible: int  # of them, those who could have taken it (the chosen one included)
    passed_over: tuple[tuple[str, int], ...]  # (reason code, agents), each agent once
    named: tuple[tuple[str, str], ...]  # (agent, reason code), at most MAX_NAMED
    runner_up: str | None  # the next best eligible agent, when there was one
    preferred: bool
    declined_before: bool

    def to_data(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "ring": self.ring,
            "skills": [[n, m] for n, m in self.requirements[0]],
            "language": self.requirements[1],
            "considered": self.considered,
            "eligible": self.eligible,
            "passed_over": dict(self.passed_over),
            "named": [list(p) for p in self.named],
            "runner_up": self.runner_up,
            "preferred": self.preferred,
            "declined_before": self.declined_before,
        }


def explain_offer(
    engine: Engine,
    offer: Offer,
    agents: Sequence[AgentView],
    offered_after: Mapping[str, int] | None = None,
) -> OfferExplanation | None:
    """The explanation of `offer`, an `Offer` decision of the event the engine just
    handled (its state is the one after that event). `agents`: the engine's agent
    snapshots after it; `offered_after`: per agent, how many offers of the same event
    came after this one (set aside, so capacity is judged as at the decision).
    None when the conversation is no longer held."""
    c = engine.conversation(offer.conversation_id)
    if c is None:
        return None
    later = offered_after or {}
    requirements = c.profile
    if offer.rule in ("direct_transfer", "park_return"):
        return OfferExplanation(
            c.conversation_id, offer.agent_id, offer.rule, c.ring, requirements,
            1, 1, (), (), None, False, False,
        )  # fmt: skip
    queue = engine.queue(c.queue_id)
    by_id = {a.agent_id: a for a in agents}
    counts: dict[str, int] = {}
    passed: list[tuple[int, str, str]] = []  # (how near they came, agent, code)
    eligible: list[AgentView] = []
    considered = 0
    chosen_last = offer.rule == "last_agent"
    for agent_id in _involved(c, agents):
        if agent_id == offer.agent_id:
            considered += 1
            continue
        a = by_id.get(agent_id)
        considered += 1
        if a is None:
            code = "unknown_agent"
        else:
            v = _verdict(c, a, c.last_agent_id, False, a.free + later.get(agent_id, 0))
            if v.eligible:
                eligible.append(a)
                code = "declined_before" if agent_id in c.declined_by else "ranked_lower"
                if chosen_last:
                    code = "ranked_lower"
            else:
                code = v.codes[0] if v.codes else "unknown_agent"
        counts[code] = counts.get(code, 0) + 1
        passed.append((_NEARNESS.get(code, len(_NEARNESS)), agent_id, code))
    named = tuple((agent_id, code) for _, agent_id, code in sorted(passed)[:MAX_NAMED])
    runner_up: str | None = None
    if eligible and queue is not None:
        fresh = [a for a in eligible if a.agent_id not in c.declined_by] or eligible
        best = min(
            (agent_key(queue, a.free + later.get(a.agent_id, 0), a.idle_since, a.agent_id,
                       a.skill_map(), c.skills), a.agent_id)
            for a in fresh
        )  # fmt: skip
        runner_up = best[1]
    return OfferExplanation(
        c.conversation_id,
        offer.agent_id,
        offer.rule,
        c.ring,
        requirements,
        considered,
        len(eligible) + 1,
        tuple(sorted(counts.items())),
        named,
        runner_up,
        offer.preferred,
        offer.declined_before,
    )

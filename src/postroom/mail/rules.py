"""Evaluate a route's ordered rules against one parsed message. Pure.

Conditions look at the sender, recipients, subject, body text or any header;
actions refine queue, priority, skills, language, tags, preferred agents,
deadline, discard, auto-ack. `explain` says rule by rule and condition by
condition what happened (the admin dry run); `decide` is its decision.
No I/O; regexes come from configuration and were compiled-checked on load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from postroom.domain.routes import Condition, Route, RoutingDecision, Rule
from postroom.mail.model import ParsedMessage


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _values(field: str, msg: ParsedMessage, recipients: Sequence[str]) -> list[str]:
    name = field.lower()
    if name == "sender":
        return [msg.from_.address] if msg.from_ else []
    if name == "recipient":
        return [*recipients, *(a.address for a in (*msg.to, *msg.cc))]
    if name == "subject":
        return [msg.subject]
    if name == "body":
        return [msg.text]
    if name.startswith("header:"):
        wanted = name.partition(":")[2].strip()
        return [v for k, v in msg.headers if k.lower() == wanted]
    raise ValueError(f"unknown rule field {field!r}")


def _test(op: str, value: str, candidates: Iterable[str]) -> bool:
    needle = value.lower()
    for cand in candidates:
        low = cand.lower()
        if op == "contains" and needle in low:
            return True
        if op == "equals" and needle == low.strip():
            return True
        if op == "domain":
            domain = low.strip().rpartition("@")[2].rstrip(">")
            if domain == needle or domain.endswith("." + needle):
                return True
        if op == "regex" and _compiled(value).search(cand):
            return True
    return False


def condition_matches(cond: Condition, msg: ParsedMessage, recipients: Sequence[str]) -> bool:
    hit = _test(cond.op, cond.value, _values(cond.field, msg, recipients))
    return hit != cond.negate


def rule_matches(rule: Rule, msg: ParsedMessage, recipients: Sequence[str]) -> bool:
    return _combine(rule, [condition_matches(c, msg, recipients) for c in rule.conditions])


def _combine(rule: Rule, results: Sequence[bool]) -> bool:
    return all(results) if rule.match == "all" else any(results)


def message_recipients(envelope_to: Sequence[str], msg: ParsedMessage) -> list[str]:
    """The addresses a message is routed by: the envelope's, else To and Cc with
    Delivered-To (or X-Original-To) first."""
    recipients = list(envelope_to)
    if not recipients:
        recipients = [a.address for a in (*msg.to, *msg.cc)]
        delivered = msg.header("Delivered-To") or msg.header("X-Original-To")
        if delivered:
            recipients.insert(0, delivered.strip().strip("<>").lower())
    return recipients


# What happened to one rule in an explanation.
MATCHED, NOT_MATCHED, SKIPPED, DISABLED = "matched", "not_matched", "skipped", "disabled"


@dataclass(frozen=True, slots=True)
class ConditionResult:
    condition: Condition
    matched: bool  # after `negate`


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule in order: matched, not matched, skipped (an earlier rule stopped or
    discarded; `because` names it) or disabled (kept in its place, never evaluated)."""

    rule: Rule
    status: str
    conditions: tuple[ConditionResult, ...] = ()
    because: str | None = None

    @property
    def matched(self) -> bool:
        return self.status == MATCHED


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: RoutingDecision
    rules: tuple[RuleResult, ...]


def explain(
    route: Route,
    rules: Sequence[Rule | tuple[Rule, bool]],
    msg: ParsedMessage,
    recipients: Sequence[str],
) -> Explanation:
    """What `decide` does, rule by rule: every condition's result, which rules
    matched, and which were skipped after a `stop` or `discard` (or are disabled:
    give those as `(rule, False)`). `decide` is this function's decision."""
    queue, priority, skills = route.queue, route.priority, route.skills
    language, auto_ack = route.language, route.auto_ack
    preferred, window = route.preferred_agents, route.preferred_window_s
    deadline = route.deadline_s
    tags: list[str] = []
    matched: list[str] = []
    results: list[RuleResult] = []
    discard: str | None = None
    ended_by: str | None = None  # the rule that stopped evaluation
    for item in rules:
        rule, enabled = item if isinstance(item, tuple) else (item, True)
        if not enabled:
            results.append(RuleResult(rule, DISABLED))
            continue
        if ended_by is not None:
            results.append(RuleResult(rule, SKIPPED, because=ended_by))
            continue
        conds = tuple(
            ConditionResult(c, condition_matches(c, msg, recipients)) for c in rule.conditions
        )
        if not _combine(rule, [c.matched for c in conds]):
            results.append(RuleResult(rule, NOT_MATCHED, conds))
            continue
        results.append(RuleResult(rule, MATCHED, conds))
        matched.append(rule.name)
        act = rule.actions
        queue = act.queue or queue
        priority = act.priority if act.priority is not None else priority
        skills = act.skills if act.skills is not None else skills
        language = act.language or language
        auto_ack = act.auto_ack or auto_ack
        preferred = act.preferred_agents if act.preferred_agents is not None else preferred
        window = act.preferred_window_s if act.preferred_window_s is not None else window
        deadline = act.deadline_s if act.deadline_s is not None else deadline
        tags.extend(t for t in act.tags if t not in tags)
        if act.discard:
            discard = act.discard
            ended_by = rule.name
        elif act.stop:
            ended_by = rule.name
    decision = RoutingDecision(
        route_address=route.address,
        queue=queue,
        priority=priority,
        skills=skills,
        language=language,
        reply_from=route.reply_from,
        auto_ack=auto_ack,
        tags=tuple(tags),
        discard_reason=discard,
        matched_rules=tuple(matched),
        preferred_agents=preferred,
        preferred_window_s=window if preferred else 0.0,
        deadline_s=deadline,
    )
    return Explanation(decision, tuple(results))


def decide(
    route: Route, rules: Sequence[Rule], msg: ParsedMessage, recipients: Sequence[str]
) -> RoutingDecision:
    """Start from the route's attributes and apply every matching rule in order."""
    return explain(route, rules, msg, recipients).decision

"""Route matching and ordered rules: conditions, actions, discard and stop."""

from __future__ import annotations

from typing import Any

from postroom.domain.routes import Condition, Route, Rule, RuleActions, find_route
from postroom.mail.model import ParsedMessage
from postroom.mail.parse import parse_message
from postroom.mail.rules import decide, rule_matches
from tests.mailfactory import make_email

ROUTE = Route(
    address="support@example.com", queue="support", priority=1, skills=(("english", 2.0),)
)


def msg(**kw: str) -> ParsedMessage:
    return parse_message(make_email(**kw))  # type: ignore[arg-type]


def rule(*conds: Condition, match: str = "all", **actions: Any) -> Rule:
    return Rule("r", tuple(conds), RuleActions(**actions), match=match)


def test_exact_route_wins_over_wildcard_regardless_of_order() -> None:
    wild = Route(address="*@example.com", queue="general")
    assert find_route([wild, ROUTE], ["SUPPORT@Example.com"]) == ROUTE
    assert find_route([wild, ROUTE], ["sales@example.com"]) == wild
    assert find_route([wild, ROUTE], ["x@example.org"]) is None
    assert find_route([wild], ["x@sub.example.com"]) is None


def test_route_attributes_without_rules() -> None:
    d = decide(ROUTE, [], msg(), ["support@example.com"])
    assert (d.queue, d.priority, d.skills, d.tags) == ("support", 1, (("english", 2.0),), ())


def test_conditions_contains_regex_domain_equals_and_negate() -> None:
    m = msg(sender="Bob <bob@shop.vip.example>", subject="URGENT: Invoice 42 missing")
    rcpts = ["support@example.com"]
    assert rule_matches(rule(Condition("subject", "contains", "invoice")), m, rcpts)
    assert rule_matches(rule(Condition("subject", "regex", r"invoice \d+")), m, rcpts)
    assert rule_matches(rule(Condition("sender", "domain", "vip.example")), m, rcpts)
    assert not rule_matches(rule(Condition("sender", "domain", "ip.example")), m, rcpts)
    assert rule_matches(rule(Condition("recipient", "equals", "support@example.com")), m, rcpts)
    assert rule_matches(rule(Condition("body", "contains", "printer")), m, rcpts)
    assert rule_matches(rule(Condition("header:Subject", "contains", "urgent")), m, rcpts)
    assert not rule_matches(
        rule(Condition("subject", "contains", "invoice", negate=True)), m, rcpts
    )


def test_match_all_versus_any() -> None:
    m = msg(subject="hello")
    yes, no = Condition("subject", "contains", "hello"), Condition("subject", "contains", "bye")
    assert not rule_matches(rule(yes, no), m, [])
    assert rule_matches(rule(yes, no, match="any"), m, [])


def test_rules_apply_in_order_and_stop_ends_evaluation() -> None:
    m = msg(subject="refund please")
    rules = [
        rule(Condition("subject", "contains", "refund"), queue="billing", tags=("money",)),
        rule(Condition("subject", "contains", "please"), priority=3, stop=True),
        rule(Condition("subject", "contains", "refund"), queue="never"),
    ]
    d = decide(ROUTE, rules, m, [])
    assert (d.queue, d.priority, d.tags) == ("billing", 3, ("money",))
    assert len(d.matched_rules) == 2


def test_discard_records_reason_and_stops() -> None:
    rules = [rule(Condition("subject", "contains", "win"), discard="spam"), rule(queue="later")]
    d = decide(ROUTE, rules, msg(subject="You win"), [])
    assert d.discard_reason == "spam" and d.queue == "support"


def test_skills_language_and_auto_ack_override() -> None:
    r = rule(
        Condition("subject", "contains", "hola"),
        skills=(("spanish", 3.0),),
        language="es",
        auto_ack="Hola {reference}",
    )
    d = decide(ROUTE, [r], msg(subject="hola"), [])
    assert (d.skills, d.language, d.auto_ack) == ((("spanish", 3.0),), "es", "Hola {reference}")


def test_preferred_agents_and_deadline_come_from_the_route_and_rules_replace_them() -> None:
    route = Route(
        address="support@example.com",
        queue="support",
        preferred_agents=("bob",),
        preferred_window_s=120.0,
        deadline_s=3600.0,
    )
    plain = decide(route, [], msg(), ["support@example.com"])
    assert (plain.preferred_agents, plain.preferred_window_s, plain.deadline_s) == (
        ("bob",),
        120.0,
        3600.0,
    )
    vip = rule(
        Condition("subject", "contains", "urgent"),
        preferred_agents=("carl", "dora"),
        preferred_window_s=30.0,
        deadline_s=600.0,
    )
    hit = decide(route, [vip], msg(subject="urgent: help"), ["support@example.com"])
    assert (hit.preferred_agents, hit.preferred_window_s, hit.deadline_s) == (
        ("carl", "dora"),
        30.0,
        600.0,
    )
    cleared = decide(
        route,
        [rule(Condition("subject", "contains", "x"), preferred_agents=())],
        msg(subject="x"),
        ["support@example.com"],
    )
    assert cleared.preferred_agents == () and cleared.preferred_window_s == 0.0
    assert decide(ROUTE, [], msg(), []).preferred_agents == ()

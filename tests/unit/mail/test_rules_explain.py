"""mail/rules.py `explain`: every rule in order with each condition's result,
rules skipped after a stop or a discard, disabled rules shown and never
evaluated; `decide` is its decision."""

from __future__ import annotations

from typing import Any

from postroom.domain.routes import Condition, Route, Rule, RuleActions
from postroom.mail.model import ParsedMessage
from postroom.mail.parse import parse_message
from postroom.mail.rules import (
    DISABLED,
    MATCHED,
    NOT_MATCHED,
    SKIPPED,
    decide,
    explain,
    message_recipients,
)
from tests.mailfactory import make_email

ROUTE = Route(address="support@example.com", queue="support", priority=1, auto_ack="Hi")


def msg(**kw: Any) -> ParsedMessage:
    return parse_message(make_email(**kw))


def rule(name: str, *conds: Condition, match: str = "all", **actions: Any) -> Rule:
    return Rule(name, tuple(conds), RuleActions(**actions), match=match)  # type: ignore[arg-type]


URGENT = Condition("subject", "contains", "urgent")
VIP = Condition("sender", "domain", "vip.example")


def test_each_condition_is_reported_and_the_rule_follows_all_or_any() -> None:
    m = msg(subject="Urgent: help", sender="a@shop.example")
    both = rule("both", URGENT, VIP, priority=5)
    either = rule("either", URGENT, VIP, match="any", tags=("x",))
    out = explain(ROUTE, [both, either], m, ["support@example.com"])
    first, second = out.rules
    assert first.status == NOT_MATCHED and [c.matched for c in first.conditions] == [True, False]
    assert second.status == MATCHED and [c.matched for c in second.conditions] == [True, False]
    assert out.decision.priority == 1 and out.decision.tags == ("x",)


def test_rules_after_stop_or_discard_are_skipped_with_the_rule_that_ended_it() -> None:
    m = msg(subject="urgent casino")
    rules = [
        rule("stopper", URGENT, priority=9, stop=True),
        rule("later", tags=("late",)),
    ]
    out = explain(ROUTE, rules, m, [])
    assert [r.status for r in out.rules] == [MATCHED, SKIPPED]
    assert out.rules[1].because == "stopper" and out.rules[1].conditions == ()
    assert out.decision.priority == 9 and out.decision.tags == ()
    out = explain(ROUTE, [rule("drop", URGENT, discard="spam"), rule("later", tags=("t",))], m, [])
    assert out.decision.discard_reason == "spam" and out.rules[1].because == "drop"


def test_disabled_rules_are_shown_and_never_evaluated() -> None:
    m = msg(subject="urgent")
    off = rule("off", URGENT, priority=99)
    out = explain(ROUTE, [(off, False), rule("on", URGENT, priority=3)], m, [])
    assert [r.status for r in out.rules] == [DISABLED, MATCHED]
    assert out.rules[0].conditions == () and out.decision.priority == 3


def test_negated_condition_reports_the_result_after_negate() -> None:
    m = msg(subject="hello")
    out = explain(ROUTE, [rule("r", Condition("subject", "contains", "urgent", negate=True))], m, [])
    assert out.rules[0].conditions[0].matched is True and out.rules[0].matched


def test_decide_is_explains_decision() -> None:
    m = msg(subject="urgent", sender="x@vip.example")
    rules = [rule("a", URGENT, priority=4, tags=("u",)), rule("b", VIP, queue="vip", stop=True),
             rule("c", tags=("never",))]
    assert decide(ROUTE, rules, m, []) == explain(ROUTE, rules, m, []).decision
    assert decide(ROUTE, rules, m, []).matched_rules == ("a", "b")


def test_recipients_envelope_first_else_headers_with_delivered_to() -> None:
    m = parse_message(
        b"Delivered-To: <Sales@Example.com>\r\nTo: a@example.com\r\nCc: b@example.com\r\n"
        b"Subject: x\r\n\r\nbody\r\n"
    )
    assert message_recipients(["env@example.com"], m) == ["env@example.com"]
    assert message_recipients([], m) == ["sales@example.com", "a@example.com", "b@example.com"]

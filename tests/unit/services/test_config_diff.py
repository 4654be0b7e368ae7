"""The difference `postroom config apply` shows: per object, which fields, moves."""

from __future__ import annotations

from typing import Any

from postroom.services.admin.config_file import diff
from postroom.services.admin.schema import Configuration


def config(**data: Any) -> Configuration:
    return Configuration.model_validate(
        {"queues": [{"name": "q"}, {"name": "r"}], **data}
    )


def rules(*names: str) -> list[dict[str, Any]]:
    return [{"name": n} for n in names]


def texts(old: Configuration, new: Configuration) -> list[str]:
    return [c.text() for c in diff(old, new)]


def test_the_same_configuration_has_no_changes() -> None:
    assert diff(config(rules=rules("a", "b")), config(rules=rules("a", "b"))) == []


def test_fields_of_a_changed_queue_and_nested_fields_of_a_route() -> None:
    old = config(routes=[{"address": "a@x.example", "queue": "q",
                          "imap": {"host": "h", "user": "u", "password": "p"}}])
    new = Configuration.model_validate({
        "queues": [{"name": "q", "alert_timeout_s": 30, "wrapup_codes": ["done"]}, {"name": "r"}],
        "routes": [{"address": "a@x.example", "queue": "r",
                    "imap": {"host": "h", "user": "u", "password": "p2", "port": 143}}],
    })
    assert texts(old, new) == [
        "~ queue 'q': alert_timeout_s: 60.0 -> 30.0; wrapup_codes: [] -> [\"done\"]",
        "~ route a@x.example: imap.password changed; imap.port: 993 -> 143; queue: \"q\" -> \"r\"",
    ]


def test_added_and_removed_objects() -> None:
    old = config(routes=[{"address": "a@x.example", "queue": "q"}])
    new = Configuration.model_validate({
        "queues": [{"name": "q"}, {"name": "s"}],
        "routes": [{"address": "b@x.example", "queue": "s"}],
    })
    assert texts(old, new) == [
        "- queue 'r': removed",
        "+ queue 's': added",
        "- route a@x.example: removed",
        "+ route b@x.example: added",
    ]


def test_a_rule_moved_to_the_front_is_the_only_one_that_moved() -> None:
    assert texts(config(rules=rules("a", "b", "c", "d")), config(rules=rules("d", "a", "b", "c"))) == [
        "~ rule 'd': position: 3 -> 0"
    ]
    # A rule added in front shifts the others' indexes, but not their order.
    assert texts(config(rules=rules("a", "b")), config(rules=rules("new", "a", "b"))) == [
        "+ rule 'new': added"
    ]


def test_rules_with_the_same_name_are_matched_in_order() -> None:
    old = config(rules=[{"name": "x", "then": {"priority": 1}}, {"name": "x", "then": {"priority": 2}}])
    new = config(rules=[{"name": "x", "then": {"priority": 1}}, {"name": "x", "then": {"priority": 3}}])
    assert texts(old, new) == ["~ rule 'x #2': then.priority: 2 -> 3"]
    [change] = diff(old, new)
    assert change.action == "rule.update" and change.before and change.before["position"] == 1

"""Routes, rules and queues as configured: plain frozen values, no behaviour.

A route maps an inbound address to routing attributes; ordered rules refine
them. Evaluation lives in `postroom.mail.rules`; loading in `postroom.runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ConditionField = str  # "sender", "recipient", "subject", "body", or "header:<Name>"
ConditionOp = Literal["contains", "regex", "domain", "equals"]


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    alert_timeout_s: int = 60
    service_level_percent: float = 80.0
    service_level_seconds: int = 86400
    evaluation: str = "all_skills"
    ordering: str = "timestamp_and_priority"
    wrapup: str = "optional"
    wrapup_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImapSource:
    host: str
    user: str
    password: str
    port: int = 993
    tls: Literal["none", "starttls", "ssl"] = "ssl"
    folder: str = "INBOX"
    after_import: Literal["seen", "move", "delete", "none"] = "seen"
    move_to: str | None = None
    poll_interval_s: float = 60.0
    idle: bool = True


@dataclass(frozen=True, slots=True)
class Route:
    address: str  # exact address or "*@domain", compared case-insensitively
    queue: str
    priority: int = 0
    skills: tuple[tuple[str, float], ...] = ()  # (skill, minimum proficiency)
    language: str | None = None
    reply_from: str | None = None
    auto_ack: str | None = None  # template text; None means no acknowledgement
    imap: ImapSource | None = None

    def matches(self, address: str) -> bool:
        addr = address.strip().lower()
        pattern = self.address.strip().lower()
        if pattern.startswith("*@"):
            return addr.rpartition("@")[2] == pattern[2:]
        return addr == pattern


@dataclass(frozen=True, slots=True)
class Condition:
    field: ConditionField
    op: ConditionOp
    value: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class RuleActions:
    queue: str | None = None
    priority: int | None = None
    skills: tuple[tuple[str, float], ...] | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    discard: str | None = None  # the reason; the message is kept but not routed
    auto_ack: str | None = None  # template text that replaces the route's
    stop: bool = False  # no later rule is evaluated


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    actions: RuleActions
    match: Literal["all", "any"] = "all"


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """What route + rules decided for one message (before the ACD engine)."""

    route_address: str
    queue: str
    priority: int
    skills: tuple[tuple[str, float], ...]
    language: str | None
    reply_from: str | None
    auto_ack: str | None
    tags: tuple[str, ...] = ()
    discard_reason: str | None = None
    matched_rules: tuple[str, ...] = field(default=())


def find_route(routes: tuple[Route, ...] | list[Route], recipients: list[str]) -> Route | None:
    """First route (in order, exact before wildcard) that matches any recipient."""
    for exact in (True, False):
        for route in routes:
            if route.address.startswith("*@") == exact:
                continue
            for rcpt in recipients:
                if route.matches(rcpt):
                    return route
    return None

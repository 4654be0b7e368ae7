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
class RingConfig:
    """One bullseye ring: how long a conversation stays, what it drops on leaving."""

    expansion_timeout_s: float
    skills_to_remove: tuple[str, ...] = ()
    remove_language: bool = False


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """A service-level target: `percent` % answered within `seconds`, counted in
    calendar time or in the business hours of the calendar named `calendar`."""

    name: str
    percent: float
    seconds: float
    calendar: str | None = None


SHORT_ABANDON_S = 10.0  # the default short-abandon threshold of a queue


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue as configured; names follow the routing engine (docs/routing.md)."""

    name: str
    alert_timeout_s: float = 60.0
    service_level_percent: float = 80.0
    service_level_seconds: float = 86400.0
    evaluation: str = "all_skills"  # all_skills | best_skills | any_agent
    scoring_method: str = "timestamp_and_priority"  # | priority_only | deadline
    wrapup_prompt: str = "optional"  # | mandatory | mandatory_timeout
    wrapup_timeout_s: float = 60.0
    wrapup_codes: tuple[str, ...] = ()
    auto_answer: bool = False
    last_agent_routing_mode: str = "disabled"  # | queue_members_only | any_agent
    last_agent_window_s: float = 72 * 3600.0
    park_timeout_s: float = 24 * 3600.0
    rings: tuple[RingConfig, ...] = ()
    # The queue's signature for the composer, as templates with the canned-response
    # fields ({agent_name}, {queue_name}, ...); filled in when it is rendered.
    signature_text: str | None = None
    signature_html: str | None = None
    # Replies quote the customer's message below the text ("On ..., ... wrote:").
    quote_original: bool = True
    # The name in From ("Support" <support@example.com>); None: the queue's name,
    # "": none.
    display_name: str | None = None
    # Service-level targets, the first sets the router's deadline; none given: one
    # target from service_level_percent / service_level_seconds (`targets`).
    service_targets: tuple[TargetConfig, ...] = ()
    # An abandon after at most this many seconds of waiting does not count against
    # a target.
    short_abandon_s: float = SHORT_ABANDON_S

    @property
    def from_name(self) -> str:
        return self.name if self.display_name is None else self.display_name

    @property
    def targets(self) -> tuple[TargetConfig, ...]:
        """The queue's targets, first first (never empty)."""
        if self.service_targets:
            return self.service_targets
        return (TargetConfig("default", self.service_level_percent, self.service_level_seconds),)


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
    # Agents offered its conversations first: only they, for preferred_window_s
    # after arrival; then everyone eligible.
    preferred_agents: tuple[str, ...] = ()
    preferred_window_s: float = 300.0
    deadline_s: float | None = None  # service-level deadline after arrival; None: the queue's
    # The name in From of replies and acknowledgements of this route's conversations
    # ("Billing" <billing@example.com>); None: the queue's display name.
    reply_from_name: str | None = None

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
    preferred_agents: tuple[str, ...] | None = None  # replace the route's; () clears them
    preferred_window_s: float | None = None
    deadline_s: float | None = None
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
    preferred_agents: tuple[str, ...] = ()
    preferred_window_s: float = 0.0
    deadline_s: float | None = None


def send_address(routes: tuple[Route, ...] | list[Route], queue: str) -> tuple[Route, str] | None:
    """The route and the address a new email from `queue` is sent from, or None.

    The same address a reply gets (the route's ``reply_from``, else its own exact
    address; a ``*@domain`` route has no address of its own), taken from the
    first route in file order that names the queue and has one.
    """
    for route in routes:
        if route.queue != queue:
            continue
        if route.reply_from:
            return route, route.reply_from
        if not route.address.startswith("*@"):
            return route, route.address
    return None


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

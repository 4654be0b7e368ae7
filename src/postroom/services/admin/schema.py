"""The one schema of the configuration: queues, routes and rules.

The TOML file, the admin API, the admin pages and the database rows are all
validated by these pydantic models, with the same rules and the same
messages; `to_domain()` turns a valid model into the frozen values of
`postroom.domain.routes`, `from_domain()` goes back. The JSON a model dumps is
also the shape stored in the `queues`, `routes` and `rules` tables and the
shape of the TOML file.

Validation only: nothing here reads or writes the database or knows HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from postroom.domain.routes import (
    Condition,
    ImapSource,
    QueueConfig,
    RingConfig,
    Route,
    Rule,
    RuleActions,
)
from postroom.routing.model import MAX_RINGS

__all__ = [
    "Configuration",
    "ImapModel",
    "QueueModel",
    "RingModel",
    "RouteModel",
    "RuleModel",
    "ValidationError",
    "reference_problems",
]

# The longest span any setting accepts: 365 days (larger values are mistakes, and
# they would overflow date arithmetic).
MAX_SPAN_S = 365 * 86400.0
# Preferred windows and route deadlines: at most 30 days.
MAX_ROUTE_SECONDS = 30 * 86400.0
MAX_PRIORITY = 1_000_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("may not contain control characters (line breaks, tabs, NUL)")
    return value


def _name(value: str) -> str:
    value = _printable(value.strip())
    if not value:
        raise ValueError("may not be empty")
    if "/" in value:
        raise ValueError("may not contain '/'")
    return value


# A queue, skill, wrap-up code or agent name: one printable line.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_name)]
SkillName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]
Language = Annotated[str, Field(min_length=1, max_length=35), AfterValidator(_name)]
Proficiency = Annotated[float, Field(ge=0, le=5)]
Line = Annotated[str, Field(max_length=998), AfterValidator(_printable)]
Template = Annotated[str, Field(max_length=20_000)]
HtmlTemplate = Annotated[str, Field(max_length=100_000)]


def _address(value: str) -> str:
    addr = _printable(value.strip().lower())
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr or "@" in local:
        raise ValueError(f"{value!r} must be user@domain or *@domain")
    return addr


def _mailbox(value: str) -> str:
    addr = _address(value)
    if addr.startswith("*@"):
        raise ValueError(f"{value!r} must be one address (user@domain), not a wildcard")
    return addr


RouteAddress = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_address)]
Mailbox = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_mailbox)]


class _Model(BaseModel):
    # Types as given: a TOML string "60" is not a number, "no" is not false. Pages
    # validate their form strings with strict=False.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _skills_tuple(skills: dict[str, float] | None) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((name, float(level)) for name, level in (skills or {}).items()))


def _skills_dict(skills: Sequence[tuple[str, float]] | None) -> dict[str, float]:
    return {name: float(level) for name, level in (skills or ())}


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


# -- queues -------------------------------------------------------------------------------


class RingModel(_Model):
    """One bullseye ring: how long a conversation stays in it and what it drops on leaving."""

    expansion_timeout_s: float = Field(gt=0, le=MAX_SPAN_S)
    skills_to_remove: list[SkillName] = Field(default_factory=list, max_length=100)
    remove_language: bool = False


class QueueModel(_Model):
    """A queue and every routing setting the engine has (docs/routing.md)."""

    name: Name
    alert_timeout_s: float = Field(default=60.0, ge=7, le=3600)
    service_level_percent: float = Field(default=80.0, gt=0, le=100)
    service_level_seconds: float = Field(default=86400.0, gt=0, le=MAX_SPAN_S)
    evaluation: Literal["all_skills", "best_skills", "any_agent"] = "all_skills"
    scoring_method: Literal["timestamp_and_priority", "priority_only", "deadline"] = (
        "timestamp_and_priority"
    )
    wrapup_prompt: Literal["optional", "mandatory", "mandatory_timeout"] = "optional"
    wrapup_timeout_s: float = Field(default=60.0, gt=0, le=MAX_SPAN_S)
    wrapup_codes: list[Name] = Field(default_factory=list, max_length=200)
    auto_answer: bool = False
    last_agent_routing_mode: Literal["disabled", "queue_members_only", "any_agent"] = "disabled"
    last_agent_window_s: float = Field(default=72 * 3600.0, ge=0, le=MAX_SPAN_S)
    park_timeout_s: float = Field(default=24 * 3600.0, gt=0, le=MAX_SPAN_S)
    rings: list[RingModel] = Field(default_factory=list, max_length=MAX_RINGS)
    signature_text: Template | None = None
    signature_html: HtmlTemplate | None = None
    quote_original: bool = True
    display_name: Annotated[str, Field(max_length=200), AfterValidator(_printable)] | None = None

    @field_validator("wrapup_codes")
    @classmethod
    def _codes_unique(cls, codes: list[str]) -> list[str]:
        return _unique(codes)

    def to_domain(self) -> QueueConfig:
        return QueueConfig(
            name=self.name,
            alert_timeout_s=float(self.alert_timeout_s),
            service_level_percent=float(self.service_level_percent),
            service_level_seconds=float(self.service_level_seconds),
            evaluation=self.evaluation,
            scoring_method=self.scoring_method,
            wrapup_prompt=self.wrapup_prompt,
            wrapup_timeout_s=float(self.wrapup_timeout_s),
            wrapup_codes=tuple(self.wrapup_codes),
            auto_answer=self.auto_answer,
            last_agent_routing_mode=self.last_agent_routing_mode,
            last_agent_window_s=float(self.last_agent_window_s),
            park_timeout_s=float(self.park_timeout_s),
            rings=tuple(
                RingConfig(
                    float(r.expansion_timeout_s), tuple(r.skills_to_remove), r.remove_language
                )
                for r in self.rings
            ),
            signature_text=self.signature_text,
            signature_html=self.signature_html,
            quote_original=self.quote_original,
            display_name=self.display_name,
        )

    @classmethod
    def from_domain(cls, q: QueueConfig) -> QueueModel:
        return cls.model_validate(
            {
                "name": q.name,
                "alert_timeout_s": q.alert_timeout_s,
                "service_level_percent": q.service_level_percent,
                "service_level_seconds": q.service_level_seconds,
                "evaluation": q.evaluation,
                "scoring_method": q.scoring_method,
                "wrapup_prompt": q.wrapup_prompt,
                "wrapup_timeout_s": q.wrapup_timeout_s,
                "wrapup_codes": list(q.wrapup_codes),
                "auto_answer": q.auto_answer,
                "last_agent_routing_mode": q.last_agent_routing_mode,
                "last_agent_window_s": q.last_agent_window_s,
                "park_timeout_s": q.park_timeout_s,
                "rings": [
                    {
                        "expansion_timeout_s": r.expansion_timeout_s,
                        "skills_to_remove": list(r.skills_to_remove),
                        "remove_language": r.remove_language,
                    }
                    for r in q.rings
                ],
                "signature_text": q.signature_text,
                "signature_html": q.signature_html,
                "quote_original": q.quote_original,
                "display_name": q.display_name,
            }
        )


# -- routes -------------------------------------------------------------------------------


class ImapModel(_Model):
    """A mailbox a route polls. The password is write-only in the API (never shown)."""

    host: Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_name)]
    user: Annotated[str, Field(min_length=1, max_length=320), AfterValidator(_printable)]
    password: Annotated[str, Field(max_length=1000), AfterValidator(_printable)]
    port: int = Field(default=993, ge=1, le=65535)
    tls: Literal["none", "starttls", "ssl"] = "ssl"
    folder: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_printable)] = (
        "INBOX"
    )
    after_import: Literal["seen", "move", "delete", "none"] = "seen"
    move_to: Annotated[str, Field(max_length=500), AfterValidator(_printable)] | None = None
    poll_interval_s: float = Field(default=60.0, ge=1, le=86400)
    idle: bool = True

    @model_validator(mode="after")
    def _move_needs_folder(self) -> Self:
        if self.after_import == "move" and not self.move_to:
            raise ValueError("after_import = 'move' needs move_to (the folder to move mail to)")
        return self

    def to_domain(self) -> ImapSource:
        return ImapSource(
            host=self.host,
            user=self.user,
            password=self.password,
            port=self.port,
            tls=self.tls,
            folder=self.folder,
            after_import=self.after_import,
            move_to=self.move_to,
            poll_interval_s=float(self.poll_interval_s),
            idle=self.idle,
        )


class _Preferences(_Model):
    preferred_agents: list[Name] = Field(default_factory=list, max_length=100)
    preferred_window_s: float = Field(default=300.0, ge=0, le=MAX_ROUTE_SECONDS)
    deadline_s: float | None = Field(default=None, ge=1, le=MAX_ROUTE_SECONDS)

    @field_validator("preferred_agents")
    @classmethod
    def _agents_unique(cls, agents: list[str]) -> list[str]:
        return _unique(agents)


class RouteModel(_Preferences):
    """An inbound address (exact, or `*@domain`) and what its mail gets."""

    address: RouteAddress
    queue: Name
    priority: int = Field(default=0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    skills: dict[SkillName, Proficiency] = Field(default_factory=dict, max_length=100)
    language: Language | None = None
    reply_from: Mailbox | None = None
    auto_ack: Template | None = None
    imap: ImapModel | None = None

    def to_domain(self) -> Route:
        return Route(
            address=self.address,
            queue=self.queue,
            priority=self.priority,
            skills=_skills_tuple(self.skills),
            language=self.language,
            reply_from=self.reply_from,
            auto_ack=self.auto_ack,
            imap=self.imap.to_domain() if self.imap is not None else None,
            preferred_agents=tuple(self.preferred_agents),
            preferred_window_s=float(self.preferred_window_s),
            deadline_s=float(self.deadline_s) if self.deadline_s is not None else None,
        )

    @classmethod
    def from_domain(cls, r: Route) -> RouteModel:
        data: dict[str, Any] = {
            "address": r.address,
            "queue": r.queue,
            "priority": r.priority,
            "skills": _skills_dict(r.skills),
            "language": r.language,
            "reply_from": r.reply_from,
            "auto_ack": r.auto_ack,
            "preferred_agents": list(r.preferred_agents),
            "preferred_window_s": r.preferred_window_s,
            "deadline_s": r.deadline_s,
        }
        if r.imap is not None:
            i = r.imap
            data["imap"] = {
                "host": i.host,
                "user": i.user,
                "password": i.password,
                "port": i.port,
                "tls": i.tls,
                "folder": i.folder,
                "after_import": i.after_import,
                "move_to": i.move_to,
                "poll_interval_s": i.poll_interval_s,
                "idle": i.idle,
            }
        return cls.model_validate(data)

    def public(self) -> dict[str, Any]:
        """The route as the API and pages show it: the IMAP password is never shown,
        only whether one is set."""
        data = self.model_dump(mode="json")
        if data.get("imap"):
            data["imap"]["password"] = None
            data["imap"]["password_set"] = bool(self.imap and self.imap.password)
        return data


# -- rules --------------------------------------------------------------------------------

_FIELDS = ("sender", "recipient", "subject", "body")


class ConditionModel(_Model):
    """One test on a message (docs/intake.md, "Rules")."""

    field: Annotated[str, Field(min_length=1, max_length=200)]
    op: Literal["contains", "regex", "domain", "equals"] = "contains"
    value: Annotated[str, Field(max_length=1000)]
    negate: bool = False

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        name = value.strip()
        header = name[len("header:") :].strip() if name.lower().startswith("header:") else None
        if name not in _FIELDS and not header:
            raise ValueError("must be sender, recipient, subject, body or header:NAME")
        if header is not None and (_CONTROL.search(header) or ":" in header or " " in header):
            raise ValueError("header:NAME needs a header name without spaces or ':'")
        return f"header:{header}" if header is not None else name

    @model_validator(mode="after")
    def _regex_compiles(self) -> Self:
        if self.op == "regex":
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value is not a valid regular expression: {exc}") from None
        return self

    def to_domain(self) -> Condition:
        return Condition(self.field, self.op, self.value, self.negate)


class ActionsModel(_Model):
    """What a matching rule changes; every key is optional."""

    queue: Name | None = None
    priority: int | None = Field(default=None, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    skills: dict[SkillName, Proficiency] | None = Field(default=None, max_length=100)
    language: Language | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]] = (
        Field(default_factory=list, max_length=50)
    )
    discard: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    auto_ack: Template | None = None
    preferred_agents: list[Name] | None = Field(default=None, max_length=100)
    preferred_window_s: float | None = Field(default=None, ge=0, le=MAX_ROUTE_SECONDS)
    deadline_s: float | None = Field(default=None, ge=1, le=MAX_ROUTE_SECONDS)
    stop: bool = False

    def to_domain(self) -> RuleActions:
        return RuleActions(
            queue=self.queue,
            priority=self.priority,
            skills=_skills_tuple(self.skills) if self.skills is not None else None,
            language=self.language,
            tags=tuple(self.tags),
            discard=self.discard,
            auto_ack=self.auto_ack,
            preferred_agents=(
                tuple(_unique(self.preferred_agents))
                if self.preferred_agents is not None
                else None
            ),
            preferred_window_s=self.preferred_window_s,
            deadline_s=self.deadline_s,
            stop=self.stop,
        )


class RuleModel(_Model):
    """An ordered intake rule: conditions (`when`) and actions (`then`)."""

    name: Name
    match: Literal["all", "any"] = "all"
    when: list[ConditionModel] = Field(default_factory=list, max_length=50)
    then: ActionsModel = Field(default_factory=lambda: ActionsModel())
    enabled: bool = True

    def to_domain(self) -> Rule:
        return Rule(
            name=self.name,
            conditions=tuple(c.to_domain() for c in self.when),
            actions=self.then.to_domain(),
            match=self.match,
        )

    @classmethod
    def from_domain(cls, rule: Rule, *, enabled: bool = True) -> RuleModel:
        a = rule.actions
        then: dict[str, Any] = {
            "queue": a.queue,
            "priority": a.priority,
            "skills": _skills_dict(a.skills) if a.skills is not None else None,
            "language": a.language,
            "tags": list(a.tags),
            "discard": a.discard,
            "auto_ack": a.auto_ack,
            "preferred_agents": (
                list(a.preferred_agents) if a.preferred_agents is not None else None
            ),
            "preferred_window_s": a.preferred_window_s,
            "deadline_s": a.deadline_s,
            "stop": a.stop,
        }
        return cls.model_validate(
            {
                "name": rule.name,
                "match": rule.match,
                "when": [
                    {"field": c.field, "op": c.op, "value": c.value, "negate": c.negate}
                    for c in rule.conditions
                ],
                "then": then,
                "enabled": enabled,
            }
        )


# -- the whole configuration -----------------------------------------------------------


def reference_problems(
    queues: Sequence[QueueModel], routes: Sequence[RouteModel], rules: Sequence[RuleModel]
) -> list[str]:
    """What refers to a queue that does not exist, or is defined twice (empty: none)."""
    problems: list[str] = []
    names = [q.name for q in queues]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"queue {name!r} is defined more than once")
    addresses = [r.address for r in routes]
    for addr in sorted({a for a in addresses if addresses.count(a) > 1}):
        problems.append(f"route {addr} is defined more than once")
    known = set(names)
    for route in routes:
        if route.queue not in known:
            problems.append(
                f"route {route.address}: queue {route.queue!r} is not defined; add a queue "
                f"named {route.queue!r}"
            )
    for rule in rules:
        if rule.then.queue and rule.then.queue not in known:
            problems.append(f"rule {rule.name!r}: queue {rule.then.queue!r} is not defined")
    return problems


class Configuration(_Model):
    """Queues, routes and rules together: the `[[queues]]`, `[[routes]]` and
    `[[rules]]` of the TOML file, `postroom config export|apply`."""

    queues: list[QueueModel] = Field(default_factory=list)
    routes: list[RouteModel] = Field(default_factory=list)
    rules: list[RuleModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems = reference_problems(self.queues, self.routes, self.rules)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def describe(exc: ValidationError, where: str = "") -> str:
    """One line per problem, "queues[0].alert_timeout_s: Input should be ...", for
    the command line and the configuration file."""
    lines = []
    for error in exc.errors():
        loc = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        prefix = f"{where}.{loc}" if where and loc else (where or loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{prefix}: {message}" if prefix else message)
    return "; ".join(lines)

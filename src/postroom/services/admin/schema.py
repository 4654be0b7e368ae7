"""The one schema of the configuration: calendars, queues, routes and rules.

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
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal, Self, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from postroom.domain.calendars import WEEKDAYS, BusinessCalendar, OpenHours, zone_of
from postroom.domain.routes import (
    SHORT_ABANDON_S,
    Condition,
    ImapSource,
    QueueConfig,
    RingConfig,
    Route,
    Rule,
    RuleActions,
    TargetConfig,
)
from postroom.routing.model import MAX_RINGS

__all__ = [
    "CalendarModel",
    "Configuration",
    "HoursModel",
    "ImapChange",
    "ImapModel",
    "QueueModel",
    "RingModel",
    "RouteChange",
    "RouteModel",
    "RuleModel",
    "ServiceTargetModel",
    "ValidationError",
    "reference_problems",
]

# The longest span any setting accepts: 365 days (larger values are mistakes, and
# they would overflow date arithmetic).
MAX_SPAN_S = 365 * 86400.0
# Preferred windows and route deadlines: at most 30 days.
MAX_ROUTE_SECONDS = 30 * 86400.0
MAX_PRIORITY = 1_000_000
MAX_TARGETS = 5  # service-level targets per queue
MAX_CALENDARS = 200
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


# -- business-hours calendars --------------------------------------------------------------

_HHMM = re.compile(r"^(?:([01][0-9]|2[0-3]):([0-5][0-9])|(24):(00))$")


def _minutes(value: str) -> int:
    m = _HHMM.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
    hours, minutes = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), "0")
    return int(hours) * 60 + int(minutes)


def _hhmm(value: str) -> str:
    _minutes(value)
    return value


def _iso_day(value: Any) -> Any:
    # TOML writes dates as dates (2026-12-25), JSON as strings: both mean the day.
    return value.isoformat() if isinstance(value, date) else value


def _day(value: str) -> str:
    if len(value) != 10:
        raise ValueError(f"{value[:20]!r} is not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None


HHMM = Annotated[str, Field(max_length=5), AfterValidator(_hhmm)]
Day = Annotated[str, BeforeValidator(_iso_day), AfterValidator(_day)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class HoursModel(_Model):
    """Open on `day` from `start` to `end`, local time in the calendar's zone (`end`
    may be "24:00": open until midnight)."""

    day: Weekday
    start: HHMM
    end: HHMM

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if _minutes(self.start) >= _minutes(self.end):
            raise ValueError(
                f"{self.day} {self.start}–{self.end}: the start must come before the end"
            )
        return self

    def to_domain(self) -> OpenHours:
        return OpenHours(WEEKDAYS.index(self.day), _minutes(self.start), _minutes(self.end))


class CalendarModel(_Model):
    """A business-hours calendar: weekly open hours, holidays and an IANA time zone.
    Service-level targets name it to count their time in its open hours."""

    name: Name
    time_zone: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]
    hours: list[HoursModel] = Field(min_length=1, max_length=50)
    holidays: list[Day] = Field(default_factory=list, max_length=500)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_of(value)  # CalendarError (a ValueError) says what to write
        return value

    @field_validator("holidays")
    @classmethod
    def _days_sorted(cls, days: list[str]) -> list[str]:
        return sorted(set(days))

    @model_validator(mode="after")
    def _usable(self) -> Self:
        self.to_domain()  # overlapping hours: CalendarError (a ValueError) names them
        return self

    def to_domain(self) -> BusinessCalendar:
        return BusinessCalendar(
            self.name,
            self.time_zone,
            tuple(h.to_domain() for h in self.hours),
            frozenset(date.fromisoformat(d) for d in self.holidays),
        )


# -- queues -------------------------------------------------------------------------------


class RingModel(_Model):
    """One bullseye ring: how long a conversation stays in it and what it drops on leaving."""

    expansion_timeout_s: float = Field(gt=0, le=MAX_SPAN_S)
    skills_to_remove: list[SkillName] = Field(default_factory=list, max_length=100)
    remove_language: bool = False


class ServiceTargetModel(_Model):
    """A service-level target: `percent` % answered within `seconds`, counted in
    calendar time (`calendar` None) or in the open hours of the named calendar."""

    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]
    percent: float = Field(gt=0, le=100)
    seconds: float = Field(gt=0, le=MAX_SPAN_S)
    calendar: Name | None = None

    def to_domain(self) -> TargetConfig:
        return TargetConfig(self.name, float(self.percent), float(self.seconds), self.calendar)


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class QueueModel(_Model):
    """A queue and every routing setting the engine has (docs/routing.md)."""

    @model_validator(mode="before")
    @classmethod
    def _first_target_sets_service_level(cls, data: Any) -> Any:
        # service_level_percent/_seconds stay the first target's, for older readers.
        if isinstance(data, Mapping):
            targets = data.get("service_targets")
            if isinstance(targets, list) and targets and isinstance(targets[0], Mapping):
                first = targets[0]
                data = dict(data)
                # Only values the target itself accepts (its own error names it).
                percent, seconds = first.get("percent"), first.get("seconds")
                if _number(percent) and 0 < percent <= 100:
                    data["service_level_percent"] = percent
                if _number(seconds) and 0 < seconds <= MAX_SPAN_S:
                    data["service_level_seconds"] = seconds
        return data

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
    # 1–5 targets, the first the router's deadline; absent: one target from
    # service_level_percent / service_level_seconds (in calendar time).
    service_targets: list[ServiceTargetModel] | None = Field(
        default=None, min_length=1, max_length=MAX_TARGETS
    )
    short_abandon_s: float = Field(default=SHORT_ABANDON_S, ge=0, le=3600)

    @field_validator("wrapup_codes")
    @classmethod
    def _codes_unique(cls, codes: list[str]) -> list[str]:
        return _unique(codes)

    @field_validator("service_targets")
    @classmethod
    def _target_names_unique(
        cls, targets: list[ServiceTargetModel] | None
    ) -> list[ServiceTargetModel] | None:
        names = [t.name for t in targets or ()]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two targets are named {name!r}; give each its own name")
        return targets

    def calendar_names(self) -> list[str]:
        """The calendars the queue's targets count in."""
        return _unique([t.calendar for t in self.service_targets or () if t.calendar])

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
            service_targets=tuple(t.to_domain() for t in self.service_targets or ()),
            short_abandon_s=float(self.short_abandon_s),
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
                "service_targets": [
                    {
                        "name": t.name,
                        "percent": t.percent,
                        "seconds": t.seconds,
                        "calendar": t.calendar,
                    }
                    for t in q.service_targets
                ]
                or None,
                "short_abandon_s": q.short_abandon_s,
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
    # The name in From of this route's replies and acknowledgements; None: the queue's.
    reply_from_name: Annotated[str, Field(max_length=200), AfterValidator(_printable)] | None = None
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
            reply_from_name=self.reply_from_name,
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
            "reply_from_name": r.reply_from_name,
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


class ImapChange(ImapModel):
    """An IMAP mailbox as the API and pages take it: the password may be left out
    (None), and then the stored one is kept."""

    password: Annotated[str, Field(max_length=1000), AfterValidator(_printable)] | None = None  # type: ignore[assignment]


class RouteChange(RouteModel):
    """A route as the API and pages take it (create and update): like RouteModel,
    but the IMAP password is write-only, so an update may leave it out."""

    imap: ImapChange | None = None

    def with_password(self, stored: str | None) -> RouteModel:
        """The route to store: the password given, else `stored`. Raises
        ValidationError (at imap.password) when a mailbox has neither."""
        data = self.model_dump(mode="python")
        if data.get("imap") is not None and data["imap"].get("password") is None:
            data["imap"]["password"] = stored
        return RouteModel.model_validate(data)


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
    tags: list[Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]] = Field(
        default_factory=list, max_length=50
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
                tuple(_unique(self.preferred_agents)) if self.preferred_agents is not None else None
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


def calendar_problems(
    calendars: Sequence[CalendarModel], queues: Sequence[QueueModel]
) -> list[str]:
    """Calendars defined twice, and targets naming a calendar that is not defined
    (each with the field: queue 'NAME': service_targets[i].calendar)."""
    problems: list[str] = []
    cal_names = [c.name for c in calendars]
    for name in sorted({n for n in cal_names if cal_names.count(n) > 1}):
        problems.append(f"calendar {name!r} is defined more than once")
    known = set(cal_names)
    for q in queues:
        for i, t in enumerate(q.service_targets or ()):
            if t.calendar is not None and t.calendar not in known:
                problems.append(
                    f"queue {q.name!r}: service_targets[{i}].calendar: calendar "
                    f"{t.calendar!r} is not defined; add a [[calendars]] entry named "
                    f"{t.calendar!r} or set calendar to none (calendar time)"
                )
    return problems


def reference_problems(
    queues: Sequence[QueueModel],
    routes: Sequence[RouteModel],
    rules: Sequence[RuleModel],
    calendars: Sequence[CalendarModel] | None = None,
) -> list[str]:
    """What refers to a queue (or calendar) that does not exist, or is defined twice
    (empty: none). Calendars are checked when given."""
    problems: list[str] = [] if calendars is None else calendar_problems(calendars, queues)
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
    """Calendars, queues, routes and rules together: the `[[calendars]]`, `[[queues]]`,
    `[[routes]]` and `[[rules]]` of the TOML file, `postroom config export|apply`."""

    calendars: list[CalendarModel] = Field(default_factory=list, max_length=MAX_CALENDARS)
    queues: list[QueueModel] = Field(default_factory=list)
    routes: list[RouteModel] = Field(default_factory=list)
    rules: list[RuleModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems = reference_problems(self.queues, self.routes, self.rules, self.calendars)
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

"""The one settings object: a TOML file, then ``POSTROOM_*`` environment variables.

Reads and validates configuration; it does not open databases or sockets.
Every setting is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from postroom.domain.errors import ConfigError
from postroom.domain.routes import (
    Condition,
    ImapSource,
    QueueConfig,
    RingConfig,
    Route,
    Rule,
    RuleActions,
)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    hostname: str = "postroom.local"  # name in the SMTP greeting and EHLO reply
    max_message_size: int = 40 * 1024 * 1024
    max_recipients: int = 50
    tls_cert: str | None = None
    tls_key: str | None = None


@dataclass(frozen=True, slots=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8025


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    loop_guard_max_messages: int = 20
    loop_guard_window_s: int = 600
    reopen_window_days: int = 30
    thread_token_prefix: str = "PR"
    message_id_domain: str = "postroom.local"
    pipeline_batch: int = 100  # pending messages taken per pass
    pipeline_poll_s: float = 1.0  # how often a pipeline checks for mail nobody woke it for
    parse_timeout_s: float = 30.0  # time budget to parse one message; 0: parse inline, no limit
    max_attempts: int = 3  # starts on a message that never finish before it is quarantined
    slow_message_s: float = 2.0  # log a warning for a message that takes longer


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    poll_s: float = 0.1  # how often the router looks for requests from other processes


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    enabled: bool = True
    relay_host: str = ""  # empty: no relay; mail is written to data_dir/sent-mail (a Maildir)
    relay_port: int = 25
    relay_tls: str = "none"  # none | starttls | ssl
    relay_user: str | None = None
    relay_password: str | None = None
    max_attempts: int = 8
    retry_initial_s: float = 30.0
    retry_max_s: float = 3600.0
    max_recipients: int = 50
    max_attachments: int = 50
    max_message_size: int = 25 * 1024 * 1024
    auto_ack_window_s: int = 86400  # at most one acknowledgement per sender in this window


@dataclass(frozen=True, slots=True)
class WebSettings:
    base_url: str = "http://127.0.0.1:8025"  # how browsers reach Postroom (links, cookies)
    session_max_age_s: int = 12 * 3600
    presence_timeout_s: int = 60  # an agent whose browser is gone this long goes off queue
    login_attempts_per_minute: int = 10
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For/-Proto is
    # believed; empty: none, the peer address is the client.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "json"  # "json" or "text"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("postroom-data")
    demo: bool = False  # seed demo users and canned responses into an empty store
    database_url: str | None = None  # default: SQLite file in data_dir
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    web: WebSettings = field(default_factory=WebSettings)
    log: LogSettings = field(default_factory=LogSettings)
    queues: tuple[QueueConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'postroom.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


_SECTIONS: dict[str, type[Any]] = {
    "smtp": SmtpSettings,
    "http": HttpSettings,
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "outbound": OutboundSettings,
    "web": WebSettings,
    "log": LogSettings,
}


def sample_config_text() -> str:
    return resources.files("postroom.runtime").joinpath("sample.toml").read_text("utf-8")


def _coerce(value: Any, target: Any, where: str) -> Any:
    kind = str(target)
    try:
        if kind in ("bool", "<class 'bool'>"):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind in ("int", "<class 'int'>"):
            return int(value)
        if kind in ("float", "<class 'float'>"):
            return float(value)
        if kind in ("str | None",) and value in ("", None):
            return None
        if kind.startswith("tuple[str"):  # a TOML list, or a comma-separated variable
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(v).strip() for v in items if str(v).strip())
        return str(value) if not isinstance(value, str) else value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid {kind}") from exc


def _section(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r} (known: {', '.join(known)})")
        # TOML has types: a wrong one is refused; only environment strings are coerced.
        _check_type(value, str(known[key].type), f"{where}.{key}")
        kwargs[key] = _coerce(value, known[key].type, f"{where}.{key}")
        choices = _SECTION_CHOICES.get((where.rsplit(".", 1)[-1], key))
        if choices and kwargs[key] not in choices:
            raise ConfigError(f"{where}.{key} must be one of {', '.join(choices)}")
    return cls(**kwargs)


_SECTION_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("outbound", "relay_tls"): ("none", "starttls", "ssl"),
    ("log", "format"): ("json", "text"),
    ("log", "level"): ("DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"),
}


def _skills(raw: Any, where: str) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: skills must be a table of name = minimum proficiency")
    out = []
    for name, level in raw.items():
        if isinstance(level, bool) or not isinstance(level, int | float):
            raise ConfigError(f"{where}: skill {name!r} proficiency must be a number from 0 to 5")
        prof = float(level)
        if not 0.0 <= prof <= 5.0:
            raise ConfigError(f"{where}: skill {name!r} proficiency must be between 0 and 5")
        out.append((str(name), prof))
    return tuple(sorted(out))


_QUEUE_KEYS = {f.name for f in fields(QueueConfig)}
_RING_KEYS = {f.name for f in fields(RingConfig)}
_QUEUE_CHOICES = {
    "evaluation": ("all_skills", "best_skills", "any_agent"),
    "scoring_method": ("timestamp_and_priority", "priority_only", "deadline"),
    "wrapup_prompt": ("optional", "mandatory", "mandatory_timeout"),
    "last_agent_routing_mode": ("disabled", "queue_members_only", "any_agent"),
}


_TYPE_WORDS = {
    "bool": "a boolean (true or false)",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "str | None": "a string",
}


def _check_type(value: Any, kind: str, where: str) -> None:
    """TOML values must already have the type a setting needs: no silent coercion
    (a string "no" would otherwise count as true, "abc" as three tags)."""
    ok = True
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind in ("str", "str | None"):
        ok = isinstance(value, str) or (value is None and kind != "str")
    elif kind.startswith("tuple[str"):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        shown = _TYPE_WORDS.get(kind, "a list of strings")
        raise ConfigError(f"{where} must be {shown}, not {value!r}")


def _check_types(cls: type[Any], data: Mapping[str, Any], where: str) -> None:
    kinds = {f.name: str(f.type) for f in fields(cls)}
    for key, value in data.items():
        if key in kinds:
            _check_type(value, kinds[key], f"{where}.{key}")


def _queue(raw: Mapping[str, Any], where: str) -> QueueConfig:
    from postroom.routing.model import RoutingConfigError
    from postroom.services.routing import engine_queue

    data = dict(raw)
    _known_keys(data, _QUEUE_KEYS, where)
    if "name" not in data:
        raise ConfigError(f"{where}: a queue needs a name")
    _check_types(QueueConfig, {k: v for k, v in data.items() if k != "rings"}, where)
    if not isinstance(data.get("rings", []), list):
        raise ConfigError(f"{where}.rings must be a list of tables")
    for key, choices in _QUEUE_CHOICES.items():
        if key in data and data[key] not in choices:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(choices)}")
    if "wrapup_codes" in data:
        data["wrapup_codes"] = tuple(str(c) for c in data["wrapup_codes"])
    rings = []
    for i, ring in enumerate(data.pop("rings", ())):
        _known_keys(ring, _RING_KEYS, f"{where}.rings[{i}]")
        _check_types(RingConfig, ring, f"{where}.rings[{i}]")
        rings.append(
            RingConfig(
                expansion_timeout_s=float(ring.get("expansion_timeout_s", 0)),
                skills_to_remove=tuple(str(x) for x in ring.get("skills_to_remove", ())),
                remove_language=bool(ring.get("remove_language", False)),
            )
        )
    try:
        q = QueueConfig(**data, rings=tuple(rings))
        engine_queue(q)  # the routing engine's own range checks
    except (TypeError, ValueError, RoutingConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return q


_PREFERENCE_KEYS = ("preferred_agents", "preferred_window_s", "deadline_s")
# The longest preferred window or deadline accepted: 30 days.
_MAX_ROUTE_SECONDS = 30 * 86400.0


def _preferences(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Preferred agents, their window and a deadline (route or rule action), checked."""
    out: dict[str, Any] = {}
    if "preferred_agents" in raw:
        agents = raw["preferred_agents"]
        _check_type(agents, "tuple[str, ...]", f"{where}.preferred_agents")
        if any(not a.strip() for a in agents):
            raise ConfigError(f"{where}.preferred_agents: an agent id may not be empty")
        out["preferred_agents"] = tuple(dict.fromkeys(a.strip() for a in agents))
    for key, low in (("preferred_window_s", 0.0), ("deadline_s", 1.0)):
        if key not in raw:
            continue
        value = raw[key]
        _check_type(value, "float", f"{where}.{key}")
        if not low <= float(value) <= _MAX_ROUTE_SECONDS:
            raise ConfigError(
                f"{where}.{key} must be between {low:g} and {_MAX_ROUTE_SECONDS:g} seconds"
            )
        out[key] = float(value)
    return out


def _route(raw: Mapping[str, Any], where: str) -> Route:
    data = dict(raw)
    for required in ("address", "queue"):
        if required not in data:
            raise ConfigError(f"{where}: a route needs {required!r}")
    data["skills"] = _skills(data.get("skills"), where)
    data |= _preferences(data, where)
    imap = data.pop("imap", None)
    if imap is not None:
        _check_types(ImapSource, imap, f"{where}.imap")
        if imap.get("tls", "ssl") not in ("none", "starttls", "ssl"):
            raise ConfigError(f"{where}.imap.tls must be one of none, starttls, ssl")
        try:
            data["imap"] = ImapSource(**imap)
        except TypeError as exc:
            raise ConfigError(f"{where}.imap: {exc}") from exc
    if "priority" in data and (
        isinstance(data["priority"], bool) or not isinstance(data["priority"], int)
    ):
        raise ConfigError(f"{where}: priority must be a whole number")
    addr = str(data["address"]).strip().lower()
    if "@" not in addr:
        raise ConfigError(f"{where}: address {addr!r} must be user@domain or *@domain")
    data["address"] = addr
    try:
        return Route(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


_OPS = ("contains", "regex", "domain", "equals")


_RULE_KEYS = {"name", "when", "then", "match"}
_CONDITION_KEYS = {"field", "op", "value", "negate"}
_ACTION_KEYS = {
    "queue",
    "priority",
    "skills",
    "language",
    "tags",
    "discard",
    "auto_ack",
    "stop",
    *_PREFERENCE_KEYS,
}


def _known_keys(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def _rule(raw: Mapping[str, Any], where: str) -> Rule:
    _known_keys(raw, _RULE_KEYS, where)
    name = str(raw.get("name") or where)
    conds: list[Condition] = []
    for i, c in enumerate(raw.get("when", [])):
        cw = f"{where}.when[{i}]"
        _known_keys(c, _CONDITION_KEYS, cw)
        fld, op, value = str(c.get("field", "")), str(c.get("op", "contains")), c.get("value")
        if op not in _OPS:
            raise ConfigError(f"{cw}: op must be one of {', '.join(_OPS)}")
        if value is None:
            raise ConfigError(f"{cw}: a condition needs a value")
        if fld not in ("sender", "recipient", "subject", "body") and not fld.startswith("header:"):
            raise ConfigError(
                f"{cw}: field must be sender, recipient, subject, body or header:NAME"
            )
        if op == "regex":
            try:
                re.compile(str(value))
            except re.error as exc:
                raise ConfigError(f"{cw}: invalid regular expression: {exc}") from exc
        conds.append(Condition(fld, op, str(value), bool(c.get("negate", False))))  # type: ignore[arg-type]
    then = dict(raw.get("then", {}))
    _known_keys(then, _ACTION_KEYS, f"{where}.then")
    for key in ("queue", "language", "discard", "auto_ack"):
        if key in then and not isinstance(then[key], str):
            raise ConfigError(f"{where}.then.{key} must be a string")
    if "tags" in then:
        _check_type(then["tags"], "tuple[str, ...]", f"{where}.then.tags")
    if "stop" in then:
        _check_type(then["stop"], "bool", f"{where}.then.stop")
    if "priority" in then and (
        isinstance(then["priority"], bool) or not isinstance(then["priority"], int)
    ):
        raise ConfigError(f"{where}.then.priority must be a whole number")
    try:
        actions = RuleActions(
            queue=then.get("queue"),
            priority=int(then["priority"]) if "priority" in then else None,
            skills=_skills(then["skills"], where) if "skills" in then else None,
            language=then.get("language"),
            tags=tuple(str(t) for t in then.get("tags", ())),
            discard=then.get("discard"),
            auto_ack=then.get("auto_ack"),
            stop=bool(then.get("stop", False)),
            **_preferences(then, f"{where}.then"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.then: {exc}") from exc
    match = str(raw.get("match", "all"))
    if match not in ("all", "any"):
        raise ConfigError(f"{where}: match must be 'all' or 'any'")
    return Rule(name=name, conditions=tuple(conds), actions=actions, match=match)  # type: ignore[arg-type]


def from_mapping(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Settings:
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key} must be a table ([{key}]), not {value!r}")
            kwargs[key] = _section(_SECTIONS[key], value, key)
        elif key in ("queues", "routes", "rules") and not isinstance(value, list):
            raise ConfigError(f"{key} must be an array of tables ([[{key}]]), not {value!r}")
        elif key == "data_dir":
            _check_type(value, "str", "data_dir")
            path = Path(value)
            kwargs[key] = path if path.is_absolute() or base_dir is None else base_dir / path
        elif key == "database_url":
            _check_type(value, "str", "database_url")
            kwargs[key] = value or None
        elif key == "demo":
            _check_type(value, "bool", "demo")
            kwargs[key] = value
        elif key == "queues":
            kwargs[key] = tuple(_queue(q, f"queues[{i}]") for i, q in enumerate(value))
        elif key == "routes":
            kwargs[key] = tuple(_route(r, f"routes[{i}]") for i, r in enumerate(value))
        elif key == "rules":
            kwargs[key] = tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(value))
        else:
            raise ConfigError(f"unknown top-level setting {key!r}")
    settings = Settings(**kwargs)
    _check_references(settings)
    return settings


def _check_references(settings: Settings) -> None:
    names = {q.name for q in settings.queues}
    for route in settings.routes:
        if route.queue not in names:
            raise ConfigError(
                f"route {route.address}: queue {route.queue!r} is not defined; add a [[queues]] "
                f"entry named {route.queue!r}"
            )
    for rule in settings.rules:
        if rule.actions.queue and rule.actions.queue not in names:
            raise ConfigError(f"rule {rule.name!r}: queue {rule.actions.queue!r} is not defined")


def apply_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    """Override scalars: POSTROOM_DATA_DIR, POSTROOM_DATABASE_URL, POSTROOM_<SECTION>_<KEY>."""
    if env.get("POSTROOM_DATA_DIR"):
        settings = replace(settings, data_dir=Path(env["POSTROOM_DATA_DIR"]))
    if env.get("POSTROOM_DATABASE_URL"):
        settings = replace(settings, database_url=env["POSTROOM_DATABASE_URL"])
    for section, cls in _SECTIONS.items():
        current = getattr(settings, section)
        changes: dict[str, Any] = {}
        for f in fields(cls):
            name = f"POSTROOM_{section.upper()}_{f.name.upper()}"
            if name in env:
                changes[f.name] = _coerce(env[name], f.type, name)
        if changes:
            settings = replace(settings, **{section: replace(current, **changes)})
    known = {"POSTROOM_DATA_DIR", "POSTROOM_DATABASE_URL", "POSTROOM_CONFIG"}
    known |= {
        f"POSTROOM_{s.upper()}_{f.name.upper()}" for s, c in _SECTIONS.items() for f in fields(c)
    }
    for name in env:
        ours = name.startswith("POSTROOM_") and not name.startswith("POSTROOM_TEST_")
        if ours and name not in known:
            raise ConfigError(f"unknown environment variable {name}; see docs/configuration.md")
    return settings


def load(config_path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `config_path` (or $POSTROOM_CONFIG, or the sample), then the environment."""
    env = os.environ if env is None else env
    if config_path is None and env.get("POSTROOM_CONFIG"):
        config_path = Path(env["POSTROOM_CONFIG"])
    if config_path is None:
        text, base = sample_config_text(), None
    else:
        try:
            text = config_path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read configuration file {config_path}: {exc.strerror}"
            ) from exc
        base = None  # relative data_dir is relative to the working directory, like the CLI flag
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = config_path or "sample configuration"
        raise ConfigError(f"{where}: invalid TOML: {exc}") from exc
    return apply_env(from_mapping(data, base_dir=base), env)

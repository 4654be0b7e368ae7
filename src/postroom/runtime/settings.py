"""The one settings object: a TOML file, then ``POSTROOM_*`` environment variables.

Every setting is declared once, with its type, default and allowed values:
the process settings (`[smtp]`, `[http]`, ... and the top-level keys) as the
pydantic dataclasses below, the queues, routes and rules by the configuration
schema of `services/admin/schema.py`, which the admin API and pages use too,
so a mistake gets the same message wherever it is made. TOML values must have
the declared type (strict); environment variables, always text, are converted
(pydantic's lax mode). Reads and validates configuration; it does not open
databases or sockets. Every setting is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic.dataclasses import dataclass as declared

from postroom.domain.errors import ConfigError
from postroom.domain.routes import QueueConfig, Route, Rule
from postroom.services.admin.schema import Configuration, describe

# TOML has types: a value of the wrong one is refused, never converted (a string
# "no" would otherwise count as true, "abc" as three tags). Only the environment's
# strings are converted (`apply_env` validates them in lax mode).
_STRICT = ConfigDict(strict=True, extra="forbid")


def _from_env(info: ValidationInfo) -> bool:
    return isinstance(info.context, Mapping) and bool(info.context.get("env"))


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _text_list(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str) and _from_env(info):  # POSTROOM_WEB_TRUSTED_PROXIES=a,b
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple):
        return tuple(value)
    raise ValueError("must be a list of strings")


# A string that may be unset; an empty value unsets it.
OptionalText = Annotated[str | None, BeforeValidator(_empty_is_none)]
# A TOML list of strings; in the environment a comma-separated value.
TextList = Annotated[tuple[str, ...], BeforeValidator(_text_list)]


@declared(frozen=True, slots=True, config=_STRICT)
class SmtpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    hostname: str = "postroom.local"  # name in the SMTP greeting and EHLO reply
    max_message_size: int = 40 * 1024 * 1024
    max_recipients: int = 50
    tls_cert: OptionalText = None
    tls_key: OptionalText = None


@declared(frozen=True, slots=True, config=_STRICT)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8025


@declared(frozen=True, slots=True, config=_STRICT)
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


@declared(frozen=True, slots=True, config=_STRICT)
class RoutingSettings:
    poll_s: float = 0.1  # how often the router looks for requests from other processes


@declared(frozen=True, slots=True, config=_STRICT)
class OutboundSettings:
    enabled: bool = True
    relay_host: str = ""  # empty: no relay; mail is written to data_dir/sent-mail (a Maildir)
    relay_port: int = 25
    relay_tls: Literal["none", "starttls", "ssl"] = "none"
    relay_user: OptionalText = None
    relay_password: OptionalText = None
    max_attempts: int = 8
    retry_initial_s: float = 30.0
    retry_max_s: float = 3600.0
    max_recipients: int = 50
    max_attachments: int = 50
    max_message_size: int = 25 * 1024 * 1024
    auto_ack_window_s: int = 86400  # at most one acknowledgement per sender in this window


@declared(frozen=True, slots=True, config=_STRICT)
class WebSettings:
    base_url: str = "http://127.0.0.1:8025"  # how browsers reach Postroom (links, cookies)
    session_max_age_s: int = 12 * 3600
    presence_timeout_s: int = 60  # an agent whose browser is gone this long goes off queue
    login_attempts_per_minute: int = 10
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For/-Proto is
    # believed; empty: none, the peer address is the client.
    trusted_proxies: TextList = ()
    # Addresses (or networks) that may scrape GET /metrics without a token; empty:
    # only callers with the read_metrics permission (docs/operations.md).
    metrics_allow: TextList = ()


@declared(frozen=True, slots=True, config=_STRICT)
class LogSettings:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = (
        "INFO"
    )
    format: Literal["json", "text"] = "json"


_SECTIONS: dict[str, type[Any]] = {
    "smtp": SmtpSettings,
    "http": HttpSettings,
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "outbound": OutboundSettings,
    "web": WebSettings,
    "log": LogSettings,
}
# The keys that hold the configuration the database keeps once seeded.
CONFIGURATION_KEYS = ("calendars", "queues", "routes", "rules")


class _TopLevel(BaseModel):
    """The file's top level: its own keys, and which sections it may have (each
    section's keys are its dataclass's)."""

    model_config = _STRICT

    data_dir: str = "postroom-data"
    demo: bool = False  # seed demo users and canned responses into an empty store
    database_url: OptionalText = None  # default: SQLite file in data_dir
    smtp: dict[str, Any] = Field(default_factory=dict)
    http: dict[str, Any] = Field(default_factory=dict)
    intake: dict[str, Any] = Field(default_factory=dict)
    routing: dict[str, Any] = Field(default_factory=dict)
    outbound: dict[str, Any] = Field(default_factory=dict)
    web: dict[str, Any] = Field(default_factory=dict)
    log: dict[str, Any] = Field(default_factory=dict)


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
    # The file's queues, routes and rules as domain values (rules: the enabled ones).
    # They seed an empty database; after that the database's are in force.
    queues: tuple[QueueConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    # The same, as the schema's models (with disabled rules); None when not from a file.
    file_configuration: Configuration | None = field(default=None, compare=False, repr=False)
    # The file read (None: the built-in sample).
    config_path: Path | None = None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'postroom.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


def sample_config_text() -> str:
    return resources.files("postroom.runtime").joinpath("sample.toml").read_text("utf-8")


def _known(cls: type[Any]) -> str:
    return ", ".join(f.name for f in fields(cls))


def _section(name: str, table: Mapping[str, Any]) -> Any:
    cls = _SECTIONS[name]
    try:
        return cls(**table)
    except ValidationError as exc:
        unknown = [e["loc"][0] for e in exc.errors() if e["type"] == "unexpected_keyword_argument"]
        if unknown:
            raise ConfigError(
                f"{name}: unknown setting {unknown[0]!r} (known: {_known(cls)})"
            ) from exc
        raise ConfigError(describe(exc, name)) from exc


def _top_level(data: Mapping[str, Any]) -> _TopLevel:
    try:
        return _TopLevel.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            key, kind, value = str(error["loc"][0]), error["type"], error["input"]
            if kind == "extra_forbidden":
                known = ", ".join([*_TopLevel.model_fields, *CONFIGURATION_KEYS])
                raise ConfigError(f"unknown top-level setting {key!r} (known: {known})") from exc
            if key in _SECTIONS and kind == "dict_type":
                raise ConfigError(f"{key} must be a table ([{key}]), not {value!r}") from exc
        raise ConfigError(describe(exc)) from exc


def configuration_from_mapping(data: Mapping[str, Any]) -> Configuration:
    """The `[[queues]]`, `[[routes]]` and `[[rules]]` of a file, validated by the
    configuration schema (the API's and the pages' rules and messages). A rule
    without a name is called `rules[N]`. Other keys are ignored here."""
    tables: dict[str, Any] = {}
    for key in CONFIGURATION_KEYS:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be an array of tables ([[{key}]]), not {value!r}")
        tables[key] = value
    tables["rules"] = [
        {"name": f"rules[{i}]", **rule}
        if isinstance(rule, Mapping) and "name" not in rule
        else rule
        for i, rule in enumerate(tables["rules"])
    ]
    try:
        return Configuration.model_validate(tables)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from exc


def from_mapping(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Settings:
    top = _top_level({k: v for k, v in data.items() if k not in CONFIGURATION_KEYS})
    sections = {name: _section(name, getattr(top, name)) for name in _SECTIONS}
    config = configuration_from_mapping(data)
    path = Path(top.data_dir)
    return Settings(
        data_dir=path if path.is_absolute() or base_dir is None else base_dir / path,
        demo=top.demo,
        database_url=top.database_url,
        **sections,
        queues=tuple(q.to_domain() for q in config.queues),
        routes=tuple(r.to_domain() for r in config.routes),
        rules=tuple(r.to_domain() for r in config.rules if r.enabled),
        file_configuration=config,
    )


def _env_names() -> dict[str, tuple[str, str]]:
    """POSTROOM_<SECTION>_<KEY> -> (section, key), for every key of every section."""
    return {
        f"POSTROOM_{section.upper()}_{f.name.upper()}": (section, f.name)
        for section, cls in _SECTIONS.items()
        for f in fields(cls)
    }


def apply_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    """Override scalars: POSTROOM_DATA_DIR, POSTROOM_DATABASE_URL, POSTROOM_<SECTION>_<KEY>."""
    names = _env_names()
    known = {"POSTROOM_DATA_DIR", "POSTROOM_DATABASE_URL", "POSTROOM_CONFIG", *names}
    for name in env:
        ours = name.startswith("POSTROOM_") and not name.startswith("POSTROOM_TEST_")
        if ours and name not in known:
            raise ConfigError(f"unknown environment variable {name}; see docs/configuration.md")
    if env.get("POSTROOM_DATA_DIR"):
        settings = replace(settings, data_dir=Path(env["POSTROOM_DATA_DIR"]))
    if env.get("POSTROOM_DATABASE_URL"):
        settings = replace(settings, database_url=env["POSTROOM_DATABASE_URL"])
    changes: dict[str, dict[str, str]] = {}
    for name, (section, key) in names.items():
        if name in env:
            changes.setdefault(section, {})[key] = env[name]
    for section, values in changes.items():
        current = getattr(settings, section)
        merged = {f.name: getattr(current, f.name) for f in fields(current)} | values
        try:
            # Text is converted as declared: "25" an int, "yes"/"off" a bool, "" unset.
            updated = TypeAdapter(_SECTIONS[section]).validate_python(
                merged, strict=False, context={"env": True}
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            name = f"POSTROOM_{section.upper()}_{str(error['loc'][0]).upper()}"
            raise ConfigError(
                f"{name}: {env.get(name)!r} is not valid: "
                + str(error["msg"]).removeprefix("Value error, ")
            ) from exc
        settings = replace(settings, **{section: updated})
    return settings


def load(config_path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `config_path` (or $POSTROOM_CONFIG, or the sample), then the environment."""
    env = os.environ if env is None else env
    if config_path is None and env.get("POSTROOM_CONFIG"):
        config_path = Path(env["POSTROOM_CONFIG"])
    if config_path is None:
        text, base = sample_config_text(), None
    else:
        text = read_text(config_path)
        base = None  # relative data_dir is relative to the working directory, like the CLI flag
    data = parse_toml(text, config_path)
    settings = replace(from_mapping(data, base_dir=base), config_path=config_path)
    return apply_env(settings, env)


def read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from exc


def parse_toml(text: str, path: Path | None = None) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = path or "sample configuration"
        raise ConfigError(f"{where}: invalid TOML: {exc}") from exc

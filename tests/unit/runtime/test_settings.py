"""Settings: TOML file, POSTROOM_* environment overrides, validation with clear messages."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from postroom.domain.errors import ConfigError
from postroom.runtime.settings import apply_env, from_mapping, load
from postroom.services.admin.schema import QueueModel, RouteModel, RuleModel, describe


def test_sample_configuration_routes_support_to_support_queue() -> None:
    s = load(None, env={})
    assert s.smtp.port == 2525 and s.smtp.max_message_size == 40 * 1024 * 1024
    assert s.smtp.max_recipients == 50
    [route] = [r for r in s.routes if r.address == "support@example.com"]
    assert route.queue == "support"
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("postroom-data/postroom.db")


def test_environment_overrides_scalars() -> None:
    s = load(
        None,
        env={
            "POSTROOM_SMTP_PORT": "2600",
            "POSTROOM_HTTP_ENABLED": "false",
            "POSTROOM_DATABASE_URL": "postgresql+psycopg://x@h/db",
            "POSTROOM_DATA_DIR": "/tmp/pr",
            "POSTROOM_INTAKE_LOOP_GUARD_MAX_MESSAGES": "5",
        },
    )
    assert s.smtp.port == 2600 and s.http.enabled is False
    assert s.effective_database_url == "postgresql+psycopg://x@h/db"
    assert s.data_dir == Path("/tmp/pr") and s.intake.loop_guard_max_messages == 5


def test_config_file_and_postroom_config_variable(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[smtp]\nport = 2700\n[[queues]]\nname = "q"\n[[routes]]\naddress = "*@Shop.example"\nqueue = "q"\n'
    )
    s = load(None, env={"POSTROOM_CONFIG": str(cfg)})
    assert s.smtp.port == 2700 and s.routes[0].address == "*@shop.example"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTROOM_SMTP_PORT": "abc"}, "POSTROOM_SMTP_PORT: 'abc' is not valid: Input should be a valid integer"),
        ({"POSTROOM_SMTP_PROT": "25"}, "unknown environment variable POSTROOM_SMTP_PROT"),
        ({"POSTROOM_HTTP_ENABLED": "maybe"}, "POSTROOM_HTTP_ENABLED: 'maybe' is not valid: Input should be a valid boolean"),
    ],
)
def test_bad_environment_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_env(from_mapping({}), env)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"smtp": {"prot": 1}}, "unknown setting 'prot'"),
        ({"routes": [{"address": "a@b.example", "queue": "nope"}]}, "queue 'nope' is not defined"),
        (
            {"queues": [{"name": "q"}], "routes": [{"address": "nobody", "queue": "q"}]},
            "must be user@domain",
        ),
        ({"queues": [{"name": "q", "alert_timeout_s": 3}]}, r"queues\[0\].alert_timeout_s: Input should be greater than or equal to 7"),
        (
            {"rules": [{"when": [{"field": "subject", "op": "regex", "value": "("}]}]},
            r"rules\[0\].when\[0\]: value is not a valid regular expression",
        ),
        ({"rules": [{"when": [{"field": "colour", "value": "x"}]}]}, r"rules\[0\].when\[0\].field: must be sender, recipient"),
        (
            {"rules": [{"when": [{"field": "subject", "op": "like", "value": "x"}]}]},
            r"rules\[0\].when\[0\].op: Input should be 'contains', 'regex'",
        ),
        (
            {
                "queues": [{"name": "q"}],
                "routes": [{"address": "a@b.example", "queue": "q", "skills": {"x": 9}}],
            },
            r"routes\[0\].skills.x: Input should be less than or equal to 5",
        ),
        ({"colour": 1}, "unknown top-level setting"),
    ],
)
def test_bad_configuration_is_a_clear_error(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(data)


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(bad, env={})


def test_rules_and_imap_are_loaded() -> None:
    s = from_mapping(
        {
            "queues": [{"name": "q"}],
            "routes": [
                {
                    "address": "a@b.example",
                    "queue": "q",
                    "imap": {"host": "imap.b.example", "user": "a", "password": "p"},
                }
            ],
            "rules": [
                {
                    "name": "vip",
                    "match": "any",
                    "when": [{"field": "sender", "op": "domain", "value": "vip.example"}],
                    "then": {"priority": 4, "tags": ["vip"], "stop": True},
                }
            ],
        }
    )
    assert s.routes[0].imap is not None and s.routes[0].imap.port == 993
    assert (
        s.rules[0].actions.priority == 4 and s.rules[0].actions.stop and s.rules[0].match == "any"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "queues": [{"name": "q"}],
                "routes": [{"address": "a@b.example", "queue": "q", "skills": {"x": "high"}}],
            },
            r"routes\[0\].skills.x: Input should be a valid number",
        ),
        (
            {
                "queues": [{"name": "q"}],
                "routes": [{"address": "a@b.example", "queue": "q", "priority": "5"}],
            },
            r"routes\[0\].priority: Input should be a valid integer",
        ),
        ({"rules": [{"then": {"discard": True}}]}, r"rules\[0\].then.discard: Input should be a valid string"),
        ({"rules": [{"then": {"prioirty": 3}}]}, r"rules\[0\].then.prioirty: Extra inputs are not permitted"),
        ({"rules": [{"when": [{"field": "subject", "vaule": "x"}]}]}, r"rules\[0\].when\[0\].vaule: Extra inputs are not permitted"),
        ({"rules": [{"wen": []}]}, r"rules\[0\].wen: Extra inputs are not permitted"),
    ],
)
def test_typos_and_wrong_types_in_routes_and_rules(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(data)


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ({"name": "q", "evaluation": "random"}, r"queues\[0\].evaluation: Input should be 'all_skills', 'best_skills' or 'any_agent'"),
        ({"name": "q", "scoring_method": "fifo"}, r"queues\[0\].scoring_method: Input should be \'timestamp_and_priority\'"),
        ({"name": "q", "wrapup_prompt": "never"}, r"queues\[0\].wrapup_prompt: Input should be \'optional\'"),
        ({"name": "q", "ordering": "x"}, r"queues\[0\].ordering: Extra inputs are not permitted"),
        ({"name": "q", "rings": [{"expansion_timeout_s": 0}]}, r"queues\[0\].rings\[0\].expansion_timeout_s: Input should be greater than 0"),
        ({"name": "q", "rings": [{"expansion_timeout_s": 5}] * 6}, r"queues\[0\].rings: List should have at most 5 items"),
        ({"alert_timeout_s": 60}, r"queues\[0\].name: Field required"),
    ],
)
def test_queue_settings_are_checked_like_the_engine_checks_them(queue: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping({"queues": [queue]})


def test_queue_with_rings_and_last_agent_routing() -> None:
    s = from_mapping({"queues": [{
        "name": "q", "evaluation": "best_skills", "last_agent_routing_mode": "any_agent",
        "rings": [{"expansion_timeout_s": 30, "skills_to_remove": ["german"]}],
    }]})
    [q] = s.queues
    assert q.rings[0].skills_to_remove == ("german",) and q.evaluation == "best_skills"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"queues": [{"name": "q", "auto_answer": "no"}]}, r"queues\[0\].auto_answer: Input should be a valid boolean"),
        ({"queues": [{"name": "q", "wrapup_codes": "done"}]}, r"queues\[0\].wrapup_codes: Input should be a valid list"),
        ({"queues": [{"name": "q", "rings": [{"expansion_timeout_s": "soon"}]}]}, r"queues\[0\].rings\[0\].expansion_timeout_s: Input should be a valid number"),
        ({"rules": [{"then": {"tags": "abc"}}]}, r"rules\[0\].then.tags: Input should be a valid list"),
        ({"outbound": {"relay_tls": "yes"}}, r"outbound.relay_tls: Input should be 'none', 'starttls' or 'ssl'"),
        ({"queues": [{"name": "q"}], "routes": [{"address": "a@b.example", "queue": "q",
          "imap": {"host": "h", "user": "u", "password": "p", "port": "993"}}]}, r"routes\[0\].imap.port: Input should be a valid integer"),
        ({"smtp": {"port": "2525"}}, "smtp.port: Input should be a valid integer"),
        ({"smtp": {"port": 25.5}}, "smtp.port: Input should be a valid integer"),
        ({"demo": 1}, "demo: Input should be a valid boolean"),
        ({"outbound": {"relay_host": 25}}, "outbound.relay_host: Input should be a valid string"),
        ({"smtp": {"enabled": "no"}}, "smtp.enabled: Input should be a valid boolean"),
        ({"data_dir": 5}, "data_dir: Input should be a valid string"),
        ({"database_url": 7}, "database_url: Input should be a valid string"),
        ({"smtp": "x"}, r"smtp must be a table \(\[smtp\]\)"),
        ({"queues": "abc"}, r"queues must be an array of tables"),
    ],
)
def test_values_of_the_wrong_type_are_refused_not_coerced(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(data)


def test_queue_signature_is_read_and_must_be_text() -> None:
    s = from_mapping({"queues": [{
        "name": "q", "signature_text": "{agent_name}\nq team", "signature_html": "<p>{agent_name}</p>",
    }]})
    [q] = s.queues
    assert (q.signature_text, q.signature_html) == ("{agent_name}\nq team", "<p>{agent_name}</p>")
    with pytest.raises(ConfigError, match=r"queues\[0\].signature_html: Input should be a valid string"):
        from_mapping({"queues": [{"name": "q", "signature_html": ["<p>x</p>"]}]})
    with pytest.raises(ConfigError, match=r"queues\[0\].signature: Extra inputs are not permitted"):
        from_mapping({"queues": [{"name": "q", "signature": "x"}]})


def test_queue_quote_original_and_display_name() -> None:
    [plain] = from_mapping({"queues": [{"name": "support"}]}).queues
    assert plain.quote_original is True and plain.from_name == "support"
    [q] = from_mapping(
        {"queues": [{"name": "q", "quote_original": False, "display_name": "Équipe Q"}]}
    ).queues
    assert q.quote_original is False and q.from_name == "Équipe Q"
    [nameless] = from_mapping({"queues": [{"name": "q", "display_name": ""}]}).queues
    assert nameless.from_name == ""
    with pytest.raises(ConfigError, match=r"queues\[0\].quote_original: Input should be a valid boolean"):
        from_mapping({"queues": [{"name": "q", "quote_original": "no"}]})
    with pytest.raises(ConfigError, match=r"queues\[0\].display_name: Input should be a valid string"):
        from_mapping({"queues": [{"name": "q", "display_name": 3}]})


def test_sample_configuration_queues_carry_signatures() -> None:
    s = load(None, env={})
    assert all(q.signature_text and q.signature_html for q in s.queues)


def test_routes_and_rules_name_preferred_agents_and_a_deadline() -> None:
    s = from_mapping(
        {
            "queues": [{"name": "q"}],
            "routes": [
                {
                    "address": "a@b.example",
                    "queue": "q",
                    "preferred_agents": ["bob", " ann ", "bob"],
                    "preferred_window_s": 120,
                    "deadline_s": 3600,
                }
            ],
            "rules": [{"name": "r", "then": {"preferred_agents": [], "deadline_s": 60.5}}],
        }
    )
    route = s.routes[0]
    assert (route.preferred_agents, route.preferred_window_s, route.deadline_s) == (
        ("bob", "ann"),
        120.0,
        3600.0,
    )
    assert s.rules[0].actions.preferred_agents == () and s.rules[0].actions.deadline_s == 60.5
    plain = from_mapping(
        {"queues": [{"name": "q"}], "routes": [{"address": "a@b.example", "queue": "q"}]}
    )
    assert plain.routes[0].preferred_agents == () and plain.routes[0].deadline_s is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"preferred_agents": "bob"}, "preferred_agents: Input should be a valid list"),
        ({"preferred_agents": ["bob", 3]}, r"preferred_agents\[1\]: Input should be a valid string"),
        ({"preferred_agents": [" "]}, "may not be empty"),
        ({"preferred_window_s": -1}, "preferred_window_s: Input should be greater than or equal to 0"),
        ({"preferred_window_s": "300"}, "preferred_window_s: Input should be a valid number"),
        ({"deadline_s": 0}, "deadline_s: Input should be greater than or equal to 1"),
        ({"deadline_s": 10**9}, "deadline_s: Input should be less than or equal to 2592000"),
        ({"deadline_s": True}, "deadline_s: Input should be a valid number"),
    ],
)
def test_bad_preferred_agents_or_deadline_are_clear_errors(
    extra: dict[str, object], message: str
) -> None:
    route = {"address": "a@b.example", "queue": "q", **extra}
    with pytest.raises(ConfigError, match=message):
        from_mapping({"queues": [{"name": "q"}], "routes": [route]})
    with pytest.raises(ConfigError, match=message):
        from_mapping({"queues": [{"name": "q"}], "rules": [{"name": "r", "then": extra}]})


# -- one schema: the file says what the API and the admin pages say ------------------------


@pytest.mark.parametrize(
    ("model", "key", "good", "mistake"),
    [
        (QueueModel, "queues", {"name": "q"}, {"alert_timeout_s": 3}),
        (QueueModel, "queues", {"name": "q"}, {"evaluation": "random"}),
        (QueueModel, "queues", {"name": "q"}, {"rings": [{"expansion_timeout_s": "soon"}]}),
        (QueueModel, "queues", {"name": "q"}, {"wrapup": []}),
        (RouteModel, "routes", {"address": "a@b.example", "queue": "q"}, {"skills": {"x": 9}}),
        (RouteModel, "routes", {"address": "a@b.example", "queue": "q"}, {"address": "nobody"}),
        (RuleModel, "rules", {"name": "r"}, {"then": {"tags": "abc"}}),
        (RuleModel, "rules", {"name": "r"}, {"when": [{"field": "subject", "op": "regex",
                                                       "value": "("}]}),
    ],
)
def test_the_file_and_the_schema_give_the_same_message_for_the_same_mistake(
    model: type[BaseModel], key: str, good: dict[str, object], mistake: dict[str, object]
) -> None:
    data = {**good, **mistake}
    with pytest.raises(ValidationError) as from_api:  # what the admin API validates
        model.model_validate(data)
    with pytest.raises(ConfigError) as from_file:
        from_mapping({"queues": [{"name": "q"}], key: [data]} if key != "queues" else {key: [data]})
    assert str(from_file.value) == describe(from_api.value, f"{key}[0]")
    assert str(from_file.value).startswith(f"{key}[0].")  # it names the setting


def test_alert_timeout_of_3_is_refused_alike_by_file_api_and_pages() -> None:
    with pytest.raises(ConfigError) as from_file:
        from_mapping({"queues": [{"name": "support", "alert_timeout_s": 3}]})
    with pytest.raises(ValidationError) as from_api:
        QueueModel.model_validate({"name": "support", "alert_timeout_s": 3})
    with pytest.raises(ValidationError) as from_page:  # form fields are strings
        QueueModel.model_validate({"name": "support", "alert_timeout_s": "3"}, strict=False)
    message = "queues[0].alert_timeout_s: Input should be greater than or equal to 7"
    assert str(from_file.value) == message
    assert describe(from_api.value, "queues[0]") == message
    assert describe(from_page.value, "queues[0]") == message


def test_environment_text_is_converted_as_declared() -> None:
    s = apply_env(
        from_mapping({"smtp": {"tls_cert": "/c.pem"}}),
        {
            "POSTROOM_SMTP_ENABLED": "OFF",
            "POSTROOM_SMTP_TLS_CERT": "",  # unsets an optional string
            "POSTROOM_WEB_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16,",
            "POSTROOM_INTAKE_PIPELINE_POLL_S": "0.5",
            "POSTROOM_LOG_FORMAT": "text",
        },
    )
    assert s.smtp.enabled is False and s.smtp.tls_cert is None
    assert s.web.trusted_proxies == ("10.0.0.5", "192.168.0.0/16")
    assert s.intake.pipeline_poll_s == 0.5 and s.log.format == "text"
    with pytest.raises(ConfigError, match="POSTROOM_LOG_FORMAT: 'xml' is not valid: Input should be"):
        apply_env(from_mapping({}), {"POSTROOM_LOG_FORMAT": "xml"})
    # ... but a TOML string is not a list, nor a number.
    with pytest.raises(ConfigError, match=r"web\.trusted_proxies: must be a list of strings"):
        from_mapping({"web": {"trusted_proxies": "10.0.0.5"}})
    assert from_mapping({"web": {"trusted_proxies": ["10.0.0.5"]}}).web.trusted_proxies == (
        "10.0.0.5",
    )


def test_sections_are_checked_when_code_builds_them_too() -> None:
    s = from_mapping({})
    with pytest.raises(ValidationError):
        replace(s.smtp, port="2525")  # type: ignore[arg-type]
    assert replace(s.smtp, port=2600).port == 2600


def test_a_disabled_rule_is_kept_for_seeding_but_not_in_force() -> None:
    s = from_mapping(
        {"rules": [{"name": "a"}, {"name": "b", "enabled": False}, {"when": []}]}
    )
    assert [r.name for r in s.rules] == ["a", "rules[2]"]
    assert s.file_configuration is not None
    assert [(r.name, r.enabled) for r in s.file_configuration.rules] == [
        ("a", True), ("b", False), ("rules[2]", True)
    ]

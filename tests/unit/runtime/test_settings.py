"""Settings: TOML file, POSTROOM_* environment overrides, validation with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.domain.errors import ConfigError
from postroom.runtime.settings import apply_env, from_mapping, load


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
        ({"POSTROOM_SMTP_PORT": "abc"}, "POSTROOM_SMTP_PORT: 'abc' is not a valid int"),
        ({"POSTROOM_SMTP_PROT": "25"}, "unknown environment variable POSTROOM_SMTP_PROT"),
        ({"POSTROOM_HTTP_ENABLED": "maybe"}, "not a valid bool"),
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
        ({"queues": [{"name": "q", "alert_timeout_s": 3}]}, "alert_timeout_s must be 7–3600"),
        (
            {"rules": [{"when": [{"field": "subject", "op": "regex", "value": "("}]}]},
            "invalid regular expression",
        ),
        ({"rules": [{"when": [{"field": "colour", "value": "x"}]}]}, "field must be"),
        (
            {"rules": [{"when": [{"field": "subject", "op": "like", "value": "x"}]}]},
            "op must be one of",
        ),
        (
            {
                "queues": [{"name": "q"}],
                "routes": [{"address": "a@b.example", "queue": "q", "skills": {"x": 9}}],
            },
            "between 0 and 5",
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
            "must be a number",
        ),
        (
            {
                "queues": [{"name": "q"}],
                "routes": [{"address": "a@b.example", "queue": "q", "priority": "5"}],
            },
            "whole number",
        ),
        ({"rules": [{"then": {"discard": True}}]}, "discard must be a string"),
        ({"rules": [{"then": {"prioirty": 3}}]}, "unknown key 'prioirty'"),
        ({"rules": [{"when": [{"field": "subject", "vaule": "x"}]}]}, "unknown key 'vaule'"),
        ({"rules": [{"wen": []}]}, "unknown key 'wen'"),
    ],
)
def test_typos_and_wrong_types_in_routes_and_rules(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(data)


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ({"name": "q", "evaluation": "random"}, "evaluation must be one of"),
        ({"name": "q", "scoring_method": "fifo"}, "scoring_method must be one of"),
        ({"name": "q", "wrapup_prompt": "never"}, "wrapup_prompt must be one of"),
        ({"name": "q", "ordering": "x"}, "unknown key 'ordering'"),
        ({"name": "q", "rings": [{"expansion_timeout_s": 0}]}, "expansion_timeout_s must be greater than 0"),
        ({"name": "q", "rings": [{"expansion_timeout_s": 5}] * 6}, "at most 5 bullseye rings"),
        ({"alert_timeout_s": 60}, "needs a name"),
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
        ({"queues": [{"name": "q", "auto_answer": "no"}]}, "auto_answer must be a boolean"),
        ({"queues": [{"name": "q", "wrapup_codes": "done"}]}, "wrapup_codes must be a list of strings"),
        ({"queues": [{"name": "q", "rings": [{"expansion_timeout_s": "soon"}]}]}, "expansion_timeout_s must be a number"),
        ({"rules": [{"then": {"tags": "abc"}}]}, "tags must be a list of strings"),
        ({"outbound": {"relay_tls": "yes"}}, "relay_tls must be one of"),
        ({"queues": [{"name": "q"}], "routes": [{"address": "a@b.example", "queue": "q",
          "imap": {"host": "h", "user": "u", "password": "p", "port": "993"}}]}, "port must be a whole number"),
        ({"smtp": {"port": "2525"}}, "smtp.port must be a whole number"),
        ({"smtp": {"port": 25.5}}, "smtp.port must be a whole number"),
        ({"demo": 1}, "demo must be a boolean"),
        ({"outbound": {"relay_host": 25}}, "relay_host must be a string"),
        ({"smtp": {"enabled": "no"}}, "smtp.enabled must be a boolean"),
        ({"data_dir": 5}, "data_dir must be a string"),
        ({"database_url": 7}, "database_url must be a string"),
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
    with pytest.raises(ConfigError, match=r"signature_html must be a string, not"):
        from_mapping({"queues": [{"name": "q", "signature_html": ["<p>x</p>"]}]})
    with pytest.raises(ConfigError, match="unknown key 'signature'"):
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
    with pytest.raises(ConfigError, match=r"quote_original must be a boolean"):
        from_mapping({"queues": [{"name": "q", "quote_original": "no"}]})
    with pytest.raises(ConfigError, match=r"display_name must be a string"):
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
        ({"preferred_agents": "bob"}, "preferred_agents must be a list of strings"),
        ({"preferred_agents": ["bob", 3]}, "preferred_agents must be a list of strings"),
        ({"preferred_agents": [" "]}, "may not be empty"),
        ({"preferred_window_s": -1}, "preferred_window_s must be between 0"),
        ({"preferred_window_s": "300"}, "preferred_window_s must be a number"),
        ({"deadline_s": 0}, "deadline_s must be between 1"),
        ({"deadline_s": 10**9}, "deadline_s must be between"),
        ({"deadline_s": True}, "deadline_s must be a number"),
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

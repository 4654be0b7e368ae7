"""`postroom config export|apply` and the start with a changed file: the database
is the source of truth; a file changes it only when applied, with the diff shown,
one audit entry per object, and the version moved so every process re-reads it."""

from __future__ import annotations

import copy
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import tomli_w

from postroom.domain.errors import ConfigError
from postroom.runtime import wiring
from postroom.runtime.cli import main
from postroom.runtime.settings import Settings, configuration_from_mapping, from_mapping
from postroom.services import configuration
from postroom.services.admin import audit
from postroom.store.schema import routes, routing_inbox, rules
from tests.conftest import BASE_CONFIG
from tests.integration.test_crash import free_port
from tests.mailfactory import make_email

IMAP = {"host": "imap.example.com", "user": "help@example.com", "password": "s3cret"}


def base(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_CONFIG)
    data["routes"].append({"address": "help@example.com", "queue": "support", "imap": IMAP})
    data.update(changes)
    return data


def write(path: Path, settings: Settings, data: dict[str, Any]) -> list[str]:
    """`data` as a TOML file on `settings`' store; the CLI options that name it."""
    path.write_text(tomli_w.dumps({"data_dir": str(settings.data_dir), **data}))
    args = ["--config", str(path)]
    return [*args, "--database-url", settings.database_url] if settings.database_url else args


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(any_settings: Settings, tmp_path: Path) -> tuple[Settings, list[str]]:
    """A store seeded from `base()`, and the CLI options of its file."""
    opts = write(tmp_path / "postroom.toml", any_settings, base())
    settings = replace(from_mapping(base()), data_dir=any_settings.data_dir,
                       database_url=any_settings.database_url)
    wiring.open_store(settings).dispose()
    return settings, opts


def stored(settings: Settings) -> dict[str, Any]:
    engine = wiring.open_store(settings, seed=False)
    try:
        with engine.connect() as conn:
            return configuration.load_models(conn).model_dump(mode="json")
    finally:
        engine.dispose()


def state(settings: Settings) -> tuple[int, list[dict[str, Any]], int]:
    """(configuration version, audit entries newest first, config_changed requests)."""
    engine = wiring.open_store(settings, seed=False)
    try:
        with engine.connect() as conn:
            version = configuration.version(conn) or 0
            entries = audit.entries(conn)
            asked = conn.execute(
                sa.select(sa.func.count()).where(routing_inbox.c.kind == "config_changed")
            ).scalar_one()
        return version, entries, int(asked)
    finally:
        engine.dispose()


def test_export_then_apply_changes_nothing(
    store: tuple[Settings, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, opts = store
    out_file = tmp_path / "export.toml"
    code, out, _ = run(capsys, "config", "export", "--output", str(out_file), *opts)
    assert code == 0 and "3 queue(s), 3 route(s) and 2 rule(s)" in out
    exported = tomllib.loads(out_file.read_text())
    assert [q["name"] for q in exported["queues"]] == ["support", "billing", "vip"]
    [help_route] = [r for r in exported["routes"] if r["address"] == "help@example.com"]
    assert help_route["imap"]["password"] == configuration.KEEP_PASSWORD  # no secret in it
    assert "s3cret" not in out_file.read_text()
    before = state(settings)
    code, out, _ = run(capsys, "config", "apply", str(out_file), *opts)
    assert code == 0 and "no changes" in out
    assert state(settings) == before  # no version bump, no audit entry
    # To standard output by default; the export is the database's, in the file's shape.
    code, out, _ = run(capsys, "config", "export", *opts)
    assert code == 0 and configuration_from_mapping(tomllib.loads(out)).model_dump(
        mode="json"
    )["queues"] == stored(settings)["queues"]


def test_apply_shows_the_diff_and_records_each_change(
    store: tuple[Settings, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, opts = store
    new = base()
    new["queues"][0]["alert_timeout_s"] = 30  # support: changed
    new["queues"].append({"name": "sales", "evaluation": "any_agent"})  # added
    new["routes"].append({"address": "sales@example.com", "queue": "sales"})
    new["rules"] = [new["rules"][1], new["rules"][0]]  # reordered ...
    new["rules"][0]["enabled"] = False  # ... and "drop spam" disabled
    path = tmp_path / "new.toml"
    path.write_text(tomli_w.dumps(new))
    version, entries, asked = state(settings)

    code, out, _ = run(capsys, "config", "apply", str(path), "--dry-run", *opts)
    assert code == 0 and "nothing applied (--dry-run)" in out
    assert "~ queue 'support': alert_timeout_s: 60.0 -> 30.0" in out
    assert state(settings) == (version, entries, asked)

    code, out, _ = run(capsys, "config", "apply", str(path), *opts)
    assert code == 0, out
    lines = out.splitlines()
    assert "~ queue 'support': alert_timeout_s: 60.0 -> 30.0" in lines
    assert "+ queue 'sales': added" in lines
    assert "+ route sales@example.com: added" in lines
    assert "~ rule 'drop spam': enabled: true -> false; position: 1 -> 0" in lines
    assert f"(configuration version {version + 1})" in lines[-1]
    assert stored(settings) == configuration_from_mapping(new).model_dump(mode="json")

    new_version, new_entries, new_asked = state(settings)
    assert (new_version, new_asked) == (version + 1, asked + 1)  # one bump, one router request
    made = new_entries[: len(new_entries) - len(entries)]
    assert sorted((e["action"], e["target_id"]) for e in made) == [
        ("queue.create", "sales"),
        ("queue.update", "support"),
        ("route.create", "sales@example.com"),
        ("rule.update", "drop spam"),
    ]
    assert {(e["actor"], e["via"]) for e in made} == {("cli", "cli")}
    [support] = [e for e in made if e["target_id"] == "support"]
    assert (support["before"]["alert_timeout_s"], support["after"]["alert_timeout_s"]) == (60, 30)


def test_apply_keeps_rows_that_did_not_change(
    store: tuple[Settings, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, opts = store

    def ids() -> tuple[dict[str, int], dict[str, int]]:
        engine = wiring.open_store(settings, seed=False)
        with engine.connect() as conn:
            found = (
                dict(conn.execute(sa.select(routes.c.address, routes.c.id)).tuples().all()),
                dict(conn.execute(sa.select(rules.c.name, rules.c.id)).tuples().all()),
            )
        engine.dispose()
        return found

    route_ids, rule_ids = ids()
    new = base()
    new["routes"][1]["priority"] = 7
    path = tmp_path / "new.toml"
    path.write_text(tomli_w.dumps(new))
    assert run(capsys, "config", "apply", str(path), *opts)[0] == 0
    assert ids() == (route_ids, rule_ids)


def test_a_queue_with_open_conversations_is_not_removed(
    store: tuple[Settings, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, opts = store
    comps = wiring.build(settings)
    try:
        comps.spool().accept_sync(
            make_email(to="x@billing.example.com"), source="smtp",
            envelope_to=["x@billing.example.com"],
        )
        comps.intake.drain()
    finally:
        comps.close()
    new = base()
    new["queues"] = [q for q in new["queues"] if q["name"] != "billing"]
    new["routes"] = [r for r in new["routes"] if r["queue"] != "billing"]
    path = tmp_path / "new.toml"
    path.write_text(tomli_w.dumps(new))
    before, version = stored(settings), state(settings)
    code, out, err = run(capsys, "config", "apply", str(path), "--dry-run", *opts)
    assert code == 2 and "- queue 'billing': removed" in out
    assert "queue 'billing' still has 1 open conversation(s)" in err and "move them" in err
    code, out, err = run(capsys, "config", "apply", str(path), *opts)
    assert code == 2 and err.startswith("postroom: error: nothing applied: queue 'billing'")
    assert stored(settings) == before and state(settings) == version


def test_passwords_are_kept_or_exported_on_request(
    store: tuple[Settings, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, opts = store
    plain = tmp_path / "plain.toml"
    assert run(capsys, "config", "export", "-o", str(plain), *opts)[0] == 0
    data = tomllib.loads(plain.read_text())
    [help_route] = [r for r in data["routes"] if r["address"] == "help@example.com"]
    help_route["imap"]["port"] = 143
    plain.write_text(tomli_w.dumps(data))
    code, out, _ = run(capsys, "config", "apply", str(plain), *opts)
    assert code == 0 and "~ route help@example.com: imap.port: 993 -> 143" in out
    [kept] = [r for r in stored(settings)["routes"] if r["address"] == "help@example.com"]
    assert kept["imap"]["password"] == "s3cret" and kept["imap"]["port"] == 143

    secret = tmp_path / "secret.toml"
    assert run(capsys, "config", "export", "-o", str(secret), "--include-secrets", *opts)[0] == 0
    assert 'password = "s3cret"' in secret.read_text()
    assert (secret.stat().st_mode & 0o777) == 0o600
    data = tomllib.loads(secret.read_text())
    [help_route] = [r for r in data["routes"] if r["address"] == "help@example.com"]
    help_route["imap"]["password"] = "n3w"
    secret.write_text(tomli_w.dumps(data))
    code, out, _ = run(capsys, "config", "apply", str(secret), *opts)
    assert code == 0 and "~ route help@example.com: imap.password changed" in out
    assert "n3w" not in out
    _, entries, _ = state(settings)
    assert entries[0]["after"]["imap"]["password"] == "***"  # the audit shows no secret

    # The placeholder on a route with no stored mailbox cannot keep anything.
    data["routes"].append(
        {"address": "new@example.com", "queue": "support",
         "imap": {**IMAP, "password": configuration.KEEP_PASSWORD}}
    )
    secret.write_text(tomli_w.dumps(data))
    code, _, err = run(capsys, "config", "apply", str(secret), *opts)
    assert code == 2 and "no IMAP mailbox for new@example.com" in err


def test_apply_of_a_whole_configuration_file_checks_but_keeps_its_process_settings(
    store: tuple[Settings, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, opts = store
    path = tmp_path / "whole.toml"
    path.write_text(tomli_w.dumps({"smtp": {"port": 2600}, **base()}))
    code, out, err = run(capsys, "config", "apply", str(path), *opts)
    assert code == 0 and "no changes" in out
    assert "are applied; the file's other settings (smtp) are checked, not applied" in err
    path.write_text(tomli_w.dumps({"smtp": {"prot": 25}, **base()}))
    code, _, err = run(capsys, "config", "apply", str(path), *opts)
    assert code == 2 and "smtp: unknown setting 'prot'" in err


def test_apply_refuses_an_invalid_file_with_the_schema_message(
    store: tuple[Settings, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, opts = store
    new = base()
    new["queues"][0]["alert_timeout_s"] = 3
    path = tmp_path / "new.toml"
    path.write_text(tomli_w.dumps(new))
    before = stored(settings)
    code, _, err = run(capsys, "config", "apply", str(path), *opts)
    assert code == 2
    assert err.strip() == (
        "postroom: error: queues[0].alert_timeout_s: Input should be greater than or equal to 7"
    )
    assert stored(settings) == before


def test_the_file_seeds_once_and_then_only_says_it_differs(
    any_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def start(data: dict[str, Any]) -> str:
        s = replace(from_mapping(data), data_dir=any_settings.data_dir,
                    database_url=any_settings.database_url)
        engine = wiring.open_store(s, seed=False)
        try:
            return wiring.seed_configuration(engine, s, wiring.utc_now)
        finally:
            engine.dispose()

    first = base()
    first["rules"][1]["enabled"] = False
    assert start(first) == "seeded"
    assert [r["enabled"] for r in stored(any_settings)["rules"]] == [True, False]
    assert start(first) == "unchanged"
    changed = base()
    changed["queues"][0]["alert_timeout_s"] = 20
    with caplog.at_level("WARNING", logger="postroom.config"):
        assert start(changed) == "file differs"
    assert "the database stays in force" in caplog.text
    assert stored(any_settings)["queues"][0]["alert_timeout_s"] == 60  # not overwritten
    assert start(changed) == "database differs"  # the same file again: still not applied


def test_a_new_database_needs_the_passwords_a_placeholder_would_keep(
    any_settings: Settings,
) -> None:
    data = base()
    data["routes"][-1]["imap"] = {**IMAP, "password": configuration.KEEP_PASSWORD}
    s = replace(from_mapping(data), data_dir=any_settings.data_dir,
                database_url=any_settings.database_url)
    with pytest.raises(ConfigError, match="write the password into the file"):
        wiring.open_store(s)


def _line(proc: subprocess.Popen[bytes], prefix: str, timeout: float = 30) -> str:
    """The first line of `proc`'s output that starts with `prefix`."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    fd, buffer = proc.stdout.fileno(), b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buffer += chunk
            *complete, _ = buffer.split(b"\n")  # a line still being written is not one yet
            for line in (c.decode(errors="replace") for c in complete):
                if line.startswith(prefix):
                    return line
    raise AssertionError(f"no line starting with {prefix!r} in {buffer!r}")


@pytest.mark.slow
def test_serve_says_the_database_is_in_force_when_the_file_changed(tmp_path: Path) -> None:
    config = tmp_path / "postroom.toml"

    def serve(data: dict[str, Any]) -> str:
        port = free_port()
        config.write_text(
            tomli_w.dumps({"data_dir": str(tmp_path / "data"), "smtp": {"port": port},
                           "http": {"enabled": False}, **data})
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "postroom.runtime.cli", "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        try:
            return _line(proc, "Configuration:")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    assert "took the file's queues, routes and rules" in serve(base())
    changed = base()
    changed["queues"][0]["alert_timeout_s"] = 20
    line = serve(changed)
    assert "the database's queues, routes and rules are in force, not the file's" in line
    assert f"`postroom config apply {config} --dry-run`" in line
    assert f"`postroom config apply {config}`" in line
    # Doing what the line says makes the file's configuration the database's.
    assert main(["config", "apply", str(config), "--config", str(config)]) == 0
    assert "the same as the file's" in serve(changed)


@pytest.mark.postgres
def test_two_processes_seeding_a_new_database_at_once(
    settings: Settings, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both see an empty database; one seeds, the other then finds it seeded."""
    s = replace(settings, database_url=pg_url)
    barrier = threading.Barrier(2, timeout=10)
    original = configuration.replace_all

    def together(*args: Any, **kwargs: Any) -> int:
        if not barrier.broken:
            barrier.wait()  # both have found no configuration
        return original(*args, **kwargs)

    monkeypatch.setattr(configuration, "replace_all", together)
    engines = [wiring.open_store(s, seed=False) for _ in range(2)]
    outcomes: list[str] = []
    threads = [
        threading.Thread(
            target=lambda e=e: outcomes.append(wiring.seed_configuration(e, s, wiring.utc_now))
        )
        for e in engines
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for e in engines:
        e.dispose()
    assert sorted(outcomes) == ["seeded", "unchanged"]


def test_an_export_keeps_every_kind_of_value(
    any_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Multi-line signatures, rings, an empty display name, empty skills that replace
    the route's, no preferred agents, a deadline, a disabled rule: all come back."""
    data = base()
    data["queues"][0] |= {
        "signature_text": "Kind regards,\n{agent_name}\n  indented  \n",
        "signature_html": '<p class="x">"quoted" \\ back</p>',
        "display_name": "",
        "rings": [{"expansion_timeout_s": 30, "skills_to_remove": ["german"]},
                  {"expansion_timeout_s": 60, "remove_language": True}],
    }
    data["routes"][0] |= {"skills": {"english": 2.5}, "deadline_s": 3600, "language": "en"}
    data["rules"] += [
        {"name": "reset", "enabled": False,
         "then": {"skills": {}, "preferred_agents": [], "preferred_window_s": 0}},
        {"name": "regex", "when": [{"field": "header:X-Tag", "op": "regex", "value": r"\b(a|b)\\"}]},
    ]
    opts = write(tmp_path / "postroom.toml", any_settings, data)
    out_file = tmp_path / "export.toml"
    assert run(capsys, "config", "export", "-o", str(out_file), "--include-secrets", *opts)[0] == 0
    again = configuration_from_mapping(tomllib.loads(out_file.read_text()))
    assert again.model_dump(mode="json") == configuration_from_mapping(data).model_dump(mode="json")
    code, out, _ = run(capsys, "config", "apply", str(out_file), *opts)
    assert code == 0 and "no changes" in out


def test_the_live_configuration_can_be_re_read_inside_a_write_transaction(
    settings: Settings,
) -> None:
    """A re-read made while the same thread holds a write transaction must not wait
    for that thread's own write lock (SQLite: 30 s, then 'database is locked')."""
    engine = wiring.open_store(settings)
    live = configuration.LiveConfig(engine)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE config_state SET updated_at = updated_at"))
            assert live.refresh().queue_names == ["support", "billing", "vip"]
    finally:
        live.close()
        engine.dispose()

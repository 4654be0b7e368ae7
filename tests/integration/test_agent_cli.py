"""One email from SMTP to wrap-up, driven only through `postroom serve` and the CLI."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_crash import free_port, start
from tests.mailfactory import make_email
from tests.waiting import eventually

pytestmark = pytest.mark.slow


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postroom.runtime.cli", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )


def cli_json(config: Path, *args: str) -> Any:
    out = cli(config, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_email_to_wrapup_through_the_command_line(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "postroom.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[smtp]\nport = {port}\n[http]\nenabled = false\n'
        '[[queues]]\nname = "support"\n[[routes]]\naddress = "support@example.com"\nqueue = "support"\n'
    )
    proc = start(config, port)
    try:
        assert cli(config, "agent", "add", "ann", "--queues", "support", "--skills", "english=4").returncode == 0
        out = cli(config, "agent", "presence", "ann", "on_queue")
        assert out.returncode == 0, out.stderr
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("ada@customer.example", ["support@example.com"], make_email(sender="ada@customer.example"))

        def offered() -> int | None:
            [ann] = cli_json(config, "agent", "list")
            held = [c for c in ann["conversations"] if c["state"] == "alerting"]
            return held[0]["conversation"] if held else None

        cid = eventually(offered)
        queue = cli_json(config, "queue", "show", "support")["support"]
        assert queue["alerting"] == 1 and queue["agents_on_queue"] == 1
        out = cli(config, "agent", "accept", "ann", str(cid))
        assert out.returncode == 0 and "accept: ok" in out.stdout, out.stderr
        refused = cli(config, "agent", "decline", "ann", str(cid))
        assert refused.returncode == 2 and "refused" in refused.stderr
        out = cli(config, "agent", "wrapup", "ann", str(cid), "--code", "resolved")
        assert out.returncode == 0, out.stderr
        status = cli_json(config, "status")
        assert status["conversations"]["closed"] == 1 and status["conversations"]["queued"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_agent_add_keeps_what_is_not_given(tmp_path: Path) -> None:
    config = tmp_path / "postroom.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[[queues]]\nname = "support"\n[[queues]]\nname = "billing"\n'
    )
    made = cli(config, "agent", "add", "bob", "--name", "Bob Builder", "--queues", "support,billing",
               "--skills", "english=4", "--languages", "en", "--capacity", "3")
    assert made.returncode == 0, made.stderr
    assert cli(config, "agent", "add", "bob").returncode == 0
    assert cli(config, "agent", "add", "bob", "--skills", "billing=2").returncode == 0
    [bob] = cli_json(config, "agent", "list")
    assert (bob["name"], bob["queues"], bob["capacity"]) == ("Bob Builder", ["support", "billing"], 3)
    assert cli(config, "agent", "add", "bob", "--name", "Robert", "--queues", "").returncode == 0
    [bob] = cli_json(config, "agent", "list")
    assert (bob["name"], bob["queues"], bob["capacity"]) == ("Robert", [], 3)
    assert cli(config, "agent", "add", "cy").returncode == 0
    cy = next(a for a in cli_json(config, "agent", "list") if a["id"] == "cy")
    assert (cy["name"], cy["queues"], cy["capacity"]) == ("cy", [], 1)
    # A bad value is still refused, and changes nothing.
    bad = cli(config, "agent", "add", "bob", "--capacity", "0")
    assert bad.returncode == 2 and "capacity" in bad.stderr
    [bob, _] = cli_json(config, "agent", "list")
    assert bob["capacity"] == 3

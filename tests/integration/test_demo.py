"""The first run: demo users with passwords shown once, sample mail that gets routed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_crash import free_port

pytestmark = pytest.mark.slow


def run_serve(tmp_path: Path, smtp: int, http: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom.runtime.cli", "serve", "--data-dir", str(tmp_path / "data"),
         "--smtp-port", str(smtp), "--http-port", str(http)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line.rstrip())
        if line.startswith("Roles:"):
            break
    # The demo block (if any) follows the Roles line.
    time.sleep(1.0)
    return proc, lines


def test_first_run_creates_demo_users_once_and_demo_send_routes_mail(tmp_path: Path) -> None:
    smtp, http = free_port(), free_port()
    proc, _ = run_serve(tmp_path, smtp, http)
    try:
        assert proc.stdout is not None
        out = []
        while True:
            line = proc.stdout.readline().rstrip()
            out.append(line)
            if line.startswith("Send sample mail"):
                break
        users = [line.split() for line in out if line.startswith("  ")]
        assert [u[0] for u in users] == ["ann", "bob", "carla", "dev", "sam"]
        assert {u[1] for u in users} == {"agent", "supervisor"} and all(len(u[2]) >= 10 for u in users)
        sent = subprocess.run(
            [sys.executable, "-m", "postroom.runtime.cli", "demo", "send", "--smtp-port", str(smtp)],
            capture_output=True, text=True, timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        status: dict[str, dict[str, int]] = {}
        for _ in range(100):
            res = subprocess.run(
                [sys.executable, "-m", "postroom.runtime.cli", "status", "--json", "--data-dir",
                 str(tmp_path / "data")], capture_output=True, text=True, timeout=60,
            )
            status = json.loads(res.stdout)
            if status["messages"]["processed"] == 3:
                break
            time.sleep(0.2)
        assert status["messages"]["processed"] == 3 and status["threads"] == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    again, lines = run_serve(tmp_path, smtp, http)
    again.send_signal(signal.SIGTERM)
    rest, _ = again.communicate(timeout=30)
    assert "Demo users" not in "\n".join(lines) + rest

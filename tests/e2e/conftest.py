"""Browser tests: a real `postroom serve` (SMTP, HTTP, router, sender) on free
ports with a temporary config and data folder, and Debian's chromium driven by
Playwright. Skipped when chromium or Playwright is missing, failed instead
when CI=true."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct-horse-battery"


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is missing: pip install playwright pytest-playwright"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop running in
    the main thread until the session ends, which breaks later asyncio.run() calls."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("e2e") is None:
        return
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--disable-dev-shm-usage",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 860}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """\
data_dir = "{data}"
[smtp]
port = {smtp}
[http]
port = {http}
[web]
base_url = "http://127.0.0.1:{http}"
[outbound]
retry_initial_s = 1.0

[[queues]]
name = "support"
alert_timeout_s = 120
last_agent_routing_mode = "queue_members_only"
wrapup_codes = ["resolved", "needs-follow-up"]
signature_text = "-- \\n{{agent_name}}\\nExample Support ({{queue_name}})"

[[queues]]
name = "sales"
alert_timeout_s = 120
last_agent_routing_mode = "queue_members_only"
wrapup_codes = ["sold", "no-interest"]
signature_html = "<p>-- <br><strong>{{agent_name}}</strong><br>Example Sales</p>"

[[queues]]
name = "security"
alert_timeout_s = 120
wrapup_codes = ["harmless"]

[[queues]]
name = "billing"
alert_timeout_s = 120
wrapup_codes = ["paid"]

[[queues]]
name = "returns"
alert_timeout_s = 120
service_level_percent = 90
service_level_seconds = 3600

[[routes]]
address = "support@example.com"
queue = "support"
reply_from = "support@example.com"

[[routes]]
address = "sales@example.com"
queue = "sales"
reply_from = "sales@example.com"

[[routes]]
address = "security@example.com"
queue = "security"
reply_from = "security@example.com"

[[routes]]
address = "billing@example.com"
queue = "billing"
reply_from = "billing@example.com"

[[routes]]
address = "returns@example.com"
queue = "returns"
reply_from = "returns@example.com"
"""


@dataclass
class Server:
    url: str
    smtp_port: int
    config: Path
    data: Path

    def cli(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "postroom.runtime.cli", *args, "--config", str(self.config)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def session(self, user: str) -> ApiSession:
        return ApiSession(self.url, user)

    def sent_mail(self) -> list[bytes]:
        box = self.data / "sent-mail"
        return [p.read_bytes() for sub in ("new", "cur") for p in sorted((box / sub).glob("*"))]


class ApiSession:
    """A signed-in API client (cookie + CSRF token), for setup steps only."""

    def __init__(self, url: str, user: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.csrf = self.call("POST", "/api/v1/auth/login", {"user": user, "password": PASSWORD})[
            "csrf_token"
        ]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.url + path, method=method)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        if getattr(self, "csrf", None):
            req.add_header("X-CSRF-Token", self.csrf)
        with self.opener.open(req, data, timeout=30) as res:
            raw = res.read()
        return json.loads(raw) if raw else None


USERS = (
    ("ann", "agent", "support"),
    ("carl", "agent", "sales"),
    ("dora", "agent", "sales"),
    ("eve", "agent", "security"),
    ("fay", "agent", "billing"),
    ("gil", "agent", "support,sales"),
    ("sue", "supervisor", None),
)


@contextlib.contextmanager
def run_server(
    root: Path, config: str = CONFIG, users: tuple[tuple[str, str, str | None], ...] = USERS
) -> Iterator[Server]:
    """`postroom serve` with `config` (CONFIG's placeholders filled in) under `root`,
    with `users` added (all with PASSWORD); stopped when the block ends."""
    smtp, http = free_port(), free_port()
    path = root / "postroom.toml"
    path.write_text(config.format(data=root / "data", smtp=smtp, http=http))
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / f"e2e-server{'' if config is CONFIG else '-' + root.name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom.runtime.cli", "serve", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "POSTROOM_LOG_FORMAT": "text"},
    )
    srv = Server(f"http://127.0.0.1:{http}", smtp, path, root / "data")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(srv.url + "/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("postroom serve did not start; see e2e-server.log") from None
                time.sleep(0.1)
        for user, role, queues in users:
            args = ["user", "add", user, "--role", role, "--name", user.title(), "--password-stdin"]
            if queues:
                args += ["--queues", queues]
            srv.cli(*args, stdin=PASSWORD + "\n")
        yield srv
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if _missing():
        pytest.skip(_missing() or "")
    with run_server(tmp_path_factory.mktemp("postroom-e2e")) as srv:
        yield srv


@pytest.fixture(scope="session")
def supervisor(server: Server) -> ApiSession:
    return server.session("sue")

"""Two `postroom serve` processes on one PostgreSQL: a configuration change made
in a third process (`postroom config apply`) or through A's admin API is in
force in both, without a restart: B's SMTP and intake take mail for a new route
into the new queue, B's router offers it with the queue's (changed) alert
timeout, and A's API shows the queue. A's API refuses a bad value with the
file's message.

Latencies are measured and printed (run with -s); the test only polls with a
deadline, it never asserts a timing."""

from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import tomli_w

from postroom.store.db import as_utc
from postroom.store.schema import conversations, events, routing_inbox
from tests.integration.test_crash import free_port
from tests.mailfactory import make_email

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

QUEUES: list[dict[str, Any]] = [{"name": "support"}]
ROUTES: list[dict[str, Any]] = [{"address": "support@example.com", "queue": "support"}]


def cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "postroom.runtime.cli", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, input=stdin,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def serve(config: Path, roles: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom.runtime.cli", "serve", "--roles", roles,
         "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"serve --roles {roles} did not start listening on {port}")


def within(check: Callable[[], Any], timeout: float = 10.0) -> tuple[Any, float]:
    """`check()`'s first truthy value and the seconds it took (AssertionError past
    `timeout`)."""
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError("not in force in time")
        time.sleep(0.02)


def send(port: int, to: str, subject: str) -> bool:
    """Whether the SMTP listener took the message (False: the recipient was refused)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("ada@customer.example", [to], make_email(to=to, subject=subject))
        return True
    except smtplib.SMTPRecipientsRefused:
        return False


def offer_of(db: sa.Engine, subject_route: str, nth: int = 0) -> tuple[int, str, float] | None:
    """(conversation, agent, seconds from offer to its deadline) of the nth
    conversation of a route, once it was offered."""
    with db.connect() as conn:
        ids = conn.execute(
            sa.select(conversations.c.id, conversations.c.queue)
            .where(conversations.c.route_address == subject_route)
            .order_by(conversations.c.id)
        ).all()
        if len(ids) <= nth:
            return None
        cid, queue = ids[nth]
        assert queue == "sales"
        row = conn.execute(
            sa.select(events.c.at, events.c.data).where(
                events.c.conversation_id == cid, events.c.kind == "offer_created"
            )
        ).first()
    if row is None:
        return None
    at = as_utc(row.at)
    assert at is not None
    deadline = datetime.fromisoformat(row.data["deadline"])
    return int(cid), str(row.data["agent"]), (deadline - at).total_seconds()


@pytest.fixture
def two_processes(
    tmp_path: Path, pg_url: str
) -> Iterator[tuple[Path, int, int, sa.Engine]]:
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "postroom.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "database_url": pg_url,
                "smtp": {"port": smtp_port},
                "http": {"port": http_port},
                "queues": QUEUES,
                "routes": ROUTES,
            }
        )
    )
    b = serve(config, "smtp,pipeline,router", smtp_port)  # intake and the router
    a = serve(config, "http", http_port)  # the API
    db = sa.create_engine(pg_url)
    try:
        yield config, smtp_port, http_port, db
    finally:
        for proc in (a, b):
            proc.send_signal(signal.SIGTERM)
        for proc in (a, b):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        db.dispose()


def test_a_change_applied_elsewhere_is_in_force_in_both_processes(
    two_processes: tuple[Path, int, int, sa.Engine], tmp_path: Path
) -> None:
    config, smtp_port, http_port, db = two_processes
    cli(config, "user", "add", "ann", "--no-password", "--queues", "support", "--capacity", "3")
    token = cli(config, "user", "token", "ann").stdout.strip()
    cli(config, "agent", "presence", "ann", "on_queue")  # B's router answers
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.get("/api/v1/queues/sales").status_code == 404
    assert not send(smtp_port, "sales@example.com", "too early")  # no route yet

    # A third process applies a new queue and a route for a new address.
    change = tmp_path / "change.toml"
    sales = {"name": "sales", "alert_timeout_s": 30}
    routes = [*ROUTES, {"address": "sales@example.com", "queue": "sales"}]
    change.write_text(tomli_w.dumps({"queues": [*QUEUES, sales], "routes": routes}))
    assert "+ route sales@example.com: added" in cli(config, "config", "apply", str(change)).stdout

    _, intake_s = within(lambda: send(smtp_port, "sales@example.com", "first"))
    _, api_s = within(lambda: api.get("/api/v1/queues/sales").status_code == 200)
    cli(config, "agent", "add", "ann", "--queues", "support,sales")
    (cid, agent, alert_s), _ = within(lambda: offer_of(db, "sales@example.com"))
    assert agent == "ann" and abs(alert_s - 30) < 0.5  # the new queue's alert timeout
    cli(config, "agent", "accept", "ann", str(cid))

    # A changed queue setting: B's router re-configures the queue and uses it.
    with db.connect() as conn:
        mark = int(conn.execute(sa.select(sa.func.max(routing_inbox.c.id))).scalar_one())
    change.write_text(
        tomli_w.dumps({"queues": [*QUEUES, {**sales, "alert_timeout_s": 45}], "routes": routes})
    )
    out = cli(config, "config", "apply", str(change)).stdout
    assert "~ queue 'sales': alert_timeout_s: 30.0 -> 45.0" in out

    def router_took_it() -> bool:
        with db.connect() as conn:
            return bool(
                conn.execute(
                    sa.select(routing_inbox.c.done_at).where(
                        routing_inbox.c.id > mark, routing_inbox.c.kind == "config_changed"
                    )
                ).scalar()
            )

    _, router_s = within(router_took_it)
    assert send(smtp_port, "sales@example.com", "second")
    (_, agent, alert_s), _ = within(lambda: offer_of(db, "sales@example.com", 1))
    assert agent == "ann" and abs(alert_s - 45) < 0.5

    # Through A's admin API: the same change, the same rules and messages as the file.
    cli(config, "user", "add", "adm", "--role", "admin", "--no-password")
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}",
        headers={"Authorization": f"Bearer {cli(config, 'user', 'token', 'adm').stdout.strip()}"},
    )
    bad = admin.put("/api/v1/routing/queues/sales", json={**sales, "alert_timeout_s": 3})
    assert bad.status_code == 422
    error = bad.json()["error"]  # the file says "queues[0].alert_timeout_s: <the same>"
    assert error["field"] == "alert_timeout_s"
    assert "alert_timeout_s: Input should be greater than or equal to 7" in error["message"]
    with db.connect() as conn:
        mark = int(conn.execute(sa.select(sa.func.max(routing_inbox.c.id))).scalar_one())
    done = admin.put("/api/v1/routing/queues/sales", json={**sales, "alert_timeout_s": 60})
    assert done.status_code == 200, done.text
    _, router_api_s = within(router_took_it)
    assert send(smtp_port, "sales@example.com", "third")
    (_, agent, alert_s), _ = within(lambda: offer_of(db, "sales@example.com", 2), timeout=20)
    assert agent == "ann" and abs(alert_s - 60) < 0.5
    print(
        f"\nin force after apply: B's SMTP and intake {intake_s:.2f} s, A's API {api_s:.2f} s, "
        f"B's router {router_s:.2f} s; after A's admin API: B's router {router_api_s:.2f} s"
    )

"""kill -9 while 8 clients send: every message that got 250 is stored exactly once
and processed after a restart (the promise behind "nothing lost")."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from postroom.store.db import create_engine
from postroom.store.schema import conversations, messages
from tests.mailfactory import make_email

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(config: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom.runtime.cli", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not start listening")


def status(config: Path) -> dict[str, dict[str, int]]:
    out = subprocess.run(
        [sys.executable, "-m", "postroom.runtime.cli", "status", "--json", "--config", str(config)],
        check=True,
        capture_output=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_kill_9_during_intake_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    config = tmp_path / "postroom.toml"
    config.write_text(
        f'data_dir = "{data}"\n[smtp]\nport = {port}\n[http]\nenabled = false\n'
        "[intake]\nloop_guard_max_messages = 0\n"
        '[[queues]]\nname = "support"\n[[routes]]\naddress = "support@example.com"\nqueue = "support"\n'
    )
    proc = start(config, port)
    accepted: list[str] = []
    lock = threading.Lock()
    dead = threading.Event()

    def client(n: int) -> None:
        j = 0
        while not dead.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    while not dead.is_set():
                        mid = f"k{n}.{j}@customer.example"
                        j += 1
                        smtp.sendmail(
                            "alice@customer.example",
                            ["support@example.com"],
                            make_email(message_id=f"<{mid}>", subject=f"crash {mid}"),
                        )
                        with lock:
                            accepted.append(mid)  # only once the server said 250
            except (OSError, smtplib.SMTPException):
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(accepted) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    dead.set()
    for t in threads:
        t.join()
    assert len(accepted) >= 300

    proc = start(config, port)
    try:
        deadline = time.monotonic() + 90
        while status(config)["messages"]["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    engine = create_engine(f"sqlite:///{data / 'postroom.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages.c.header_message_id, messages.c.status, messages.c.conversation_id)
        ).all()
        n_conv = conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar_one()
    engine.dispose()
    by_id: dict[str, list[str]] = {}
    for mid, st, _ in rows:
        by_id.setdefault(mid, []).append(st)
    for mid in accepted:
        assert by_id.get(mid) == ["processed"], (mid, by_id.get(mid))
    assert all(st != "pending" for _, st, _ in rows)
    # Messages committed just before the kill but not yet answered are kept too;
    # each processed message made exactly one conversation.
    assert n_conv == sum(1 for _, st, _ in rows if st == "processed")

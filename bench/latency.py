"""Latency from the end of SMTP DATA to the offer on the agent's event stream.

Starts `postroom serve` (every role in one process, SQLite) with 40 agents of
capacity 25, each listening on its own Server-Sent Events stream, then sends
emails one at a time over real SMTP and times, for each, the moment the client
finished DATA to the moment the offer event reached the stream of the agent it
was offered to. Printed beside it, measured in the same run: the time from the
end of DATA to the "250" of the same server (the durable intake part), and of
aiosmtpd with a handler that does nothing (the protocol's floor).

    .venv/bin/python bench/latency.py [--emails 1000]

Targets (issue): p50 <= 50 ms, p99 <= 250 ms.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from smtp_intake import free_port, start_null, wait_port

AGENTS = int(__import__("os").environ.get("BENCH_AGENTS", "40"))
CAPACITY = 25


def email(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {i} <c{i}@customer.example>"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"Latency probe {i}"
    msg["Message-ID"] = f"<lat{i}.{time.time_ns()}@customer.example>"
    msg.set_content("Hello, this is a short question about my order.\n" * 20)
    return msg.as_bytes(policy=SMTP)


def send_timed(smtp: smtplib.SMTP, raw: bytes) -> tuple[float, float]:
    """Send one message; return (end of DATA, 250 received) as perf_counter times."""
    smtp.mail("probe@customer.example")
    smtp.rcpt("support@example.com")
    code, _ = smtp.docmd("DATA")
    assert code == 354, code
    body = raw.replace(b"\r\n.", b"\r\n..")
    smtp.send(body + b"\r\n.\r\n")
    end_of_data = time.perf_counter()
    code, reply = smtp.getreply()
    done = time.perf_counter()
    if code != 250:
        raise RuntimeError(f"server answered {code} {reply!r}")
    return end_of_data, done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup_users(config: Path) -> dict[str, str]:
    """Agents with API tokens, created through the services before serve starts."""
    from datetime import UTC, datetime

    from postroom.runtime.settings import load
    from postroom.runtime.wiring import build
    from postroom.services import users

    settings = load(config, env={})
    comps = build(settings)
    hasher = users.password_hasher(fast=True)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    tokens = {}
    for n in range(AGENTS):
        uid = f"agent{n:02d}"
        users.add_user(
            comps.engine,
            clock,
            uid,
            role="agent",
            password=None,
            hasher=hasher,
            queues=["support"],
            capacity=CAPACITY,
            known_queues=["support"],
        )
        tokens[uid] = users.create_token(comps.engine, clock, uid, "bench")
    comps.close()
    return tokens


def stage_times(db_path: Path) -> dict[str, list[float]]:
    """Where the time goes, from the stored timestamps: spooled -> conversation -> offer."""
    import sqlite3
    from datetime import datetime

    def ts(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    con = sqlite3.connect(db_path)
    rows = con.execute(
        "SELECT m.received_at, c.at, o.at FROM messages m "
        "JOIN events c ON c.message_id = m.id AND c.kind = 'conversation_created' "
        "JOIN events o ON o.conversation_id = c.conversation_id AND o.kind = 'offer_created' "
        "WHERE m.direction = 'in'"
    ).fetchall()
    con.close()
    return {
        "spooled -> conversation created (pipeline)": [ts(c) - ts(r) for r, c, _ in rows],
        "conversation created -> offer committed (router)": [ts(o) - ts(c) for _, c, o in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=1000)
    args = parser.parse_args()
    n = min(args.emails, AGENTS * CAPACITY)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        smtp_port, http_port = free_port(), free_port()
        config = folder / "bench.toml"
        config.write_text(
            f'data_dir = "{folder / "data"}"\n[smtp]\nport = {smtp_port}\n'
            f"[http]\nport = {http_port}\n"
            '[log]\nlevel = "WARNING"\n[intake]\nloop_guard_max_messages = 0\n'
            '[[queues]]\nname = "support"\n'
            '[[routes]]\naddress = "support@example.com"\nqueue = "support"\n'
        )
        tokens = setup_users(config)
        proc = subprocess.Popen(
            [sys.executable, "-m", "postroom.runtime.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{http_port}"
        arrivals: dict[int, float] = {}  # conversation id -> when its offer reached the stream
        lock = threading.Lock()
        stop = threading.Event()
        ready = threading.Barrier(AGENTS + 1)

        def listen(uid: str, token: str) -> None:
            try:
                _listen(uid, token)
            except httpx.HTTPError:
                if not stop.is_set():
                    raise

        def _listen(uid: str, token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            with (
                httpx.Client(timeout=None) as client,
                client.stream("GET", f"{base}/api/v1/events/stream", headers=headers) as resp,
            ):
                ready.wait()
                kind = ""
                for line in resp.iter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:") and kind == "offer_created":
                        event: dict[str, Any] = json.loads(line[5:])
                        if event["data"].get("agent") == uid:
                            with lock:
                                arrivals[int(event["conversation_id"])] = time.perf_counter()

        try:
            wait_port(smtp_port)
            wait_port(http_port)
            with httpx.Client(base_url=base) as api:
                for uid, token in tokens.items():
                    r = api.put(
                        f"/api/v1/users/{uid}/presence",
                        json={"presence": "on_queue"},
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=30,
                    )
                    r.raise_for_status()
            threads = [
                threading.Thread(target=listen, args=item, daemon=True) for item in tokens.items()
            ]
            for t in threads:
                t.start()
            ready.wait(timeout=60)
            time.sleep(0.5)
            latencies: list[float] = []
            acks: list[float] = []
            with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
                smtp.ehlo()
                for i in range(n):
                    end_of_data, done = send_timed(smtp, email(i))
                    acks.append(done - end_of_data)
                    cid = i + 1  # conversations are numbered in arrival order here
                    deadline = time.perf_counter() + 10
                    while time.perf_counter() < deadline:
                        with lock:
                            got = arrivals.get(cid)
                        if got is not None:
                            latencies.append(got - end_of_data)
                            break
                        time.sleep(0.0005)
                    else:
                        raise RuntimeError(f"no offer for conversation {cid} within 10 s")
            stop.set()
        finally:
            proc.terminate()
            proc.wait(30)
        stages = stage_times(folder / "data" / "postroom.db")
        null_port = free_port()
        null = start_null(null_port)
        try:
            with smtplib.SMTP("127.0.0.1", null_port) as smtp:
                smtp.ehlo()
                null_acks = [
                    (lambda t: t[1] - t[0])(send_timed(smtp, email(i))) for i in range(min(n, 300))
                ]
        finally:
            null.terminate()
            null.wait(30)

    def row(name: str, values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return f"{name:<52} {statistics.median(ms):>8.1f} {percentile(ms, 0.99):>8.1f} {len(ms):>6}"

    print(f"Latency, {n} emails sent one at a time, {AGENTS} agents listening (ms)")
    print(f"{'what':<52} {'p50':>8} {'p99':>8} {'n':>6}")
    print(row("end of DATA -> offer on the agent's stream", latencies))
    print(row("end of DATA -> 250 (postroom, durable)", acks))
    print(row("end of DATA -> 250 (aiosmtpd, null handler)", null_acks))
    for name, values in stages.items():
        print(row(name, values))
    print("targets: offer p50 <= 50 ms, p99 <= 250 ms")


if __name__ == "__main__":
    main()

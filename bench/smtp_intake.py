"""SMTP intake throughput with a durable 250, beside its baselines, measured in one run.

Prints, for 25 KiB messages at 1 and 8 concurrent clients:
  - the raw fsync rate of this disk (write 25 KiB + fsync, one file each);
  - aiosmtpd with a handler that does nothing (the protocol's ceiling here);
  - `postroom serve` (SMTP listener + blob fsync + group-committed row),
    answering 250 only when durable: once with every role in one process (the
    pipeline parses and routes in the same process), once with the SMTP role and
    the pipeline role in two processes sharing the database.
Servers run in their own processes; the clients (stdlib smtplib, one
connection per client process) are the same for every server.

    .venv/bin/python bench/smtp_intake.py [--messages 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

SIZE = 25 * 1024


def message(i: int, client: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"c{client}.{i}@customer.example"  # distinct senders: no loop guard
    msg["To"] = "support@example.com"
    msg["Subject"] = f"bench {client}.{i}"
    msg["Message-ID"] = f"<b{client}.{i}.{time.time_ns()}@customer.example>"
    line = "The quick brown fox jumps over the lazy dog. 0123456789\n"
    msg.set_content(line * (SIZE // len(line)))
    return msg.as_bytes(policy=SMTP)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _client(port: int, client: int, count: int, barrier: Any, out: Any) -> None:
    payloads = [message(i, client) for i in range(count)]
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo()
        barrier.wait()
        for raw in payloads:
            smtp.sendmail("bench@customer.example", ["support@example.com"], raw)
    out.put(time.perf_counter())


def drive(port: int, clients: int, total: int) -> float:
    """Messages per second from `clients` client processes, one connection each.

    Client processes, not threads: clients must not share one GIL, or the client
    becomes what is measured.
    """
    per = total // clients
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    out: Any = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(port, c, per, barrier, out)) for c in range(clients)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    ends = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"client failed with exit code {p.exitcode}")
    return per * clients / (max(ends) - start)


def fsync_rate(folder: Path, n: int = 500) -> float:
    data = os.urandom(SIZE)
    start = time.perf_counter()
    for i in range(n):
        fd = os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
    return n / (time.perf_counter() - start)


def null_server(port: int) -> None:
    from aiosmtpd.smtp import SMTP as Server

    class Null:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(
            lambda: Server(Null(), data_size_limit=None), "127.0.0.1", port
        )
        await srv.serve_forever()

    asyncio.run(main())


def start_null(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, __file__, "--null-server", str(port)])
    wait_port(port)
    return proc


def start_postroom(port: int, folder: Path, roles: str | None) -> list[subprocess.Popen[bytes]]:
    cfg = folder / "bench.toml"
    cfg.write_text(
        f'data_dir = "{folder / "data"}"\n[smtp]\nport = {port}\n[http]\nenabled = false\n'
        '[log]\nlevel = "WARNING"\n[intake]\nloop_guard_max_messages = 0\n'
        "pipeline_poll_s = 0.05\n"
        '[[queues]]\nname = "support"\n'
        '[[routes]]\naddress = "support@example.com"\nqueue = "support"\n'
    )
    base = [sys.executable, "-m", "postroom.runtime.cli", "serve", "--config", str(cfg)]
    procs = []
    for role in roles.split(";") if roles else [None]:
        extra = ["--roles", role] if role else []
        procs.append(subprocess.Popen(base + extra, stdout=subprocess.DEVNULL))
    wait_port(port)
    return procs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1200)
    parser.add_argument("--null-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.null_server:
        null_server(args.null_server)
        return
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        (folder / "fsync").mkdir()
        rate = fsync_rate(folder / "fsync")
        rows.append(("raw disk: write 25 KiB + fsync", "-", f"{rate:,.0f}"))
        setups: list[tuple[str, str | None]] = [
            ("aiosmtpd, null handler (not durable)", "null"),
            ("postroom serve, one process (all roles)", None),
            ("postroom: smtp process + pipeline process", "smtp;pipeline"),
        ]
        for clients in (1, 8):
            for name, roles in setups:
                port = free_port()
                sub = folder / f"run{len(rows)}"
                sub.mkdir()
                procs = [start_null(port)] if roles == "null" else start_postroom(port, sub, roles)
                try:
                    drive(port, clients, 8 * clients)  # warm up connections and caches
                    rate = drive(port, clients, args.messages)
                finally:
                    for proc in procs:
                        proc.terminate()
                        proc.wait(30)
                rows.append((name, str(clients), f"{rate:,.0f}"))
    print(f"SMTP intake, 25 KiB messages, {args.messages} per run ({os.cpu_count()} cores)")
    print(f"{'what':<44} {'clients':>7} {'msgs/s':>8}")
    for what, clients, rate in rows:
        print(f"{what:<44} {clients:>7} {rate:>8}")


if __name__ == "__main__":
    main()

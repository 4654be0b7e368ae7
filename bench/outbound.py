"""Outbound throughput to a loopback SMTP relay, beside a baseline measured in the same run.

Prints, for N agent replies (about 2 KiB each) in one conversation:
  - baseline: the stdlib smtplib client sending the same bytes to the same relay
    on one connection, with no outbox (the relay's and client's ceiling here);
  - queue: `OutboundService.queue_reply` (compose + blob fsync + one transaction
    with the message row, outbox row and event);
  - sender: the sender worker draining the outbox (claim, send on one reused
    connection, record `sent` with events), from queued to all `sent`.
The relay (aiosmtpd, answering 250 to everything) runs in its own process.
Storage is SQLite in a temporary folder; with --postgres URL (a server where that
user may create databases) a throw-away database is created there and dropped.

    .venv/bin/python bench/outbound.py [--messages 1000] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import smtplib
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from postroom.outbound.sender import SenderWorker, SmtpTransport
from postroom.runtime.settings import from_mapping
from postroom.runtime.wiring import build
from postroom.services.outbound import OutboundConfig, OutboundService
from postroom.store.schema import messages

CONFIG: dict[str, Any] = {
    "queues": [{"name": "support"}],
    "routes": [
        {"address": "support@example.com", "queue": "support", "reply_from": "support@example.com"}
    ],
}
CUSTOMER = (
    b"From: Alice <alice@customer.example>\r\nTo: support@example.com\r\n"
    b"Subject: Printer on fire\r\nMessage-ID: <bench-c1@customer.example>\r\n"
    b"Date: Fri, 20 Nov 2026 10:00:00 +0000\r\n\r\nHelp!\r\n"
)
REPLY = "Thank you for writing. We are looking into it and will answer shortly.\n" * 28


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NullHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 OK"


def run_relay(port: int) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(NullHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"relay did not start on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--postgres", default=None, metavar="URL")
    args = parser.parse_args()
    n = args.messages

    database_url = None
    if args.postgres:
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        name = f"postroom_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        database_url = sa.make_url(args.postgres).set(database=name).render_as_string(False)
    try:
        run(n, database_url)
    finally:
        if args.postgres:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def run(n: int, database_url: str | None) -> None:
    port = free_port()
    relay = mp.Process(target=run_relay, args=(port,), daemon=True)
    relay.start()
    wait_port(port)
    try:
        with tempfile.TemporaryDirectory(prefix="postroom-bench-") as tmp:
            settings = replace(from_mapping(CONFIG), data_dir=Path(tmp), database_url=database_url)
            comps = build(settings)
            try:
                acc = comps.spool().accept_sync(
                    CUSTOMER, source="smtp", envelope_to=("support@example.com",)
                )
                comps.intake.drain()
                with comps.engine.connect() as conn:
                    cid = (
                        conn.execute(messages.select().where(messages.c.id == acc.message_pk))
                        .one()
                        .conversation_id
                    )
                svc = OutboundService(
                    comps.engine,
                    comps.blobs,
                    OutboundConfig.from_settings(settings.outbound, settings.intake),
                    comps.clock,
                )
                started = time.perf_counter()
                queued = [svc.queue_reply(cid, text=f"{REPLY}#{i}\n") for i in range(n)]
                queue_s = time.perf_counter() - started
                raws = []
                with comps.engine.connect() as conn:
                    for q in queued:
                        sha = (
                            conn.execute(messages.select().where(messages.c.id == q.message_pk))
                            .one()
                            .raw_sha256
                        )
                        raws.append(comps.blobs.get(sha))
                size = sum(len(r) for r in raws) // n

                started = time.perf_counter()
                client = smtplib.SMTP("127.0.0.1", port)
                for raw in raws:
                    client.sendmail("support@example.com", ["alice@customer.example"], raw)
                client.quit()
                baseline_s = time.perf_counter() - started

                worker = SenderWorker(svc, SmtpTransport("127.0.0.1", port), comps.clock)
                started = time.perf_counter()
                sent = worker.run_once()
                sender_s = time.perf_counter() - started
                counts = svc.status_counts()
            finally:
                comps.close()
    finally:
        relay.terminate()
        relay.join()
    store = "PostgreSQL" if database_url else "SQLite"
    print(f"{n} messages of ~{size} bytes, {store}, relay: aiosmtpd on loopback")
    print(f"  baseline smtplib, one connection, no outbox : {n / baseline_s:8.0f} msgs/s")
    print(f"  queue_reply (compose + store)               : {n / queue_s:8.0f} msgs/s")
    print(f"  sender worker (claim, send, record)         : {sent / sender_s:8.0f} msgs/s")
    print(f"  outbox afterwards: {counts}")


if __name__ == "__main__":
    main()

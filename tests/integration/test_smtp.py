"""Real SMTP sessions on loopback against the listener, spool and pipeline."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from postroom.ingest.pipeline import PipelineWorker
from postroom.ingest.smtp import IntakeHandler, start_smtp_server, tls_context
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.store.intake_repo import status_counts
from postroom.store.schema import messages
from tests.mailfactory import make_email


@dataclass
class Running:
    port: int
    comps: Components

    def counts(self) -> dict[str, int]:
        with self.comps.engine.connect() as conn:
            return status_counts(conn)["messages"]  # type: ignore[no-any-return]


def _run_server(settings: Settings, max_size: int, tls: ssl.SSLContext | None) -> Iterator[Running]:
    comps = build(settings)
    worker = PipelineWorker(comps.intake, idle_poll_s=0.2)
    spool = comps.spool(on_committed=worker.wake)
    worker.start()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, asyncio.Server] = {}

    async def start() -> None:
        handler = IntakeHandler(
            spool, lambda: settings.routes, max_recipients=settings.smtp.max_recipients
        )
        holder["server"] = await start_smtp_server(
            handler,
            host="127.0.0.1",
            port=0,
            hostname="test.local",
            max_message_size=max_size,
            tls=tls,
        )
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(10)
    port = holder["server"].sockets[0].getsockname()[1]
    try:
        yield Running(port, comps)
    finally:
        loop.call_soon_threadsafe(holder["server"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        worker.stop()
        comps.close()


@pytest.fixture
def smtp(settings: Settings) -> Iterator[Running]:
    yield from _run_server(settings, max_size=200_000, tls=None)


def wait_processed(r: Running, n: int, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = r.counts()
        if c["pending"] == 0 and c["received"] >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"not processed in time: {r.counts()}")


def test_accepts_routed_mail_with_250_and_processes_it(smtp: Running) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        code, _ = client.ehlo("client.example")
        assert code == 250 and client.has_extn("size")
        assert int(client.esmtp_features["size"]) == 200_000
        refused = client.sendmail("alice@customer.example", ["support@example.com"], make_email())
        assert refused == {}
    wait_processed(smtp, 1)
    assert smtp.counts()["processed"] == 1


def test_unknown_recipient_gets_550_5_1_1_never_relayed(smtp: Running) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.ehlo()
        client.mail("alice@customer.example")
        code, text = client.rcpt("victim@elsewhere.example")
        assert code == 550 and text.startswith(b"5.1.1")
        code, _ = client.rcpt("support@example.com")
        assert code == 250
    with (
        pytest.raises(smtplib.SMTPRecipientsRefused),
        smtplib.SMTP("127.0.0.1", smtp.port) as client,
    ):
        client.sendmail("a@b.example", ["victim@elsewhere.example"], make_email())


def test_size_is_enforced_on_the_encoded_message_with_552(smtp: Running) -> None:
    big = make_email(
        attachment=("big.bin", b"\0" * 160_000, "application/octet-stream")
    )  # ~216 KB base64
    assert len(big) > 200_000
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.ehlo()
        client.esmtp_features.pop("size")  # do not declare SIZE: the server must count DATA itself
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("alice@customer.example", ["support@example.com"], big)
        assert err.value.smtp_code == 552
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.ehlo()
        code, _ = client.mail("alice@customer.example", ["SIZE=999999"])
        assert code == 552
    assert smtp.counts()["received"] == 0


def test_at_most_50_recipients(smtp: Running) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.ehlo()
        client.mail("alice@customer.example")
        codes = [client.rcpt("support@example.com")[0] for _ in range(51)]
    assert codes[:50] == [250] * 50 and codes[50] == 452


def test_many_concurrent_clients_all_stored_once(smtp: Running) -> None:
    def send(i: int) -> int:
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            for j in range(15):
                # one sender per message: the loop guard would hold a flood from one address
                who = f"c{i}.{j}@customer.example"
                client.sendmail(
                    who,
                    ["support@example.com"],
                    make_email(sender=who, message_id=f"<{who}>", subject=f"s{i}.{j}"),
                )
        return 15

    with ThreadPoolExecutor(8) as pool:
        sent = sum(pool.map(send, range(8)))
    wait_processed(smtp, sent)
    counts = smtp.counts()
    assert counts["received"] == sent == counts["processed"] and counts["duplicates"] == 0
    with smtp.comps.engine.connect() as conn:
        distinct = conn.execute(
            sa.select(sa.func.count(sa.distinct(messages.c.header_message_id)))
        ).scalar_one()
    assert distinct == sent


def test_starttls_with_configured_certificate(settings: Settings, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    s = replace(settings, smtp=replace(settings.smtp, tls_cert=str(cert), tls_key=str(key)))
    for running in _run_server(s, 1_000_000, tls_context(str(cert), str(key))):
        with smtplib.SMTP("127.0.0.1", running.port) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=ssl._create_unverified_context())
            client.ehlo()
            assert (
                client.sendmail("alice@customer.example", ["support@example.com"], make_email())
                == {}
            )
        wait_processed(running, 1)


def test_missing_tls_certificate_is_a_clear_configuration_error(tmp_path: Path) -> None:
    from postroom.domain.errors import ConfigError

    with pytest.raises(ConfigError, match=r"smtp\.tls_cert"):
        tls_context(str(tmp_path / "nope.pem"), str(tmp_path / "nope.key"))

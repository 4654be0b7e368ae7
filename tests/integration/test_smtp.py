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
from typing import Any

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


def stored_raw(r: Running, pk: int) -> bytes:
    with r.comps.engine.connect() as conn:
        m = conn.execute(sa.select(messages).where(messages.c.id == pk)).one()
    return bytes(m.raw) if m.raw is not None else r.comps.blobs.get(m.raw_sha256)


def test_long_lines_in_data_are_accepted_and_stored_byte_exact(smtp: Running) -> None:
    line = b"x" * 4_000 + "ü".encode() * 3_000  # 10,000 bytes on one line
    raw = (
        b"From: Alice <alice@customer.example>\r\nTo: support@example.com\r\n"
        b"Subject: long line\r\nMessage-ID: <long@customer.example>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + line
        + b"\r\n.leading dot, unstuffed again\r\nend\r\n"
    )
    assert len(line) == 10_000
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.ehlo()
        client.mail("alice@customer.example", ["BODY=8BITMIME"])
        client.rcpt("support@example.com")
        code, text = client.data(raw)
    assert code == 250, text
    pk = int(text.decode().rsplit(" ", 1)[1])
    assert stored_raw(smtp, pk) == raw
    wait_processed(smtp, 1)
    assert smtp.counts()["processed"] == 1


def test_a_line_longer_than_the_size_limit_is_552_5_3_4(smtp: Running) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.ehlo()
        client.esmtp_features.pop("size")
        client.mail("alice@customer.example")
        client.rcpt("support@example.com")
        code, text = client.data(b"Subject: x\r\n\r\n" + b"y" * 300_000 + b"\r\n")
        assert (code, text) == (552, b"5.3.4 Message too big for system")
        assert client.noop()[0] == 250  # the session goes on
    assert smtp.counts()["received"] == 0


def test_error_replies_carry_enhanced_status_codes(smtp: Running) -> None:
    big = make_email(attachment=("big.bin", b"\0" * 160_000, "application/octet-stream"))
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        assert client.docmd("MAIL FROM:<a@b.example>") == (503, b"5.5.1 Error: send HELO first")
        client.ehlo()
        assert client.docmd("FROB") == (500, b'5.5.2 Error: command "FROB" not recognized')
        code, text = client.docmd("MAIL", "TO:<a@b.example>")
        assert (code, text[:20]) == (501, b"5.5.4 Syntax: MAIL F")
        assert client.docmd("RCPT TO:<support@example.com>") == (
            503,
            b"5.5.1 Error: need MAIL command",
        )
        assert client.docmd("MAIL FROM:<a@b.example> SIZE=999999") == (
            552,
            b"5.3.4 Message size exceeds fixed maximum message size",
        )
        assert client.docmd("MAIL FROM:<a@b.example>")[0] == 250
        assert client.docmd("DATA") == (503, b"5.5.1 Error: need RCPT command")
        assert client.docmd("X" * 600) == (500, b"5.5.2 Command line too long")
        assert client.docmd("RCPT TO:<support@example.com>")[0] == 250
        code, text = client.data(big)  # SIZE not declared: the server counts DATA
        assert (code, text) == (552, b"5.3.4 Message too big for system")
        assert client.docmd("RCPT TO:<nobody@elsewhere.example>")[1].startswith(b"5.")


def _conversations_of(r: Running, pks: list[int], timeout: float) -> dict[int, sa.Row[Any]]:
    """The rows of `pks` once none is pending, or fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        with r.comps.engine.connect() as conn:
            rows = {
                m.id: m for m in conn.execute(sa.select(messages).where(messages.c.id.in_(pks)))
            }
        if len(rows) == len(pks) and all(m.status != "pending" for m in rows.values()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError({k: v.status for k, v in rows.items()})
        time.sleep(0.05)


def _send_each(port: int, raws: list[bytes]) -> list[int]:
    pks = []
    with smtplib.SMTP("127.0.0.1", port) as client:
        for i, raw in enumerate(raws):
            who = f"sender{i}@customer.example"
            client.ehlo()
            client.mail(who)
            client.rcpt("support@example.com")
            code, text = client.data(raw)
            assert code == 250, text
            pks.append(int(text.decode().rsplit(" ", 1)[1]))
    return pks


def test_html_bomb_between_two_mails_does_not_hold_them(settings: Settings) -> None:
    # 100,000 nested <div>: quadratic work for an unbounded sanitizer.
    bomb = make_email(subject="bomb", html="<div>" * 100_000, sender="b@bomb.example")
    s = replace(settings, intake=replace(settings.intake, parse_timeout_s=2.0))
    for running in _run_server(s, 2_000_000, None):
        first, bad, last = _send_each(
            running.port,
            [make_email(subject="first"), bomb, make_email(subject="last")],
        )
        rows = _conversations_of(running, [first, last], timeout=10)
        assert rows[first].status == rows[last].status == "processed"
        assert rows[first].conversation_id and rows[last].conversation_id
        m = _conversations_of(running, [bad], timeout=20)[bad]
        # Either parsed safely (bounded work) or stopped at its budget, with the reason.
        assert m.status == "processed" or (
            m.status == "quarantined" and "took longer than 2 s to parse" in m.error
        ), (m.status, m.error)


def test_mail_over_its_parse_budget_is_quarantined_while_the_next_goes_on(
    settings: Settings,
) -> None:
    # Large but legitimate: a 1.8 MB HTML newsletter with a 6 MB attachment. A
    # budget of 0.1 s stands for a hostile message that would take minutes.
    html = "".join(
        f"<p>Paragraph {i} with <b>bold</b> and <a href='https://x.example/{i}'>a link</a>.</p>\n"
        for i in range(20_000)
    )
    heavy = make_email(
        subject="newsletter",
        html=html,
        attachment=("data.bin", bytes(range(256)) * 24_000, "application/octet-stream"),
    )
    s = replace(settings, intake=replace(settings.intake, parse_timeout_s=0.1))
    for running in _run_server(s, 20_000_000, None):
        first, bad, last = _send_each(
            running.port, [make_email(subject="first"), heavy, make_email(subject="last")]
        )
        rows = _conversations_of(running, [first, bad, last], timeout=30)
        assert rows[first].status == rows[last].status == "processed"
        assert rows[last].conversation_id
        m = rows[bad]
        assert (m.status, m.stage) == ("quarantined", "parse")
        assert "took longer than 0.1 s to parse" in m.error
        assert f"postroom quarantine retry {bad}" in m.error

"""The sender: a thread that delivers the outbox through a transport.

The job: answer pending auto-acknowledgement requests, claim due outbox rows,
hand each to a transport — the configured SMTP relay (one connection reused
across a batch, STARTTLS or TLS, login) or, with no relay configured, a local
Maildir at ``data_dir/sent-mail`` — and report each answer back to the outbox
service, which records ``sent``, a retry or ``failed``.

What it must not do: decide retries, statuses or message content (that is
``postroom.services.outbound``), or keep state of its own: every row it has not
reported is given back on stop, or becomes due again when its lease ends.
"""

from __future__ import annotations

import logging
import mailbox
import smtplib
import ssl
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from postroom.services.outbound import Delivery, DeliveryResult, OutboundService

log = logging.getLogger("postroom.sender")


class Transport(Protocol):
    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> DeliveryResult:
        """Deliver one message; never raises for delivery problems."""
        ...

    def close(self) -> None:
        """Drop any open connection (called when the outbox is empty and on stop)."""
        ...


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class SmtpTransport:
    """Delivery through an SMTP relay with the standard library's client.

    One connection serves consecutive messages; it is dropped after any error
    and reopened for the next message.
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        tls: str = "none",  # none | starttls | ssl
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = 60.0,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if tls not in ("none", "starttls", "ssl"):
            raise ValueError("tls must be none, starttls or ssl")
        self.host, self.port, self.tls = host, port, tls
        self.user, self.password = user, password
        self.timeout_s = timeout_s
        self.local_hostname = local_hostname
        self.ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        ctx = self.ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.tls == "ssl":
            smtp = smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout_s,
                context=ctx,
            )
        else:
            smtp = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout_s
            )
        try:
            smtp.ehlo()
            if self.tls == "starttls":
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> DeliveryResult:
        where = f"relay {self.host}:{self.port}"
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.sendmail(envelope_from, list(recipients), raw)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            answers = {r: f"{code} {_text(msg)}" for r, (code, msg) in exc.recipients.items()}
            permanent = all(500 <= code < 600 for code, _ in exc.recipients.values())
            detail = "; ".join(f"{r}: {a}" for r, a in answers.items())
            return DeliveryResult(False, permanent, f"{where} refused every recipient: {detail}")
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            return DeliveryResult(
                False,
                False,
                f"{where} refused the login ({exc.smtp_code} {_text(exc.smtp_error)}); "
                "check [outbound] relay_user and relay_password",
            )
        except smtplib.SMTPResponseException as exc:
            self.close()
            code = exc.smtp_code
            return DeliveryResult(
                False, 500 <= code < 600, f"{where} answered {code} {_text(exc.smtp_error)}"
            )
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return DeliveryResult(
                False, False, f"{where} unreachable or failed: {type(exc).__name__}: {exc}"
            )
        return DeliveryResult(
            True,
            detail="250",
            refused={r: f"{code} {_text(msg)}" for r, (code, msg) in refused.items()},
        )

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


class MaildirTransport:
    """Delivery into a local Maildir: the demo's "customer mailbox".

    Every message lands once in ``<path>/new`` whatever its recipients, with a
    ``Return-Path`` and an ``X-Envelope-To`` line in front (LF line ends, as
    Maildir readers expect). Open it with any mail client that reads Maildir
    (``mutt -f <path>``) or read the files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box = mailbox.Maildir(str(path), create=True)

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> DeliveryResult:
        head = f"Return-Path: <{envelope_from}>\nX-Envelope-To: {', '.join(recipients)}\n"
        try:
            key = self._box.add(head.encode() + raw.replace(b"\r\n", b"\n"))
        except OSError as exc:
            return DeliveryResult(False, False, f"cannot write to {self.path}: {exc}")
        return DeliveryResult(True, detail=f"stored as {key}")

    def close(self) -> None:
        return None


class SenderWorker:
    """Runs the outbox: acknowledgements first, then due deliveries, batch after batch."""

    def __init__(
        self,
        service: OutboundService,
        transport: Transport,
        clock: Callable[[], datetime],
        *,
        poll_s: float = 1.0,
        batch: int = 50,
        record_every: int = 25,
    ) -> None:
        self.service = service
        self.transport = transport
        self.clock = clock
        self.poll_s = poll_s
        self.batch = batch
        self.record_every = record_every
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self, *_: object) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def run_once(self) -> int:
        """One pass (acknowledgements, then every due row); returns deliveries tried."""
        self.service.queue_auto_acks()
        tried = 0
        while not self._stop.is_set():
            claimed = self.service.claim_due(self.batch)
            if not claimed:
                break
            tried += self._deliver(claimed)
        self.transport.close()
        return tried

    def _deliver(self, claimed: list[Delivery]) -> int:
        done: list[tuple[Delivery, DeliveryResult]] = []
        tried = 0
        try:
            for i, d in enumerate(claimed):
                if self._stop.is_set():
                    self.service.release(claimed[i:])
                    break
                done.append((d, self.transport.send(d.envelope_from, d.recipients, d.raw)))
                tried += 1
                if len(done) >= self.record_every:
                    self.service.record(done)
                    done = []
        finally:
            self.service.record(done)
        return tried

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:
                log.exception("sender pass failed; retrying")
                self.transport.close()
                self._stop.wait(self.poll_s)
            delay = self.poll_s
            try:
                due = self.service.next_due()
            except Exception:
                due = None
            if due is not None:
                delay = max(0.0, min(delay, (due - self.clock()).total_seconds()))
            self._wake.wait(delay)
        self.transport.close()

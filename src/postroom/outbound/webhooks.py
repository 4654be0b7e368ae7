"""The webhook deliverer: a thread that posts due deliveries to their receivers.

The job: on every pass, let the service turn new events into deliveries
(`dispatch`), claim due deliveries, sign each body
(``Postroom-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``) and
POST it with a timeout on every step, then report each answer (status code or
the connection error) back to the service, which records delivered, a retry or
failed. `verify` is the receiver's side of the signature, for tests and as the
reference for docs/admin-guide.md.

What it must not do: decide retries, order or what is sent (that is
``postroom.services.admin.webhooks``), follow redirects, or keep state of its
own: every delivery it has not reported is given back on stop, or is due again
when its lease ends. It runs in its own thread with its own connections, so a
slow or dead receiver never holds up intake or routing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Protocol

import httpx

from postroom.services.admin.webhooks import Answer, Outgoing, WebhookService

log = logging.getLogger("postroom.webhooks")

SIGNATURE_HEADER = "Postroom-Signature"
EVENT_HEADER = "Postroom-Event"
DELIVERY_HEADER = "Postroom-Delivery"
USER_AGENT = "Postroom-Webhooks/1"
TIMEOUT_S = 10.0  # connect, each read, each write; a receiver should answer at once
TOLERANCE_S = 300  # receivers should refuse signatures older (or newer) than this
RESPONSE_KEEP = 300  # bytes of a refusing receiver's answer kept for the admin
POLL_S = 1.0
BATCH = 50
PARALLEL = 8  # posts in flight at once
PRUNE_EVERY_S = 3600.0  # how often old delivery history is deleted


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` under `secret`."""
    signed = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={int(timestamp)},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, now: float, tolerance_s: float = TOLERANCE_S
) -> bool:
    """Is `header` a valid Postroom-Signature for `body`, made within `tolerance_s`
    of `now` (unix seconds)? Any v1 value may match (several during a secret's rotation
    is allowed by the format, though Postroom sends one)."""
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            given.append(value)
    if timestamp is None or not given or abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, g) for g in given)


class HttpTransport:
    """POSTs with httpx; one client (connection pool) for the worker's life."""

    def __init__(
        self,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )

    def post(self, out: Outgoing, now: datetime) -> Answer:
        """Deliver one; never raises for delivery problems."""
        t = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(out.secret, t, out.body),
            EVENT_HEADER: out.kind,
            DELIVERY_HEADER: str(out.delivery_id),
        }
        try:
            with self._client.stream("POST", out.url, content=out.body, headers=headers) as resp:
                code = resp.status_code
                if 200 <= code < 300:
                    return Answer(True, code)
                head = b""
                for chunk in resp.iter_bytes():
                    head += chunk
                    if len(head) >= RESPONSE_KEEP:
                        break
        except httpx.TimeoutException as exc:
            return Answer(
                False, None, f"no answer within {self.timeout_s:g} s ({type(exc).__name__})"
            )
        except Exception as exc:  # refused, reset, TLS, a URL httpx cannot use, ...
            return Answer(False, None, f"cannot reach {out.url}: {type(exc).__name__}: {exc}")
        text = head[:RESPONSE_KEEP].decode("utf-8", "replace").strip()
        where = f" to {resp.headers.get('location')}" if 300 <= code < 400 else ""
        detail = f"answered {code}{where}" + (f": {text}" if text else "")
        return Answer(False, code, detail)

    def close(self) -> None:
        self._client.close()


class Poster(Protocol):
    """What the worker needs from a transport (HttpTransport; tests may give their own)."""

    def post(self, out: Outgoing, now: datetime) -> Answer:
        """Deliver one; never raises for delivery problems."""
        ...

    def close(self) -> None: ...


class WebhookWorker:
    """Dispatches new events and delivers due deliveries, pass after pass."""

    def __init__(
        self,
        service: WebhookService,
        transport: Poster,
        clock: Callable[[], datetime],
        *,
        poll_s: float = POLL_S,
        batch: int = BATCH,
        parallel: int = PARALLEL,
    ) -> None:
        self.service = service
        self.transport = transport
        self.clock = clock
        self.poll_s = poll_s
        self.batch = batch
        self._pruned_at: datetime | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="webhook-post")
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self, *_: object) -> None:
        """New events were committed: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.transport.close()

    def run_once(self) -> int:
        """One pass: dispatch every new event, then try every due delivery; returns
        the deliveries tried."""
        while not self._stop.is_set():
            if self.service.dispatch() < self.service.config.dispatch_batch:
                break
        tried = 0
        while not self._stop.is_set():
            claimed = self.service.claim_due(self.batch)
            if not claimed:
                break
            tried += self._deliver(claimed)
        now = self.clock()
        if self._pruned_at is None or (now - self._pruned_at).total_seconds() >= PRUNE_EVERY_S:
            self._pruned_at = now
            self.service.prune()
        return tried

    def _deliver(self, claimed: Sequence[Outgoing]) -> int:
        """Post a batch, `parallel` at a time, so one hanging receiver delays the
        others by one timeout at most."""
        done: list[tuple[Outgoing, Answer]] = []
        untried: list[Outgoing] = []
        try:
            futures = [(out, self._pool.submit(self._post, out)) for out in claimed]
            for out, future in futures:
                if future.cancelled() or (self._stop.is_set() and future.cancel()):
                    untried.append(out)
                    continue
                answer = future.result()
                if answer is None:
                    untried.append(out)
                else:
                    done.append((out, answer))
        finally:
            self.service.record(done)
            self.service.release(untried)
        return len(done)

    def _post(self, out: Outgoing) -> Answer | None:
        if self._stop.is_set():
            return None
        return self.transport.post(out, self.clock())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:
                log.exception("webhook pass failed; retrying")
                self._stop.wait(self.poll_s)
            delay = self.poll_s
            try:
                due = self.service.next_due()
            except Exception:
                due = None
            if due is not None:
                # A due time already past belongs to a delivery waiting behind an
                # earlier one (or for its webhook to be enabled): poll as usual.
                ahead = (due - self.clock()).total_seconds()
                if ahead > 0:
                    delay = min(delay, ahead)
            self._wake.wait(delay)

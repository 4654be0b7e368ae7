"""Outbound mail end to end: outbox → sender → a real SMTP relay on loopback (or the
local Maildir); retries, permanent failures, restarts, acknowledgements, bounces;
the queue's name in From, the customer's message quoted below a reply and a
forward carrying the original and its attachments.
Storage tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

import email
import mailbox
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from postroom.domain.errors import NoReplyAddressError, TooManyRecipientsError
from postroom.mail import compose as mc
from postroom.mail.parse import parse_message
from postroom.outbound.sender import MaildirTransport, SenderWorker, SmtpTransport
from postroom.runtime.serve import build_sender
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services.outbound import OutboundConfig, OutboundService, from_names, retry_delay
from postroom.store.schema import conversations, events, messages, outbox
from tests.mailfactory import make_email

# -- a recording relay ------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def msg(self) -> EmailMessage:
        m = email.message_from_bytes(self.data, policy=default)
        assert isinstance(m, EmailMessage)
        return m


@dataclass
class RecordingHandler:
    """Accepts mail and records it; `script` holds answers to give first (then 250)."""

    script: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    connections: int = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_s:
            time.sleep(self.delay_s)  # blocks the relay's loop: a slow relay
        answer = self.script.pop(0) if self.script else "250 2.0.0 OK"
        self.answers.append(answer)
        if answer.startswith("250"):
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return answer

    def message_ids(self) -> list[str]:
        return [str(r.msg["Message-ID"]).strip("<>") for r in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def relay() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# -- the store ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def without_acks(settings: Settings) -> Settings:
    return replace(settings, routes=tuple(replace(r, auto_ack=None) for r in settings.routes))


@pytest.fixture
def comps(any_settings: Settings, clock: FakeClock) -> Iterator[Components]:
    """The test configuration without acknowledgements (their tests use `ack_comps`)."""
    c = build(without_acks(any_settings), clock=clock)
    yield c
    c.close()


@pytest.fixture
def ack_comps(any_settings: Settings, clock: FakeClock) -> Iterator[Components]:
    """The test configuration: support@example.com answers "We got it: {reference}"."""
    c = build(any_settings, clock=clock)
    yield c
    c.close()


def service(c: Components, clock: FakeClock, **config: Any) -> OutboundService:
    cfg = replace(OutboundConfig(retry_initial_s=30, retry_max_s=600, max_attempts=3), **config)
    return OutboundService(c.engine, c.blobs, cfg, clock, rand=lambda: 0.5)


def deliver(c: Components, raw: bytes, **kw: Any) -> int:
    acc = c.spool().accept_sync(raw, source="smtp", envelope_to=("support@example.com",), **kw)
    c.intake.drain()
    return acc.message_pk


def conversation_of(c: Components, pk: int) -> int:
    with c.engine.connect() as conn:
        cid = conn.execute(
            sa.select(messages.c.conversation_id).where(messages.c.id == pk)
        ).scalar_one()
    assert cid is not None
    return int(cid)


def outbox_rows(c: Components) -> list[sa.Row[Any]]:
    with c.engine.connect() as conn:
        return list(conn.execute(sa.select(outbox).order_by(outbox.c.id)))


def kinds(c: Components, *wanted: str) -> list[str]:
    with c.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(events.c.kind).where(events.c.kind.in_(wanted)).order_by(events.c.id)
            ).scalars()
        )


def smtp(port: int) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", port, timeout_s=10)


def customer_mail(**kw: Any) -> bytes:
    kw.setdefault("headers", {})
    return make_email(**kw)


# -- queueing ------------------------------------------------------------------------


def test_queue_reply_stores_message_outbox_row_and_event(
    comps: Components, clock: FakeClock
) -> None:
    pk = deliver(comps, customer_mail(message_id="<c1@customer.example>"))
    cid = conversation_of(comps, pk)
    svc = service(comps, clock)
    seen: list[dict[str, Any]] = []
    svc.listeners.append(seen.extend)
    q = svc.queue_reply(cid, text="We are on it.", html="<p>We are on it.</p>", agent_id="ann")
    assert q.recipients == ("alice@customer.example",)
    with comps.engine.connect() as conn:
        m = conn.execute(sa.select(messages).where(messages.c.id == q.message_pk)).one()
        conv = conn.execute(sa.select(conversations).where(conversations.c.id == cid)).one()
    assert (m.direction, m.source, m.sender) == ("out", "agent", "support@example.com")
    assert m.header_message_id == q.message_id
    assert q.message_id.startswith(f"pr.PR-{conv.thread_id}.")
    assert m.thread_id == conv.thread_id and m.conversation_id == cid
    assert m.in_reply_to == ["c1@customer.example"]
    assert m.subject == f"Re: Printer on fire [#PR-{conv.thread_id}]"
    raw = comps.blobs.get(m.raw_sha256)
    parsed = parse_message(raw)
    assert parsed.in_reply_to == ("c1@customer.example",)
    assert parsed.references == ("c1@customer.example",)
    assert parsed.header("Thread-Index") and parsed.header("Thread-Topic") == "Printer on fire"
    assert parsed.auto_submitted is None
    [row] = outbox_rows(comps)
    assert (row.status, row.attempts, row.message_id) == ("queued", 0, q.message_pk)
    assert [e["kind"] for e in seen] == ["message_queued"]
    assert seen[0]["data"]["agent_id"] == "ann"


def test_customer_reply_to_our_message_joins_the_thread(
    comps: Components, clock: FakeClock
) -> None:
    pk = deliver(comps, customer_mail(message_id="<c1@customer.example>"))
    cid = conversation_of(comps, pk)
    q = service(comps, clock).queue_reply(cid, text="Try turning it off.")
    again = deliver(
        comps,
        customer_mail(
            subject="Re: Printer on fire",
            message_id="<c2@customer.example>",
            in_reply_to=f"<{q.message_id}>",
            references=f"<c1@customer.example> <{q.message_id}>",
        ),
    )
    assert conversation_of(comps, again) == cid
    second = service(comps, clock).queue_reply(cid, text="Good.")
    with comps.engine.connect() as conn:
        refs = conn.execute(
            sa.select(messages.c.references).where(messages.c.id == second.message_pk)
        ).scalar_one()
    assert refs == ["c1@customer.example", q.message_id, "c2@customer.example"]


def test_outlook_thread_index_is_extended(comps: Components, clock: FakeClock) -> None:
    parent_index = mc.new_thread_index(clock.now - timedelta(hours=1), b"G" * 16)
    import base64

    pk = deliver(
        comps,
        customer_mail(
            headers={
                "Thread-Index": base64.b64encode(parent_index).decode(),
                "Thread-Topic": "Printer on fire",
            }
        ),
    )
    q = service(comps, clock).queue_reply(conversation_of(comps, pk), text="ok")
    with comps.engine.connect() as conn:
        sha = conn.execute(
            sa.select(messages.c.raw_sha256).where(messages.c.id == q.message_pk)
        ).scalar_one()
    value = parse_message(comps.blobs.get(sha)).header("Thread-Index")
    index = mc.decode_thread_index(value)
    assert index is not None and len(index) == 27 and index.startswith(parent_index)


def stored_raw(c: Components, message_pk: int) -> EmailMessage:
    with c.engine.connect() as conn:
        sha = conn.execute(
            sa.select(messages.c.raw_sha256).where(messages.c.id == message_pk)
        ).scalar_one()
    m = email.message_from_bytes(c.blobs.get(sha), policy=default)
    assert isinstance(m, EmailMessage)
    return m


def part(msg: EmailMessage, kind: str) -> str:
    found = msg.get_body((kind,))
    assert found is not None, f"no text/{kind} part"
    return str(found.get_content()).replace("\r\n", "\n")


HOSTILE_HTML = (
    "<p>My printer <b>is on fire</b>.</p><script>alert(1)</script>"
    '<img src="https://tracker.example/p.png" onerror="alert(2)">'
    '<a href="javascript:alert(3)">click</a>'
)


def test_reply_quotes_the_customers_message_below_text_and_signature(
    comps: Components, clock: FakeClock
) -> None:
    pk = deliver(
        comps,
        customer_mail(
            sender="Alice Customer <alice@customer.example>",
            body="Hello,\n\nmy printer is on fire.\n> an older quote\n",
            html=HOSTILE_HTML,
        ),
    )
    cid = conversation_of(comps, pk)
    q = service(comps, clock).queue_reply(
        cid,
        text="We are on it.\n\n-- \nAnn",
        html="<div>We are on it.</div><div><br></div><div>-- <br>Ann</div>",
        include="quote",
    )
    msg = stored_raw(comps, q.message_pk)
    intro = "On Fri, 20 Nov 2026 at 10:00 UTC, Alice Customer <alice@customer.example> wrote:"
    assert part(msg, "plain") == (
        "We are on it.\n\n-- \nAnn\n\n"
        + intro
        + "\n> Hello,\n>\n> my printer is on fire.\n> > an older quote\n"
    )
    html = part(msg, "html")
    reply, _, quoted = html.partition('<blockquote type="cite">')
    assert reply.startswith("<div>We are on it.</div><div><br></div><div>-- <br>Ann</div>")
    assert intro.replace("<", "&lt;").replace(">", "&gt;") in reply
    assert "<b>is on fire</b>" in quoted and quoted.rstrip().endswith("</blockquote>")
    # The customer's HTML is sanitized again: nothing active, no remote picture.
    for bad in ("<script", "alert(1)", "onerror", "javascript:", 'src="https://tracker'):
        assert bad not in html
    # Without `include` nothing is quoted (the queue's choice is made by the caller).
    plain_reply = service(comps, clock).queue_reply(cid, text="Only this.")
    assert part(stored_raw(comps, plain_reply.message_pk), "plain") == "Only this.\n"


def test_quote_of_a_message_without_text_part_comes_from_its_html(
    comps: Components, clock: FakeClock
) -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen?= <j@customer.example>\r\nTo: support@example.com\r\n"
        b"Subject: Hilfe\r\nDate: Fri, 20 Nov 2026 10:00:00 +0100\r\n"
        b"Message-ID: <h1@customer.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Erste Zeile</p><p>Zweite</p>\r\n"
    )
    cid = conversation_of(comps, deliver(comps, raw))
    svc = service(comps, clock)
    preview = svc.quote_preview(cid, "quote")
    assert preview is not None
    assert preview["text"].startswith(
        "On Fri, 20 Nov 2026 at 09:00 UTC, Jürgen <j@customer.example>"
    )
    assert "> Erste Zeile" in preview["text"] and "> Zweite" in preview["text"]
    q = svc.queue_reply(cid, text="Gern.", include="quote")
    msg = stored_raw(comps, q.message_pk)
    assert msg.get_body(("html",)) is None  # a text-only reply stays text only
    assert "> Erste Zeile" in part(msg, "plain")


def test_from_carries_the_queue_display_name(comps: Components, clock: FakeClock) -> None:
    cid = conversation_of(comps, deliver(comps, customer_mail()))
    # Defaults: the queue's own name.
    default_names = from_names(comps.settings.queues)
    assert ("support", "support") in default_names
    q = service(comps, clock, from_names=default_names).queue_reply(cid, text="ok")
    assert stored_raw(comps, q.message_pk)["From"] == "support <support@example.com>"
    # A configured name, not ASCII and with a comma: RFC 2047, quoted where needed.
    named = service(comps, clock, from_names=(("support", "Süpport, Team"),))
    q = named.queue_reply(cid, text="ok")
    with comps.engine.connect() as conn:
        m = conn.execute(sa.select(messages).where(messages.c.id == q.message_pk)).one()
    raw = comps.blobs.get(m.raw_sha256)
    assert b"From: =?utf-8?" in raw and "Süpport".encode() not in raw.split(b"\r\n\r\n")[0]
    from_header = stored_raw(comps, q.message_pk)["From"]
    assert from_header.addresses[0].display_name == "Süpport, Team"
    assert from_header.addresses[0].addr_spec == "support@example.com"
    assert ["From", '"Süpport, Team" <support@example.com>'] in m.headers
    # A name with a line break cannot add a header.
    sneaky = service(comps, clock, from_names=(("support", "Eve\r\nBcc: x@evil.example"),))
    head = comps.blobs.get(
        stored_raw_sha(comps, sneaky.queue_reply(cid, text="ok").message_pk)
    ).split(b"\r\n\r\n")[0]
    assert b"\r\nBcc:" not in head


def stored_raw_sha(c: Components, message_pk: int) -> str:
    with c.engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(messages.c.raw_sha256).where(messages.c.id == message_pk)
            ).scalar_one()
        )


def test_forward_includes_the_original_message_and_its_attachments(
    comps: Components, clock: FakeClock
) -> None:
    pk = deliver(
        comps,
        customer_mail(
            sender="Alice Customer <alice@customer.example>",
            subject="Broken invoice",
            body="See the attached invoice.\n",
            html="<p>See the <b>attached</b> invoice.</p><script>x()</script>",
            attachment=("invoice.pdf", b"%PDF-1.4 not really\n", "application/pdf"),
            headers={"Cc": "Bob <bob@partner.example>"},
        ),
    )
    cid = conversation_of(comps, pk)
    svc = service(comps, clock)
    preview = svc.quote_preview(cid, "forward")
    assert preview is not None and preview["attachments"] == ["invoice.pdf"]
    q = svc.queue_reply(
        cid,
        text="Please check this one.",
        html="<div>Please check this one.</div>",
        to=["ledger@finance.example"],
        subject="Fwd: Broken invoice",
        include="forward",
    )
    assert q.recipients == ("ledger@finance.example",)
    msg = stored_raw(comps, q.message_pk)
    text = part(msg, "plain")
    assert text.startswith("Please check this one.\n\n---------- Forwarded message ---------\n")
    assert "From: Alice Customer <alice@customer.example>\n" in text
    assert "Date: Fri, 20 Nov 2026 10:00:00 +0000\n" in text
    assert "Subject: Broken invoice\n" in text
    assert (
        "To: support@example.com\nCc: Bob <bob@partner.example>\n\nSee the attached invoice.\n"
        in text
    )
    html = part(msg, "html")
    assert (
        "---------- Forwarded message ---------<br>From: Alice Customer &lt;alice@customer.example&gt;"
        in html
    )
    assert "<b>attached</b>" in html and "<script" not in html and "x()" not in html
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == "invoice.pdf"
    assert att.get_content() == b"%PDF-1.4 not really\n"
    # The stored copy lists the attachment too (the thread shows it).
    from postroom.store.schema import attachments as attachments_table

    with comps.engine.connect() as conn:
        names = (
            conn.execute(
                sa.select(attachments_table.c.filename).where(
                    attachments_table.c.message_id == q.message_pk
                )
            )
            .scalars()
            .all()
        )
    assert names == ["invoice.pdf"]


def test_forward_leaves_out_an_attachment_whose_bytes_are_gone(
    comps: Components, clock: FakeClock
) -> None:
    pk = deliver(
        comps,
        customer_mail(attachment=("gone.bin", b"only once" * 7, "application/octet-stream")),
    )
    cid = conversation_of(comps, pk)
    from postroom.store.blobs import sha256_hex

    comps.blobs._path(sha256_hex(b"only once" * 7)).unlink()  # type: ignore[attr-defined]
    q = service(comps, clock).queue_reply(
        cid, text="fyi", to=["x@elsewhere.example"], include="forward"
    )
    msg = stored_raw(comps, q.message_pk)
    assert list(msg.iter_attachments()) == []
    assert "---------- Forwarded message ---------" in part(msg, "plain")


def test_limits_and_missing_reply_address_are_named_errors(
    comps: Components, clock: FakeClock
) -> None:
    cid = conversation_of(comps, deliver(comps, customer_mail()))
    svc = service(comps, clock, limits=mc.Limits(max_recipients=1))
    with pytest.raises(TooManyRecipientsError):
        svc.queue_reply(cid, text="x", cc=("b@customer.example",))
    with comps.engine.begin() as conn:
        conn.execute(
            conversations.update()
            .where(conversations.c.id == cid)
            .values(reply_from=None, route_address="*@example.com")
        )
    with pytest.raises(NoReplyAddressError, match="reply_from"):
        svc.queue_reply(cid, text="x")
    assert outbox_rows(comps) == []


# -- delivery through a relay ----------------------------------------------------------


def test_sender_delivers_through_the_relay_on_one_connection(
    comps: Components, clock: FakeClock, relay: tuple[RecordingHandler, int]
) -> None:
    handler, port = relay
    svc = service(comps, clock)
    sent = []
    for i in range(5):
        cid = conversation_of(comps, deliver(comps, customer_mail(subject=f"s{i}")))
        sent.append(svc.queue_reply(cid, text=f"reply {i}", bcc=("audit@example.com",)))
    worker = SenderWorker(svc, smtp(port), clock)
    assert worker.run_once() == 5
    assert handler.message_ids() == [q.message_id for q in sent]
    assert handler.connections == 1
    first = handler.received[0]
    assert first.mail_from == "support@example.com"
    assert first.rcpt_tos == ["alice@customer.example", "audit@example.com"]
    assert "Bcc" not in first.msg
    assert {r.status for r in outbox_rows(comps)} == {"sent"}
    assert kinds(comps, "message_sent") == ["message_sent"] * 5
    assert worker.run_once() == 0  # nothing sent twice


def test_temporary_failure_is_retried_with_backoff(
    comps: Components, clock: FakeClock, relay: tuple[RecordingHandler, int]
) -> None:
    handler, port = relay
    handler.script = ["451 4.3.0 Try again later"]
    svc = service(comps, clock)
    q = svc.queue_reply(conversation_of(comps, deliver(comps, customer_mail())), text="hi")
    worker = SenderWorker(svc, smtp(port), clock)
    worker.run_once()
    [row] = outbox_rows(comps)
    assert (row.status, row.attempts) == ("queued", 1)
    assert "451" in row.last_error
    retry_at = row.next_attempt_at.replace(tzinfo=UTC)
    assert retry_at == clock.now + timedelta(seconds=30)  # initial delay, middle jitter
    worker.run_once()
    assert handler.received == []  # not due yet
    clock.now = retry_at
    worker.run_once()
    [row] = outbox_rows(comps)
    assert (row.status, row.attempts) == ("sent", 2)
    assert handler.message_ids() == [q.message_id]
    assert kinds(comps, "delivery_deferred", "message_sent") == [
        "delivery_deferred",
        "message_sent",
    ]


def test_permanent_failure_and_attempt_limit(
    comps: Components, clock: FakeClock, relay: tuple[RecordingHandler, int]
) -> None:
    handler, port = relay
    handler.script = ["550 5.1.1 No such user"] + ["452 4.3.1 Full"] * 5
    svc = service(comps, clock, max_attempts=3)
    cid = conversation_of(comps, deliver(comps, customer_mail()))
    svc.queue_reply(cid, text="one")
    worker = SenderWorker(svc, smtp(port), clock)
    worker.run_once()
    [first] = outbox_rows(comps)
    assert first.status == "failed" and "550" in first.last_error and first.attempts == 1
    svc.queue_reply(cid, text="two")
    for _ in range(3):
        worker.run_once()
        clock.now += timedelta(seconds=600)
    second = outbox_rows(comps)[1]
    assert (second.status, second.attempts) == ("failed", 3)
    assert kinds(comps, "delivery_failed") == ["delivery_failed"] * 2
    assert handler.received == []


def test_unreachable_relay_defers(comps: Components, clock: FakeClock) -> None:
    svc = service(comps, clock)
    svc.queue_reply(conversation_of(comps, deliver(comps, customer_mail())), text="hi")
    SenderWorker(svc, smtp(free_port()), clock).run_once()
    [row] = outbox_rows(comps)
    assert row.status == "queued" and row.attempts == 1 and "unreachable" in row.last_error


def test_retry_delay_doubles_and_caps() -> None:
    mid = [retry_delay(n, 30, 3600, lambda: 0.5) for n in range(1, 10)]
    assert mid[:4] == [30, 60, 120, 240] and mid[-1] == 3600
    assert 22.5 <= retry_delay(1, 30, 3600, lambda: 0.0) < retry_delay(1, 30, 3600, lambda: 1.0)


class SlowTransport:
    def __init__(self, inner: SmtpTransport, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    def send(self, envelope_from: str, recipients: Any, raw: bytes) -> Any:
        time.sleep(self.delay_s)
        return self.inner.send(envelope_from, recipients, raw)

    def close(self) -> None:
        self.inner.close()


def test_restart_delivers_everything_exactly_once(
    comps: Components, relay: tuple[RecordingHandler, int]
) -> None:
    handler, port = relay

    def now() -> datetime:
        return datetime.now(UTC)

    svc = OutboundService(comps.engine, comps.blobs, OutboundConfig(), now)
    cid = conversation_of(comps, deliver(comps, customer_mail()))
    queued = [svc.queue_reply(cid, text=f"reply {i}") for i in range(30)]
    first = SenderWorker(svc, SlowTransport(smtp(port), 0.02), now, batch=10, record_every=3)
    first.start()
    deadline = time.monotonic() + 10
    while len(handler.received) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.stop()
    partway = len(handler.received)
    assert 0 < partway < 30
    assert sum(r.status == "queued" for r in outbox_rows(comps)) == 30 - partway
    # A new process: a new service and worker over the same database.
    svc2 = OutboundService(comps.engine, comps.blobs, OutboundConfig(), now)
    second = SenderWorker(svc2, smtp(port), now, poll_s=0.05)
    second.start()
    deadline = time.monotonic() + 20
    while len(handler.received) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    second.stop()
    assert sorted(handler.message_ids()) == sorted(q.message_id for q in queued)
    assert {r.status for r in outbox_rows(comps)} == {"sent"}


def test_crashed_sender_rows_come_back_after_the_lease(
    comps: Components, clock: FakeClock, relay: tuple[RecordingHandler, int]
) -> None:
    handler, port = relay
    svc = service(comps, clock, lease_s=120)
    svc.queue_reply(conversation_of(comps, deliver(comps, customer_mail())), text="x")
    assert len(svc.claim_due(10)) == 1  # claimed, then the process "dies"
    assert svc.claim_due(10) == []
    clock.now += timedelta(seconds=121)
    assert SenderWorker(svc, smtp(port), clock).run_once() == 1
    assert len(handler.received) == 1


# -- the local Maildir (no relay configured) ----------------------------------------------


def test_without_relay_mail_lands_in_the_sent_mail_maildir(
    any_settings: Settings, clock: FakeClock
) -> None:
    c = build(any_settings, clock=clock)
    try:
        worker = build_sender(any_settings, c)
        assert isinstance(worker.transport, MaildirTransport)
        cid = conversation_of(c, deliver(c, customer_mail()))
        q = worker.service.queue_reply(cid, text="Hello from the demo")
        worker.run_once()
        box = mailbox.Maildir(str(any_settings.data_dir / "sent-mail"), create=False)
        found = {
            parse_message(box.get_bytes(k)).message_id: box.get_bytes(k) for k in box.iterkeys()
        }
        assert len(found) == 2  # the acknowledgement and the reply
        stored = found[q.message_id]
        assert "Hello from the demo" in parse_message(stored).text
        assert b"X-Envelope-To: alice@customer.example" in stored
        assert {r.status for r in outbox_rows(c)} == {"sent"}
    finally:
        c.close()


# -- acknowledgements --------------------------------------------------------------------


def test_auto_ack_once_per_request_and_per_sender_window(
    ack_comps: Components, clock: FakeClock, relay: tuple[RecordingHandler, int]
) -> None:
    comps = ack_comps
    handler, port = relay
    first = deliver(comps, customer_mail(message_id="<a1@customer.example>"))
    svc = service(comps, clock, auto_ack_window_s=3600)
    worker = SenderWorker(svc, smtp(port), clock)
    worker.run_once()
    worker.run_once()
    # A restarted process does not acknowledge the same request again.
    SenderWorker(service(comps, clock, auto_ack_window_s=3600), smtp(port), clock).run_once()
    assert len(handler.received) == 1
    ack = handler.received[0]
    assert ack.mail_from == "<>"  # the null reverse-path (RFC 3834)
    assert ack.msg["Auto-Submitted"] == "auto-replied"
    assert ack.msg["In-Reply-To"] == "<a1@customer.example>"
    with comps.engine.connect() as conn:
        thread_id = conn.execute(
            sa.select(messages.c.thread_id).where(messages.c.id == first)
        ).scalar_one()
    assert ack.msg.get_content().strip() == f"We got it: PR-{thread_id}"
    assert f"[#PR-{thread_id}]" in str(ack.msg["Subject"])
    # Same sender, new subject, within the window: a new conversation, no second ack.
    deliver(comps, customer_mail(subject="Another thing"))
    worker.run_once()
    assert len(handler.received) == 1
    # After the window, the next new conversation is acknowledged again.
    clock.now += timedelta(seconds=3601)
    deliver(comps, customer_mail(subject="A third thing"))
    worker.run_once()
    assert len(handler.received) == 2
    assert kinds(comps, "auto_ack_queued", "auto_ack_skipped") == [
        "auto_ack_queued",
        "auto_ack_skipped",
        "auto_ack_queued",
    ]


def test_auto_generated_mail_is_never_acknowledged(
    ack_comps: Components, clock: FakeClock, relay: tuple[RecordingHandler, int]
) -> None:
    comps = ack_comps
    handler, port = relay
    pk = deliver(comps, customer_mail(headers={"Auto-Submitted": "auto-replied"}))
    worker = SenderWorker(service(comps, clock), smtp(port), clock)
    worker.run_once()
    assert handler.received == []
    # Even a request recorded for such a message is skipped, with the reason.
    with comps.engine.begin() as conn:
        m = conn.execute(sa.select(messages).where(messages.c.id == pk)).one()
        conn.execute(
            events.insert().values(
                at=clock.now,
                kind="auto_ack_requested",
                conversation_id=m.conversation_id,
                message_id=pk,
                thread_id=m.thread_id,
                data={"to": "alice@customer.example", "template": "Thanks"},
            )
        )
    worker.run_once()
    assert handler.received == []
    with comps.engine.connect() as conn:
        reason = conn.execute(
            sa.select(events.c.data).where(events.c.kind == "auto_ack_skipped")
        ).scalar_one()["reason"]
    assert "auto-generated" in reason


# -- bounces ------------------------------------------------------------------------------


def dsn(message_id: str, action: str = "failed") -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example\r\nTo: support@example.com\r\nSubject: Undelivered\r\n"
        b"Message-ID: <dsn." + action.encode() + b"@mx.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery report.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: rfc822; alice@customer.example\r\nAction: "
        + action.encode()
        + b"\r\nStatus: 5.1.1\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <" + message_id.encode() + b">\r\nSubject: Re: help\r\n\r\n--b--\r\n"
    )


def test_bounce_through_intake_marks_the_outbox_row_bounced(
    comps: Components, clock: FakeClock, relay: tuple[RecordingHandler, int]
) -> None:
    _, port = relay
    svc = service(comps, clock)
    cid = conversation_of(comps, deliver(comps, customer_mail()))
    q = svc.queue_reply(cid, text="hi")
    SenderWorker(svc, smtp(port), clock).run_once()
    assert outbox_rows(comps)[0].status == "sent"
    deliver(comps, dsn(q.message_id, "delayed"), envelope_from="")
    assert outbox_rows(comps)[0].status == "sent"  # a delay warning is not a bounce
    deliver(comps, dsn(q.message_id), envelope_from="")
    [row] = outbox_rows(comps)
    assert row.status == "bounced"
    assert kinds(comps, "bounce_received") == ["bounce_received", "bounce_received"]


def test_serve_roles_include_sender() -> None:
    from postroom.runtime.serve import ROLES

    assert "sender" in ROLES


def test_worker_thread_wakes_and_sends(
    comps: Components, relay: tuple[RecordingHandler, int]
) -> None:
    handler, port = relay

    def now() -> datetime:
        return datetime.now(UTC)

    svc = OutboundService(comps.engine, comps.blobs, OutboundConfig(), now)
    worker = SenderWorker(svc, smtp(port), now, poll_s=5.0)
    svc.listeners.append(worker.wake)
    worker.start()
    try:
        cid = conversation_of(comps, deliver(comps, customer_mail()))
        started = time.monotonic()
        svc.queue_reply(cid, text="fast")
        done = threading.Event()
        while not done.is_set() and time.monotonic() - started < 4:
            if handler.received:
                done.set()
            time.sleep(0.01)
        assert done.is_set(), "the sender did not wake on the queued message"
    finally:
        worker.stop()

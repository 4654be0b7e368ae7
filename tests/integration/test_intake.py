"""Intake end to end below the transports: spool → pipeline → threads, conversations,
events; on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services import quarantine
from postroom.store.intake_repo import status_counts
from postroom.store.schema import conversations, events, messages
from tests.mailfactory import make_email


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def comps(any_settings: Settings, clock: FakeClock) -> Iterator[Components]:
    c = build(any_settings, clock=clock)
    yield c
    c.close()


def deliver(
    c: Components, raw: bytes, to: tuple[str, ...] = ("support@example.com",), **kw: Any
) -> int:
    acc = c.spool().accept_sync(raw, source="smtp", envelope_to=to, **kw)
    c.intake.drain()
    return acc.message_pk


def row(c: Components, pk: int) -> sa.Row[Any]:
    with c.engine.connect() as conn:
        r = conn.execute(sa.select(messages).where(messages.c.id == pk)).first()
    assert r is not None
    return r


def conv(c: Components, cid: int) -> sa.Row[Any]:
    with c.engine.connect() as conn:
        r = conn.execute(sa.select(conversations).where(conversations.c.id == cid)).first()
    assert r is not None
    return r


def status(c: Components) -> dict[str, Any]:
    with c.engine.connect() as conn:
        return status_counts(conn)


def close_conversation(c: Components, cid: int, at: datetime) -> None:
    with c.engine.begin() as conn:
        conn.execute(
            conversations.update()
            .where(conversations.c.id == cid)
            .values(state="closed", closed_at=at)
        )


def test_new_email_creates_thread_and_queued_conversation(comps: Components) -> None:
    pk = deliver(comps, make_email())
    m = row(comps, pk)
    assert m.status == "processed" and m.thread_id and m.conversation_id
    cv = conv(comps, m.conversation_id)
    assert (cv.state, cv.queue, cv.priority) == ("queued", "support", 0)
    st = status(comps)
    assert st["messages"]["received"] == 1 and st["threads"] == 1
    assert st["conversations"]["queued"] == 1
    with comps.engine.connect() as conn:
        kinds = [k for (k,) in conn.execute(sa.select(events.c.kind).order_by(events.c.id))]
    assert kinds == [
        "thread_created",
        "conversation_created",
        "auto_ack_requested",
        "message_received",
    ]


def test_reply_by_in_reply_to_joins_the_open_conversation(comps: Components) -> None:
    first = row(comps, deliver(comps, make_email(message_id="<a1@customer.example>")))
    reply = row(
        comps,
        deliver(comps, make_email(subject="Re: Printer", in_reply_to="<a1@customer.example>")),
    )
    assert reply.thread_id == first.thread_id
    assert reply.conversation_id == first.conversation_id
    assert status(comps)["conversations"]["queued"] == 1


def test_reply_by_references_only(comps: Components) -> None:
    first = row(comps, deliver(comps, make_email(message_id="<r1@customer.example>")))
    reply = row(comps, deliver(comps, make_email(references="<x@elsewhere> <r1@customer.example>")))
    assert reply.thread_id == first.thread_id


def test_subject_token_joins_only_for_participants(comps: Components) -> None:
    first = row(comps, deliver(comps, make_email()))
    token = f"[#PR-{first.thread_id}]"
    same = row(comps, deliver(comps, make_email(subject=f"Re: Printer {token}")))
    assert same.thread_id == first.thread_id
    stranger = row(
        comps, deliver(comps, make_email(sender="mallory@evil.example", subject=f"hi {token}"))
    )
    assert stranger.thread_id != first.thread_id


def test_reply_to_closed_conversation_opens_new_one_in_same_thread(
    comps: Components, clock: FakeClock
) -> None:
    first = row(comps, deliver(comps, make_email(message_id="<c1@customer.example>")))
    close_conversation(comps, first.conversation_id, clock.now)
    clock.now += timedelta(days=2)
    reply = row(comps, deliver(comps, make_email(in_reply_to="<c1@customer.example>")))
    assert reply.thread_id == first.thread_id
    assert reply.conversation_id != first.conversation_id
    assert conv(comps, reply.conversation_id).state == "queued"


def test_reply_after_reopen_window_starts_new_thread(comps: Components, clock: FakeClock) -> None:
    first = row(comps, deliver(comps, make_email(message_id="<old@customer.example>")))
    close_conversation(comps, first.conversation_id, clock.now - timedelta(days=31))
    reply = row(comps, deliver(comps, make_email(in_reply_to="<old@customer.example>")))
    assert reply.thread_id != first.thread_id


def test_duplicate_message_id_from_same_sender_is_recorded_not_reprocessed(
    comps: Components,
) -> None:
    deliver(comps, make_email(message_id="<dup@customer.example>", body="one"))
    second = row(comps, deliver(comps, make_email(message_id="<dup@customer.example>", body="two")))
    assert second.status == "duplicate" and second.conversation_id is None
    st = status(comps)
    assert st["messages"]["duplicates"] == 1 and st["messages"]["received"] == 1
    assert st["conversations"]["queued"] == 1


def test_identical_bytes_resent_are_a_duplicate(comps: Components) -> None:
    raw = make_email()
    deliver(comps, raw)
    again = row(comps, deliver(comps, raw))
    assert again.status == "duplicate"


def test_auto_reply_is_flagged_routed_and_never_acknowledged(comps: Components) -> None:
    pk = deliver(comps, make_email(headers={"Auto-Submitted": "auto-replied"}))
    m = row(comps, pk)
    assert m.auto_kind == "auto-submitted:auto-replied" and m.conversation_id
    with comps.engine.connect() as conn:
        acks = conn.execute(sa.select(events).where(events.c.kind == "auto_ack_requested")).all()
    assert acks == []
    assert status(comps)["messages"]["auto_generated"] == 1


def test_rules_refine_queue_priority_and_tags(comps: Components) -> None:
    m = row(comps, deliver(comps, make_email(sender="Boss <boss@vip.example>")))
    cv = conv(comps, m.conversation_id)
    assert (cv.queue, cv.priority, cv.tags) == ("vip", 5, ["vip"])


def test_wildcard_route(comps: Components) -> None:
    m = row(
        comps,
        deliver(comps, make_email(to="ap@billing.example.com"), to=("ap@billing.example.com",)),
    )
    cv = conv(comps, m.conversation_id)
    assert (cv.queue, cv.priority) == ("billing", 2)


def test_discard_rule_keeps_message_without_conversation(comps: Components) -> None:
    m = row(comps, deliver(comps, make_email(subject="Best casino offers")))
    assert m.status == "discarded" and m.error == "spam subject" and m.conversation_id is None


def test_no_route_quarantines_with_a_reason_and_intake_goes_on(comps: Components) -> None:
    bad = row(comps, deliver(comps, make_email(to="nobody@else.example"), to=()))
    assert bad.status == "quarantined" and bad.stage == "rules"
    assert "no route matches" in bad.error
    good = row(comps, deliver(comps, make_email()))
    assert good.status == "processed"


def test_stage_failure_quarantines_and_retry_processes(
    comps: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise ValueError("boom")

    monkeypatch.setattr(comps.intake, "_find_thread", broken)
    pk = deliver(comps, make_email())
    m = row(comps, pk)
    assert (m.status, m.stage) == ("quarantined", "thread") and "boom" in m.error
    assert [e.message_pk for e in quarantine.list_entries(comps.engine)] == [pk]
    monkeypatch.undo()
    quarantine.release(comps.engine, pk, comps.clock)
    comps.intake.drain()
    assert row(comps, pk).status == "processed"
    assert quarantine.list_entries(comps.engine) == []


def test_crash_inside_the_transaction_leaves_no_trace_and_rerun_is_identical(
    comps: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Crash(BaseException):
        """Like kill -9: not an error intake handles, the process just stops."""

    original = comps.intake._store_parsed

    def crash(*_: Any) -> None:
        raise Crash

    monkeypatch.setattr(comps.intake, "_store_parsed", crash)
    pk = (
        comps.spool()
        .accept_sync(make_email(), source="smtp", envelope_to=["support@example.com"])
        .message_pk
    )
    with pytest.raises(Crash):
        comps.intake.drain()
    assert row(comps, pk).status == "pending"
    assert status(comps)["threads"] == 0
    monkeypatch.setattr(comps.intake, "_store_parsed", original)
    comps.intake.drain()
    comps.intake.drain()
    st = status(comps)
    assert st["threads"] == 1 and sum(st["conversations"].values()) == 1


def test_loop_guard_holds_then_release_routes(any_settings: Settings, clock: FakeClock) -> None:
    s = replace(any_settings, intake=replace(any_settings.intake, loop_guard_max_messages=3))
    c = build(s, clock=clock)
    try:
        pks = [deliver(c, make_email(subject=f"n{i}")) for i in range(4)]
        assert [row(c, p).status for p in pks] == ["processed"] * 3 + ["quarantined"]
        assert row(c, pks[3]).stage == "loop_guard"
        quarantine.release(c.engine, pks[3], c.clock)
        c.intake.drain()
        assert row(c, pks[3]).status == "processed"
    finally:
        c.close()


def test_bounce_is_attached_to_our_outbound_message(comps: Components, clock: FakeClock) -> None:
    with comps.engine.begin() as conn:
        out_pk = conn.execute(
            messages.insert()
            .values(
                direction="out",
                source="agent",
                raw_sha256="0" * 64,
                raw_size=0,
                envelope_to=[],
                received_at=clock.now,
                status="processed",
                header_message_id="pr.PR-1.abc@postroom.local",
            )
            .returning(messages.c.id)
        ).scalar_one()
    dsn = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: support@example.com\r\nSubject: Undelivered\r\n"
        b"Message-ID: <dsn1@mx.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: rfc822; gone@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <pr.PR-1.abc@postroom.local>\r\nSubject: Re: help\r\n\r\n--b--\r\n"
    )
    m = row(comps, deliver(comps, dsn, envelope_from=""))
    assert m.bounce_for == out_pk and m.auto_kind == "bounce" and m.conversation_id is None


def test_unstorable_message_is_quarantined_not_blocking_the_rest(
    comps: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any) -> None:
        raise sa.exc.DataError("UPDATE messages", {}, ValueError("value too long"))

    monkeypatch.setattr(comps.intake, "_store_parsed", refuse)
    bad = deliver(comps, make_email(subject="first"))
    monkeypatch.undo()
    good = deliver(comps, make_email(subject="second"))
    assert (row(comps, bad).status, row(comps, bad).stage) == ("quarantined", "store")
    assert row(comps, bad).subject == "first"  # kept for triage
    assert row(comps, good).status == "processed"


def test_absurd_header_values_are_clipped_to_fit_the_columns(comps: Components) -> None:
    long_local = "x" * 400
    raw = make_email(
        sender=f"{long_local}@customer.example",
        message_id=f"<{'m' * 700}@customer.example>",
        headers={"Auto-Submitted": "auto-generated-" + "y" * 200},
    )
    m = row(comps, deliver(comps, raw))
    assert m.status == "processed"
    assert len(m.sender) == 320 and len(m.header_message_id) == 500 and len(m.auto_kind) == 60


def test_small_message_rides_in_its_row_until_the_pipeline_moves_it(comps: Components) -> None:
    raw = make_email()
    pk = comps.spool().accept_sync(raw, source="smtp", envelope_to=["support@example.com"]).message_pk
    pending = row(comps, pk)
    assert bytes(pending.raw) == raw and not comps.blobs.exists(pending.raw_sha256)
    comps.intake.drain()
    done = row(comps, pk)
    assert done.raw is None and comps.blobs.get(done.raw_sha256) == raw


def test_large_message_goes_to_the_blob_store_before_its_row(comps: Components) -> None:
    raw = make_email(attachment=("big.bin", b"\1" * 400_000, "application/octet-stream"))
    pk = comps.spool().accept_sync(raw, source="smtp", envelope_to=["support@example.com"]).message_pk
    pending = row(comps, pk)
    assert pending.raw is None and comps.blobs.get(pending.raw_sha256) == raw
    comps.intake.drain()
    assert row(comps, pk).status == "processed"


def test_damaged_blob_is_quarantined_with_a_reason(comps: Components) -> None:
    raw = make_email(attachment=("big.bin", b"\2" * 400_000, "application/octet-stream"))
    pk = comps.spool().accept_sync(raw, source="smtp", envelope_to=["support@example.com"]).message_pk
    sha = row(comps, pk).raw_sha256
    path = comps.blobs.root / sha[:2] / sha[2:4] / sha
    path.write_bytes(raw[:1000])  # as if a crash cut the write short
    comps.intake.drain()
    m = row(comps, pk)
    assert (m.status, m.stage) == ("quarantined", "spool") and "checksum" in m.error


def test_one_log_line_per_message_with_ids_and_never_the_body(
    comps: Components, caplog: pytest.LogCaptureFixture
) -> None:
    import json as _json
    import logging

    from postroom.runtime.logs import JsonFormatter

    caplog.set_level(logging.INFO, logger="postroom.intake")
    pk = deliver(comps, make_email(subject="Secret subject", body="the password is hunter2"))
    lines = [r for r in caplog.records if r.name == "postroom.intake"]
    assert len(lines) == 1
    data = _json.loads(JsonFormatter().format(lines[0]))
    assert data["message_pk"] == pk and data["conversation_id"] and data["thread_id"]
    text = caplog.text + _json.dumps(data)
    assert "hunter2" not in text and "Secret subject" not in text

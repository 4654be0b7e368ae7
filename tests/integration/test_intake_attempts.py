"""No message can stop intake: attempts survive crashes, a message that keeps failing
is quarantined, parsing has a time budget, operators can hold or discard pending mail.
On SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.ingest.parse_process import ProcessParser
from postroom.mail.model import ParsedMessage
from postroom.mail.parse import parse_message
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import Components, build
from postroom.services import quarantine
from postroom.store.schema import conversations, messages
from tests.mailfactory import make_email


class Killed(BaseException):
    """Like kill -9 in the middle of a message: not an error intake handles."""


class KillingParser:
    """A parser whose process 'dies' on messages with a given subject."""

    def __init__(self, poison: str) -> None:
        self.poison = poison.encode()

    def parse(self, pk: int, raw: bytes, cid_url: Callable[[str], str]) -> ParsedMessage:
        if self.poison in raw:
            raise Killed
        return parse_message(raw, cid_url=cid_url)

    def close(self) -> None:
        pass


@pytest.fixture
def comps(any_settings: Settings) -> Iterator[Components]:
    c = build(any_settings)
    yield c
    c.close()


def spool(c: Components, raw: bytes) -> int:
    return c.spool().accept_sync(raw, source="smtp", envelope_to=["support@example.com"]).message_pk


def row(c: Components, pk: int) -> sa.Row[Any]:
    with c.engine.connect() as conn:
        r = conn.execute(sa.select(messages).where(messages.c.id == pk)).first()
    assert r is not None
    return r


def set_attempts(c: Components, pk: int, n: int) -> None:
    with c.engine.begin() as conn:
        conn.execute(messages.update().where(messages.c.id == pk).values(attempts=n))


def n_conversations(c: Components) -> int:
    with c.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(conversations)).scalar_one())


def test_message_at_its_attempts_limit_is_quarantined_not_processed_again(
    comps: Components,
) -> None:
    crashed = spool(comps, make_email(subject="crashed three times"))
    once = spool(comps, make_email(subject="crashed twice"))
    set_attempts(comps, crashed, 3)  # three starts that never finished: crash, kill, hang
    set_attempts(comps, once, 2)
    comps.intake.drain()
    m = row(comps, crashed)
    assert (m.status, m.stage) == ("quarantined", "attempts")
    assert "did not finish after 3 attempts (crash, kill or time-out)" in m.error
    assert f"postroom quarantine retry {crashed}" in m.error
    assert m.conversation_id is None
    assert row(comps, once).status == "processed"  # below the limit: one more try
    assert n_conversations(comps) == 1
    # A retry by an operator starts the count afresh and processes it.
    quarantine.release(comps.engine, crashed, comps.clock)
    assert row(comps, crashed).attempts == 0
    comps.intake.drain()
    assert row(comps, crashed).status == "processed"


def test_each_start_is_committed_before_the_work_so_crashes_add_up(
    any_settings: Settings,
) -> None:
    s = replace(any_settings, intake=replace(any_settings.intake, max_attempts=3))
    c = build(s)
    try:
        first = spool(c, make_email(subject="fine"))
        poison = spool(c, make_email(subject="POISON"))
        after = spool(c, make_email(subject="also fine"))
        c.intake.parser = KillingParser("POISON")
        for expected in (1, 2, 3):
            with pytest.raises(Killed):
                c.intake.drain()  # a fresh "process" each time: nothing kept in memory
            assert row(c, poison).attempts == expected and row(c, poison).status == "pending"
            assert row(c, after).attempts == 0  # never started
        assert row(c, first).status == "processed" and row(c, first).attempts == 1
        c.intake.drain()  # the restart after the third crash does not stall
        p = row(c, poison)
        assert (p.status, p.stage) == ("quarantined", "attempts")
        assert "after 3 attempts" in p.error
        a = row(c, after)
        assert a.status == "processed" and a.attempts == 1
    finally:
        c.close()


def test_attempts_are_counted_once_per_message_in_a_batch(comps: Components) -> None:
    pks = [spool(comps, make_email(subject=f"batch {i}")) for i in range(5)]
    assert comps.intake.process_pending(100) == 5
    assert [(row(comps, p).status, row(comps, p).attempts) for p in pks] == [("processed", 1)] * 5


def test_parse_over_its_budget_is_quarantined_and_the_next_message_goes_on(
    comps: Components, caplog: pytest.LogCaptureFixture
) -> None:
    comps.intake.parser.close()
    comps.intake.parser = ProcessParser(0.3, slow_s=0.1, parse=_sleepy_parse)
    caplog.set_level(logging.INFO, logger="postroom")
    before = spool(comps, make_email(subject="before"))
    slow = spool(comps, make_email(subject="SLEEP please"))
    after = spool(comps, make_email(subject="after"))
    comps.intake.drain()
    assert row(comps, before).status == "processed"
    m = row(comps, slow)
    assert (m.status, m.stage) == ("quarantined", "parse")
    assert "took longer than 0.3 s to parse" in m.error
    assert f"postroom quarantine retry {slow}" in m.error
    assert m.subject is None  # nothing parsed
    assert row(comps, after).status == "processed"
    still = [r for r in caplog.records if r.getMessage() == "message still parsing"]
    assert still and getattr(still[0], "message_pk", None) == slow
    assert getattr(still[0], "size", 0) > 0


def _sleepy_parse(raw: bytes, *, cid_url: Callable[[str], str]) -> ParsedMessage:
    """A parse that never ends for one message; runs in the parser's child process."""
    import time

    if b"SLEEP" in raw:
        time.sleep(600)
    return parse_message(raw, cid_url=cid_url)


def test_slow_message_is_logged_with_its_id_time_and_size(
    any_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    s = replace(any_settings, intake=replace(any_settings.intake, slow_message_s=0.0))
    c = build(s)
    try:
        caplog.set_level(logging.INFO, logger="postroom.intake")
        pk = spool(c, make_email())
        c.intake.drain()
        warn = [r for r in caplog.records if r.getMessage() == "message slow to process"]
        assert len(warn) == 1 and warn[0].levelno == logging.WARNING
        assert getattr(warn[0], "message_pk", None) == pk
        assert getattr(warn[0], "ms", None) is not None
        assert getattr(warn[0], "size", None) == row(c, pk).raw_size
    finally:
        c.close()


def test_operator_holds_or_discards_a_pending_message(comps: Components) -> None:
    held = spool(comps, make_email(subject="hold me"))
    dropped = spool(comps, make_email(subject="drop me"))
    listed = quarantine.list_entries(comps.engine, pending=True)
    assert [(e.message_pk, e.status, e.attempts) for e in listed] == [
        (held, "pending", 0),
        (dropped, "pending", 0),
    ]
    quarantine.hold(comps.engine, held, comps.clock, "")
    quarantine.discard(comps.engine, dropped, comps.clock, "spam")
    comps.intake.drain()  # the pipeline leaves both alone
    h, d = row(comps, held), row(comps, dropped)
    assert (h.status, h.stage, h.error) == ("quarantined", "operator", "held by an operator")
    assert (d.status, d.error) == ("discarded", "spam")
    assert n_conversations(comps) == 0
    assert [e.message_pk for e in quarantine.list_entries(comps.engine)] == [held]
    from postroom.domain.errors import NotFoundError

    with pytest.raises(NotFoundError, match="not pending"):
        quarantine.hold(comps.engine, dropped, comps.clock, "")
    with pytest.raises(NotFoundError, match="not in quarantine or pending"):
        quarantine.discard(comps.engine, dropped, comps.clock, "")


def test_missing_blob_reason_says_what_is_missing_and_what_to_do(comps: Components) -> None:
    raw = make_email(attachment=("big.bin", b"\3" * 400_000, "application/octet-stream"))
    pk = spool(comps, raw)
    sha = row(comps, pk).raw_sha256
    (comps.blobs.root / sha[:2] / sha[2:4] / sha).unlink()
    comps.intake.drain()
    m = row(comps, pk)
    assert (m.status, m.stage) == ("quarantined", "spool")
    assert f"the raw bytes of this message (sha256 {sha}) are missing from the blob store" in (
        m.error
    )
    assert f"postroom quarantine discard {pk}" in m.error
    from postroom.domain.errors import NotFoundError

    with pytest.raises(NotFoundError, match="missing from the blob store"):
        quarantine.raw_message(comps.engine, comps.blobs, pk)


@pytest.mark.postgres
def test_two_pipelines_on_postgresql_share_the_work_without_deadlock(
    settings: Settings, pg_url: str
) -> None:
    import threading

    s = replace(settings, database_url=pg_url)
    a, b = build(s), build(s)
    try:
        pks = [spool(a, make_email(sender=f"c{i}@customer.example")) for i in range(40)]
        errors: list[BaseException] = []

        def run(c: Components) -> None:
            try:
                c.intake.drain()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        rows = [row(a, p) for p in pks]
        assert [(r.status, r.stage, r.error) for r in rows if r.status != "processed"] == []
        assert n_conversations(a) == 40  # each message finished once
        assert all(1 <= r.attempts <= 2 for r in rows)
    finally:
        a.close()
        b.close()

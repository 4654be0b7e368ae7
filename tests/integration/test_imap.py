"""The IMAP poller against a real Dovecot on loopback (see dovecot.py)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from postroom.ingest import imap as imap_module
from postroom.ingest.imap import ImapMailbox, ImapPoller
from postroom.ingest.ports import Accepted
from tests.integration.dovecot import Dovecot

pytestmark = [pytest.mark.imap, pytest.mark.timeout(60)]

T = TypeVar("T")
KEY = "support"


# -- fakes --------------------------------------------------------------------


class MemorySink:
    """In-memory spool: idempotent on source_ref, can be told to fail."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.calls: list[str] = []
        self.fail_times = 0  # the next N calls raise
        self.before_accept: Callable[[str], None] | None = None

    async def accept(
        self,
        raw: bytes,
        *,
        source: str,
        source_ref: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
    ) -> Accepted:
        assert source == "imap"
        assert source_ref is not None
        self.calls.append(source_ref)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("spool unavailable")
        if self.before_accept is not None:
            self.before_accept(source_ref)
        refs = list(self.stored)
        if source_ref in self.stored:
            return Accepted(message_pk=refs.index(source_ref) + 1, created=False)
        self.stored[source_ref] = raw
        return Accepted(message_pk=len(self.stored), created=True)


class MemoryCursors:
    def __init__(self) -> None:
        self.data: dict[str, tuple[int, int]] = {}

    def load(self, mailbox_key: str) -> tuple[int | None, int]:
        if mailbox_key not in self.data:
            return None, 0
        return self.data[mailbox_key]

    def save(self, mailbox_key: str, uidvalidity: int, last_uid: int) -> None:
        self.data[mailbox_key] = (uidvalidity, last_uid)


# -- helpers --------------------------------------------------------------------


def email(n: int) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.net>\r\n"
        f"To: support@example.org\r\n"
        f"Subject: Order {n} is late\r\n"
        f"Message-ID: <order-{n}@example.net>\r\n"
        f"Date: Mon, 02 Mar 2026 10:00:0{n % 10} +0000\r\n"
        f"\r\n"
        f"Where is my order {n}? secret-body-{n}\r\n"
    ).encode()


def mailbox_for(server: Dovecot, **overrides: Any) -> ImapMailbox:
    fields: dict[str, Any] = {
        "key": KEY,
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "user": "support@example.org",
        "password": "secret",
    }
    fields.update(overrides)
    return ImapMailbox(**fields)


def poller_for(
    server: Dovecot, sink: MemorySink, cursors: MemoryCursors, **overrides: Any
) -> ImapPoller:
    return ImapPoller(
        mailbox_for(server, **overrides),
        sink,
        cursors,
        log=logging.getLogger("test.imap"),
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
        io_timeout_s=10.0,
    )


def run(coro: Coroutine[Any, Any, T], timeout: float = 40.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def with_running(poller: ImapPoller, body: Callable[[], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await body()
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def ref(uidvalidity: int, uid: int) -> str:
    return f"imap:{KEY}:{uidvalidity}:{uid}"


# -- one cycle --------------------------------------------------------------------


def test_poll_imports_each_message_once_and_marks_seen_after_accept(
    dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    for n in (1, 2, 3):
        dovecot.append(email(n))
    validity = dovecot.uidvalidity()
    sink, cursors = MemorySink(), MemoryCursors()
    unseen_at_accept: list[bool] = []

    def still_unseen(source_ref: str) -> None:
        uid = int(source_ref.rsplit(":", 1)[1])
        unseen_at_accept.append(uid in dovecot.uids(criteria="UNSEEN"))

    sink.before_accept = still_unseen
    poller = poller_for(dovecot, sink, cursors)

    with caplog.at_level(logging.INFO, logger="test.imap"):
        assert run(poller.poll_once()) == 3
    assert list(sink.stored) == [ref(validity, uid) for uid in (1, 2, 3)]
    assert sink.stored[ref(validity, 2)].replace(b"\r\n", b"\n") == email(2).replace(b"\r\n", b"\n")
    assert unseen_at_accept == [True, True, True]  # nothing marked before accept returned
    assert dovecot.uids(criteria="SEEN") == [1, 2, 3]
    assert cursors.data[KEY] == (validity, 3)

    imported = [r for r in caplog.records if r.getMessage() == "imap message imported"]
    assert [getattr(r, "uid", None) for r in imported] == [1, 2, 3]
    assert all(getattr(r, "mailbox", None) == KEY for r in imported)
    assert "secret-body" not in caplog.text and "Order" not in caplog.text

    assert run(poller.poll_once()) == 0
    assert len(sink.calls) == 3  # nothing fetched again
    dovecot.append(email(4))
    assert run(poller.poll_once()) == 1
    assert list(sink.stored)[-1] == ref(validity, 4)


def test_failing_sink_marks_nothing_and_next_poll_imports(dovecot: Dovecot) -> None:
    for n in (1, 2):
        dovecot.append(email(n))
    sink, cursors = MemorySink(), MemoryCursors()
    sink.fail_times = 100
    poller = poller_for(dovecot, sink, cursors)

    assert run(poller.poll_once()) == 0
    assert sink.stored == {}
    assert dovecot.uids(criteria="SEEN") == []
    assert cursors.data[KEY][1] == 0
    assert poller.failed_uids == {1, 2}

    sink.fail_times = 0
    assert run(poller.poll_once()) == 2
    assert dovecot.uids(criteria="SEEN") == [1, 2]
    assert cursors.data[KEY][1] == 2
    assert poller.failed_uids == frozenset()


def test_one_failed_message_holds_the_cursor_but_not_the_others(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in (1, 2, 3):
        dovecot.append(email(n))
    validity = dovecot.uidvalidity()
    real_fetch = imap_module._Session.fetch
    broken = {2}

    def flaky_fetch(self: Any, uids: Sequence[int]) -> dict[int, bytes]:
        return {u: raw for u, raw in real_fetch(self, uids).items() if u not in broken}

    monkeypatch.setattr(imap_module._Session, "fetch", flaky_fetch)
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors)

    assert run(poller.poll_once()) == 2
    assert set(sink.stored) == {ref(validity, 1), ref(validity, 3)}
    assert dovecot.uids(criteria="SEEN") == [1, 3]
    assert cursors.data[KEY] == (validity, 1)  # held before the missing one
    assert poller.failed_uids == {2}

    broken.clear()
    calls_before = len(sink.calls)
    assert run(poller.poll_once()) == 1
    assert sink.calls[calls_before:] == [ref(validity, 2)]  # 3 is not taken again
    assert dovecot.uids(criteria="SEEN") == [1, 2, 3]
    assert cursors.data[KEY] == (validity, 3)


def test_uidvalidity_change_resets_cursor_without_duplicates(dovecot: Dovecot) -> None:
    for n in (1, 2, 3):
        dovecot.append(email(n))
    validity = dovecot.uidvalidity()
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors, after_import="none")
    assert run(poller.poll_once()) == 3

    # The cursor remembers another epoch (the server's mailbox was renumbered
    # or the cursor row is stale): the poller starts over from UID 1.
    cursors.data[KEY] = (validity - 7, 3)
    fresh = ImapPoller(poller.mailbox, sink, cursors, log=logging.getLogger("test.imap"))
    assert run(fresh.poll_once()) == 0  # everything re-accepted idempotently
    assert len(sink.stored) == 3
    assert sink.calls.count(ref(validity, 1)) == 2
    assert cursors.data[KEY] == (validity, 3)


def test_uidvalidity_change_in_seen_mode_takes_only_unseen(dovecot: Dovecot) -> None:
    for n in (1, 2):
        dovecot.append(email(n))
    validity = dovecot.uidvalidity()
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors)
    assert run(poller.poll_once()) == 2
    dovecot.append(email(3))

    cursors.data[KEY] = (validity + 1, 99)
    calls_before = len(sink.calls)
    assert run(poller.poll_once()) == 1
    assert sink.calls[calls_before:] == [ref(validity, 3)]
    assert cursors.data[KEY] == (validity, 3)
    assert dovecot.uids(criteria="UNSEEN") == []


@pytest.mark.parametrize("server_move", [True, False], ids=["MOVE", "COPY+EXPUNGE"])
def test_move_mode_moves_imported_mail(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch, server_move: bool
) -> None:
    for n in (1, 2):
        dovecot.append(email(n))
    dovecot.append(b"Subject: flagged by someone else\r\n\r\nx\r\n", flags="(\\Deleted)")
    if not server_move:
        real_open = imap_module._Session.open.__func__  # type: ignore[attr-defined]

        def open_without_move(cls: Any, *args: Any) -> Any:
            session = real_open(cls, *args)
            session.capabilities = session.capabilities - {"MOVE"}
            return session

        monkeypatch.setattr(imap_module._Session, "open", classmethod(open_without_move))
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors, after_import="move", move_to="Imported")

    assert run(poller.poll_once()) == 3
    # UID EXPUNGE (UIDPLUS) leaves the message someone else flagged \Deleted alone.
    assert dovecot.uids() == []
    assert len(dovecot.uids(folder="Imported")) == 3
    assert dovecot.uids(folder="Imported", criteria="UNSEEN") != []  # moved untouched

    dovecot.append(email(3))
    assert run(poller.poll_once()) == 1  # the cursor survived the moves
    assert len(dovecot.uids(folder="Imported")) == 4


def test_delete_mode_removes_imported_mail(dovecot: Dovecot) -> None:
    dovecot.append(email(1))
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors, after_import="delete")
    assert run(poller.poll_once()) == 1
    assert dovecot.uids() == []
    assert len(sink.stored) == 1


# -- forever --------------------------------------------------------------------


def test_run_wakes_up_on_new_mail_with_idle(dovecot: Dovecot) -> None:
    dovecot.append(email(1))
    sink, cursors = MemorySink(), MemoryCursors()
    # An hour-long poll interval: only IDLE can bring the second message in time.
    poller = poller_for(dovecot, sink, cursors, poll_interval_s=3600)

    async def body() -> None:
        await eventually(lambda: len(sink.stored) == 1)
        await asyncio.sleep(0.3)  # let it settle into IDLE
        await asyncio.to_thread(dovecot.append, email(2))
        await eventually(lambda: len(sink.stored) == 2, timeout=10)

    run(with_running(poller, body))
    assert dovecot.uids(criteria="SEEN") == [1, 2]


def test_run_polls_when_idle_is_off(dovecot: Dovecot) -> None:
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors, idle=False, poll_interval_s=0.3)

    async def body() -> None:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(dovecot.append, email(1))
        await eventually(lambda: len(sink.stored) == 1, timeout=10)

    run(with_running(poller, body))


def test_run_reconnects_after_the_server_restarts(
    dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    dovecot.append(email(1))
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors, poll_interval_s=3600)

    async def body() -> None:
        await eventually(lambda: len(sink.stored) == 1)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(dovecot.stop)
        await asyncio.sleep(1.0)  # a few failed reconnects
        await asyncio.to_thread(dovecot.start)
        await asyncio.to_thread(dovecot.append, email(2))
        await eventually(lambda: len(sink.stored) == 2, timeout=20)

    with caplog.at_level(logging.WARNING, logger="test.imap"):
        run(with_running(poller, body))
    assert len(sink.calls) == len(set(sink.calls)) == 2
    assert "imap mailbox unavailable; reconnecting" in caplog.text  # really lost it


def test_run_retries_after_the_spool_fails(dovecot: Dovecot) -> None:
    dovecot.append(email(1))
    sink, cursors = MemorySink(), MemoryCursors()
    sink.fail_times = 2
    poller = poller_for(dovecot, sink, cursors, poll_interval_s=3600)

    async def body() -> None:
        await eventually(lambda: len(sink.stored) == 1, timeout=15)

    run(with_running(poller, body))
    assert dovecot.uids(criteria="SEEN") == [1]


def test_run_survives_a_wrong_password(dovecot: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    sink, cursors = MemorySink(), MemoryCursors()
    poller = poller_for(dovecot, sink, cursors, password="wrong")

    async def body() -> None:
        await asyncio.sleep(1.0)

    with caplog.at_level(logging.WARNING, logger="test.imap"):
        run(with_running(poller, body))
    assert "imap mailbox unavailable; reconnecting" in caplog.text
    assert "wrong" not in caplog.text


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_tls_modes_import_and_idle(dovecot_tls: Dovecot, tls: str) -> None:
    server = dovecot_tls
    server.append(email(1))
    sink, cursors = MemorySink(), MemoryCursors()
    port = server.ssl_port if tls == "ssl" else server.port
    poller = ImapPoller(
        mailbox_for(server, tls=tls, port=port, poll_interval_s=3600),
        sink,
        cursors,
        log=logging.getLogger("test.imap"),
        ssl_context=ssl.create_default_context(cafile=str(server.cafile)),
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
    )

    async def body() -> None:
        await eventually(lambda: len(sink.stored) == 1)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.append, email(2))
        await eventually(lambda: len(sink.stored) == 2, timeout=10)

    run(with_running(poller, body))


def test_untrusted_certificate_is_refused(dovecot_tls: Dovecot) -> None:
    dovecot_tls.append(email(1))
    sink, cursors = MemorySink(), MemoryCursors()
    # Default trust store: the self-signed test certificate must be rejected.
    poller = poller_for(dovecot_tls, sink, cursors, tls="starttls")
    with pytest.raises(ssl.SSLCertVerificationError):
        run(poller.poll_once())
    assert sink.calls == []


def test_config_is_validated() -> None:
    base: dict[str, Any] = {"key": "k", "host": "h", "user": "u", "password": "p"}
    with pytest.raises(ValueError, match="move_to"):
        ImapMailbox(**base, after_import="move")
    with pytest.raises(ValueError, match="tls"):
        ImapMailbox(**base, tls="maybe")
    assert "hunter2" not in repr(ImapMailbox(**{**base, "password": "hunter2"}))
    assert ImapMailbox(**base).source_ref(5, 9) == "imap:k:5:9"


def test_mailbox_names_are_encoded() -> None:
    assert imap_module._encode_mailbox_name("Erledigt & fertig") == "Erledigt &- fertig"
    assert imap_module._encode_mailbox_name("Entwürfe") == "Entw&APw-rfe"
    assert imap_module._uid_set([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"

"""IMAP poller: brings the mail of one route's IMAP mailbox into the spool.

Job: log in to the configured mailbox, take every message newer than the
stored cursor (UIDVALIDITY + last UID) with ``UID FETCH (BODY.PEEK[])``, hand
the raw bytes to the `IntakeSink`, and only once the sink has made a message
durable, mark it on the server (``\\Seen``, move or delete) and advance the
cursor. Between cycles it waits with IDLE (RFC 2177) when the server offers it
and polls otherwise; connection failures are retried with capped exponential
backoff and jitter, forever, without ever ending the loop.

Must not: parse, classify, thread or route mail (the pipeline behind the
spool does that); touch the database other than through the ports; change
anything on the server for a message before `IntakeSink.accept` returned for
it; log bodies, subjects, addresses or passwords (ids and sizes only).

Transport choice: the import cycle uses the standard library's `imaplib` in a
worker thread (fast batch FETCH, STARTTLS, well-tested response parsing); the
wait between cycles uses `aioimaplib` on a second connection, because
`imaplib` of Python 3.11 has no IDLE.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import logging
import random
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import aioimaplib

from postroom.ingest.ports import IntakeSink, MailboxCursorStore

__all__ = [
    "AfterImport",
    "ImapError",
    "ImapMailbox",
    "ImapPoller",
    "TlsMode",
]

TlsMode = Literal["none", "starttls", "ssl"]
AfterImport = Literal["seen", "move", "delete", "none"]

_TLS_MODES: Final = ("none", "starttls", "ssl")
_AFTER_IMPORT: Final = ("seen", "move", "delete", "none")

# RFC 2177 §3: servers may log out a client idle for 30 minutes; re-issue IDLE
# at least every 29 minutes. We default lower so a silently dropped
# connection (NAT, firewall) is noticed sooner.
IDLE_MAX_S: Final = 29 * 60.0
IDLE_RENEW_DEFAULT_S: Final = 25 * 60.0

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")


class ImapError(Exception):
    """The IMAP server refused something the poller needs (login, folder, command)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImapMailbox:
    """One IMAP mailbox configured on a route.

    `key` names the mailbox in cursors, source refs and logs; keep it stable
    (renaming it makes the poller start over from UID 1, deduplicated only by
    the pipeline's Message-ID check).
    """

    key: str
    host: str
    user: str
    password: str = field(repr=False)
    port: int = 993
    tls: TlsMode = "ssl"
    folder: str = "INBOX"
    after_import: AfterImport = "seen"
    move_to: str | None = None
    poll_interval_s: float = 60.0
    idle: bool = True

    def __post_init__(self) -> None:
        if not self.key or ":" in self.key:
            raise ValueError(f"IMAP mailbox key must be non-empty without ':' (got {self.key!r})")
        if self.tls not in _TLS_MODES:
            raise ValueError(f"IMAP tls must be one of {', '.join(_TLS_MODES)} (got {self.tls!r})")
        if self.after_import not in _AFTER_IMPORT:
            raise ValueError(
                f"IMAP after_import must be one of {', '.join(_AFTER_IMPORT)} "
                f"(got {self.after_import!r})"
            )
        if self.after_import == "move" and not self.move_to:
            raise ValueError(f"IMAP mailbox {self.key!r}: after_import='move' needs move_to")
        if self.after_import == "move" and self.move_to == self.folder:
            raise ValueError(f"IMAP mailbox {self.key!r}: move_to must differ from folder")
        if not 0 < self.port < 65536:
            raise ValueError(f"IMAP mailbox {self.key!r}: port {self.port} is out of range")
        if self.poll_interval_s <= 0:
            raise ValueError(f"IMAP mailbox {self.key!r}: poll_interval_s must be positive")

    def source_ref(self, uidvalidity: int, uid: int) -> str:
        """The spool's idempotence key: a UID means one message only within one UIDVALIDITY."""
        return f"imap:{self.key}:{uidvalidity}:{uid}"


# --------------------------------------------------------------------------
# Small protocol helpers (pure)
# --------------------------------------------------------------------------


def _encode_mailbox_name(name: str) -> str:
    """Modified UTF-7 of RFC 3501 §5.1.3 (RFC 9051 servers also accept it)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _quote(text: str) -> str:
    """An IMAP quoted string (RFC 3501 §4.3); CR/LF are refused, never sent."""
    if "\r" in text or "\n" in text or "\0" in text:
        raise ImapError("IMAP strings cannot contain CR, LF or NUL")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mailbox_arg(name: str) -> str:
    return _quote(_encode_mailbox_name(name))


def _uid_set(uids: Iterable[int]) -> str:
    """Compact sequence set, e.g. 1:3,7,9:10 (RFC 3501 §9 sequence-set)."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(parts)


_UID_RE: Final = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_EXISTS_RE: Final = re.compile(rb"^(?:\* )?\d+ EXISTS\b", re.IGNORECASE)


def _parse_fetch(data: Sequence[Any]) -> dict[int, bytes]:
    """Map UID -> raw message from imaplib's ``UID FETCH (UID BODY.PEEK[])`` data.

    imaplib gives a (prefix, literal) tuple per literal, followed by the rest
    of that response line (``b')'`` or ``b' UID 7)'`` when the server sends UID
    after the body). Unsolicited FETCH responses (flag changes) come as plain
    bytes and carry no literal: they are ignored.
    """
    found: dict[int, bytes] = {}
    for index, item in enumerate(data):
        if not isinstance(item, tuple) or len(item) != 2:
            continue
        head, body = item
        if not isinstance(head, bytes | bytearray) or not isinstance(body, bytes | bytearray):
            continue
        if b"BODY[]" not in head.upper():
            continue
        match = _UID_RE.search(head)
        if match is None and index + 1 < len(data):
            tail = data[index + 1]
            # The rest of the same response starts with ')' or ' ', never a number.
            if isinstance(tail, bytes) and tail[:1] in (b")", b" "):
                match = _UID_RE.search(tail)
        if match is not None:
            found[int(match.group(1))] = bytes(body)
    return found


def _parse_uids(data: Sequence[Any]) -> list[int]:
    uids: list[int] = []
    for item in data:
        if isinstance(item, bytes | bytearray):
            uids.extend(int(token) for token in item.split() if token.isdigit())
    return sorted(set(uids))


def _chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------
# The import connection (blocking imaplib; every call runs in a worker thread)
# --------------------------------------------------------------------------


class _Session:
    """One logged-in, selected imaplib connection used for one import cycle."""

    def __init__(self, conn: imaplib.IMAP4, capabilities: frozenset[str], uidvalidity: int):
        self.conn = conn
        self.capabilities = capabilities
        self.uidvalidity = uidvalidity

    @classmethod
    def open(cls, mailbox: ImapMailbox, ssl_context: ssl.SSLContext, timeout: float) -> _Session:
        conn: imaplib.IMAP4
        if mailbox.tls == "ssl":
            conn = imaplib.IMAP4_SSL(
                mailbox.host, mailbox.port, ssl_context=ssl_context, timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
        try:
            if mailbox.tls == "starttls":
                # Refuses (raises) when the server does not offer STARTTLS: no silent downgrade.
                conn.starttls(ssl_context)
            try:
                conn.login(_quote(mailbox.user), mailbox.password)
            except imaplib.IMAP4.error as exc:
                if isinstance(exc, imaplib.IMAP4.abort):
                    raise
                raise ImapError(
                    f"IMAP login refused for mailbox {mailbox.key!r}: check user and password"
                ) from None
            # Capabilities may change after login (RFC 3501 §6.2.3): ask again.
            typ, data = conn.capability()
            caps = frozenset(
                token.upper()
                for item in data
                if isinstance(item, bytes)
                for token in item.decode("ascii", "replace").split()
            )
            typ, data = conn.select(_mailbox_arg(mailbox.folder))
            if typ != "OK":
                raise ImapError(
                    f"IMAP folder {mailbox.folder!r} of mailbox {mailbox.key!r} cannot be "
                    f"selected: {_text(data)}"
                )
            # SELECT must answer OK [UIDVALIDITY n] (RFC 3501 §6.3.1, RFC 9051 §6.3.2).
            _, vdata = conn.response("UIDVALIDITY")
            try:
                uidvalidity = int(vdata[0]) if vdata and vdata[0] is not None else 0
            except (TypeError, ValueError):
                uidvalidity = 0
            if uidvalidity <= 0:
                raise ImapError(f"IMAP server sent no UIDVALIDITY for mailbox {mailbox.key!r}")
            return cls(conn, caps, uidvalidity)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.shutdown()
            raise

    def _check(self, what: str, typ: str, data: Sequence[Any]) -> None:
        if typ != "OK":
            raise ImapError(f"IMAP {what} failed: {_text(data)}")

    def uids_after(self, last_uid: int) -> list[int]:
        # RFC 3501 §6.4.8 / §9: in "n:*" the "*" is the highest UID in use, and
        # a range is unordered, so "n:*" also matches the highest message
        # when n is above it. Keep only UIDs really above the cursor.
        typ, data = self.conn.uid("SEARCH", f"UID {last_uid + 1}:*")
        self._check("UID SEARCH", typ, data)
        return [uid for uid in _parse_uids(data) if uid > last_uid]

    def unseen_between(self, first: int, last: int) -> set[int]:
        if last < first:
            return set()
        typ, data = self.conn.uid("SEARCH", f"UID {first}:{last} UNSEEN")
        self._check("UID SEARCH UNSEEN", typ, data)
        return {uid for uid in _parse_uids(data) if first <= uid <= last}

    def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Bodies of `uids` that the server delivered; missing ones are left out.

        BODY.PEEK[] leaves \\Seen alone (RFC 3501 §6.4.5), so a failed
        import never makes a message look read.
        """
        typ, data = self.conn.uid("FETCH", _uid_set(uids), "(UID BODY.PEEK[])")
        if typ not in ("OK", "NO"):  # NO may come with partial results
            raise ImapError(f"IMAP UID FETCH failed: {_text(data)}")
        wanted = set(uids)
        return {uid: raw for uid, raw in _parse_fetch(data).items() if uid in wanted}

    def after_import(self, mailbox: ImapMailbox, uids: Sequence[int]) -> None:
        if not uids or mailbox.after_import == "none":
            return
        uid_set = _uid_set(uids)
        if mailbox.after_import == "seen":
            typ, data = self.conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Seen)")
            self._check("UID STORE \\Seen", typ, data)
        elif mailbox.after_import == "move":
            assert mailbox.move_to is not None
            self._move(uid_set, mailbox.move_to)
        elif mailbox.after_import == "delete":
            self._delete(uid_set)

    def _move(self, uid_set: str, folder: str) -> None:
        target = _mailbox_arg(folder)
        command = "MOVE" if "MOVE" in self.capabilities else "COPY"
        typ, data = self.conn.uid(command, uid_set, target)
        if typ == "NO" and b"TRYCREATE" in b" ".join(_as_bytes(data)).upper():
            # RFC 3501 §6.4.7 / RFC 6851 §3.3: [TRYCREATE] means the folder is missing.
            self.conn.create(target)
            typ, data = self.conn.uid(command, uid_set, target)
        self._check(f"UID {command} to {folder!r}", typ, data)
        if command == "COPY":
            # No MOVE extension (RFC 6851 §3.3 describes this fallback): the
            # copy succeeded, so the original can be flagged and expunged.
            self._delete(uid_set)

    def _delete(self, uid_set: str) -> None:
        typ, data = self.conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
        self._check("UID STORE \\Deleted", typ, data)
        if "UIDPLUS" in self.capabilities:
            # RFC 4315 §2.1: UID EXPUNGE removes only our messages.
            typ, data = self.conn.uid("EXPUNGE", uid_set)
        else:
            # Plain EXPUNGE also removes messages others flagged \Deleted in
            # this folder; without UIDPLUS there is no narrower command.
            typ, data = self.conn.expunge()
        self._check("EXPUNGE", typ, data)

    def close(self) -> None:
        try:
            self.conn.logout()
        except Exception:
            with contextlib.suppress(Exception):
                self.conn.shutdown()


def _as_bytes(data: Sequence[Any]) -> list[bytes]:
    return [bytes(item) for item in data if isinstance(item, bytes | bytearray)]


def _text(data: Sequence[Any]) -> str:
    return b" ".join(_as_bytes(data)).decode("utf-8", "replace")[:200]


# --------------------------------------------------------------------------
# The IDLE connection (aioimaplib)
# --------------------------------------------------------------------------


class _IdleWatcher:
    """A second, selected connection that waits in IDLE (RFC 2177) for new mail."""

    def __init__(self, client: Any, lost: asyncio.Event, timeout: float) -> None:
        self._client = client
        self._lost = lost
        self._timeout = timeout

    @classmethod
    async def open(
        cls, mailbox: ImapMailbox, ssl_context: ssl.SSLContext, timeout: float
    ) -> _IdleWatcher | None:
        """A watcher ready to IDLE, or None when the server has no IDLE capability."""
        lost = asyncio.Event()

        def on_lost(_exc: Exception | None) -> None:
            lost.set()

        client = aioimaplib.IMAP4(
            host=mailbox.host,
            port=mailbox.port,
            timeout=timeout,
            conn_lost_cb=on_lost,
            ssl_context=ssl_context if mailbox.tls == "ssl" else None,
        )
        watcher = cls(client, lost, timeout)
        try:
            await client.wait_hello_from_server()
            _keepalive(client)
            if mailbox.tls == "starttls":
                await watcher._starttls(ssl_context, mailbox.host)
            response = await client.login(_quote(mailbox.user), mailbox.password)
            if response.result != "OK":
                raise ImapError(
                    f"IMAP login refused for mailbox {mailbox.key!r}: check user and password"
                )
            # RFC 3501 §6.2.3: capabilities can differ after login.
            await asyncio.wait_for(client.protocol.capability(), timeout)
            if not client.has_capability("IDLE"):
                await watcher.close()
                return None
            response = await client.select(_mailbox_arg(mailbox.folder))
            if response.result != "OK":
                raise ImapError(
                    f"IMAP folder {mailbox.folder!r} of mailbox {mailbox.key!r} cannot be selected"
                )
        except BaseException:
            await watcher.close()
            raise
        return watcher

    async def _starttls(self, ssl_context: ssl.SSLContext, host: str) -> None:
        # aioimaplib 2.0 has no STARTTLS helper: send the command, then upgrade
        # the transport in place (RFC 3501 §6.2.1; RFC 9051 §6.2.1).
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("IMAP server does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), self._timeout)
        if response.result != "OK":
            raise ImapError("IMAP STARTTLS refused")
        loop = asyncio.get_running_loop()
        transport = await asyncio.wait_for(
            loop.start_tls(protocol.transport, protocol, ssl_context, server_hostname=host),
            self._timeout,
        )
        if transport is None:
            raise ImapError("IMAP STARTTLS handshake failed")
        protocol.transport = transport
        # Forget what was learned before TLS (RFC 3501 §6.2.1).
        await asyncio.wait_for(protocol.capability(), self._timeout)

    async def wait(self, stop: asyncio.Event, renew_s: float) -> bool:
        """IDLE until new mail (True), `renew_s` elapsed or `stop` is set (False).

        Raises ConnectionError when the connection drops while idling.
        """
        if self._lost.is_set():
            raise ConnectionError("IMAP connection lost")
        client = self._client
        queue: asyncio.Queue[Any] = client.protocol.idle_queue
        idle_task = await asyncio.wait_for(client.idle_start(timeout=renew_s), self._timeout)
        woke = False
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                stopped = asyncio.ensure_future(stop.wait())
                lost = asyncio.ensure_future(self._lost.wait())
                done, pending = await asyncio.wait(
                    {get, stopped, lost}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                if get in done:
                    lines = get.result()
                    if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                        break  # renew timer fired: leave IDLE, the caller re-polls
                    if _has_exists(lines):
                        woke = True
                        break
                if lost in done:
                    raise ConnectionError("IMAP connection lost while idling")
                if stopped in done:
                    break
        finally:
            if not self._lost.is_set() and client.has_pending_idle():
                client.idle_done()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(idle_task, self._timeout)
        # EXISTS that arrived while DONE was on its way still means new mail.
        while not queue.empty():
            if _has_exists(queue.get_nowait()):
                woke = True
        if self._lost.is_set():
            raise ConnectionError("IMAP connection lost while idling")
        return woke

    async def close(self) -> None:
        client = self._client
        if not self._lost.is_set():
            with contextlib.suppress(Exception):
                if client.has_pending_idle():
                    client.idle_done()
                await asyncio.wait_for(client.logout(), min(self._timeout, 5.0))
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()
        with contextlib.suppress(BaseException):
            client._client_task.cancel()


def _has_exists(lines: Any) -> bool:
    if not isinstance(lines, list):
        return False
    return any(
        isinstance(line, bytes | bytearray) and _EXISTS_RE.match(bytes(line)) for line in lines
    )


def _keepalive(client: Any) -> None:
    """TCP keepalive so a peer that vanished without a FIN is noticed while idling."""
    transport = getattr(client.protocol, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


# --------------------------------------------------------------------------
# Backoff
# --------------------------------------------------------------------------


class _Backoff:
    """Exponential backoff with jitter, capped, reset after a success."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random) -> None:
        self._initial = initial_s
        self._max = max_s
        self._rng = rng
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._max, self._initial * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        # "Equal jitter": at least half the step, so retries still spread out.
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))


async def _sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


# --------------------------------------------------------------------------
# The poller
# --------------------------------------------------------------------------


class ImapPoller:
    """Imports one IMAP mailbox into the spool, forever (`run`) or once (`poll_once`).

    Guarantees: a message is marked, moved or deleted on the server only after
    `sink.accept` returned for it; the cursor never passes a message that was
    not accepted (a message that failed to fetch or to be accepted is retried
    on the next cycle); re-importing is harmless because the source ref
    ``imap:<key>:<uidvalidity>:<uid>`` makes `accept` idempotent.
    """

    def __init__(
        self,
        mailbox: ImapMailbox,
        sink: IntakeSink,
        cursors: MailboxCursorStore,
        *,
        log: logging.Logger | None = None,
        ssl_context: ssl.SSLContext | None = None,
        batch_size: int = 50,
        io_timeout_s: float = 30.0,
        idle_renew_s: float = IDLE_RENEW_DEFAULT_S,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._mailbox = mailbox
        self._sink = sink
        self._cursors = cursors
        self._log = log or _LOG
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._batch_size = batch_size
        self._io_timeout = io_timeout_s
        self._idle_renew = min(max(idle_renew_s, 1.0), IDLE_MAX_S)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = max(backoff_max_s, backoff_initial_s)
        self._rng = rng or random.Random()
        self._lock = asyncio.Lock()
        # Per-UIDVALIDITY memory of this process (lost on restart, which only
        # costs an idempotent re-accept):
        self._validity_seen: int | None = None
        self._done_above_cursor: set[int] = set()  # accepted+marked, cursor held back
        self._unseen_only_upto: int | None = None  # after a UIDVALIDITY change in "seen" mode
        self.failed_uids: frozenset[int] = frozenset()  # left for retry by the last cycle

    @property
    def mailbox(self) -> ImapMailbox:
        return self._mailbox

    # -- one cycle ------------------------------------------------------------

    async def poll_once(self) -> int:
        """Connect, import what is new, mark it, save the cursor, log out.

        Returns how many messages the spool newly stored (re-accepted
        duplicates are not counted). Raises on connection or server errors;
        a single message that cannot be fetched or accepted does not raise:
        it is left unmarked and retried next cycle (see `failed_uids`).
        """
        async with self._lock:
            session = await self._in_thread(
                _Session.open, self._mailbox, self._ssl_context, self._io_timeout
            )
            try:
                return await self._import(session)
            finally:
                await self._in_thread(session.close)

    async def _import(self, session: _Session) -> int:
        mb = self._mailbox
        uidvalidity = session.uidvalidity
        stored_validity, last_uid = self._cursors.load(mb.key)
        rescan_unseen_only = False
        if self._validity_seen != uidvalidity:
            self._done_above_cursor.clear()
            self._unseen_only_upto = None
            self._validity_seen = uidvalidity
        if stored_validity != uidvalidity:
            # RFC 3501 §2.3.1.1 / RFC 9051 §2.3.1.1: a new UIDVALIDITY voids
            # every UID we knew; start over from UID 1, record it first.
            if stored_validity is not None:
                self._log.warning(
                    "imap uidvalidity changed; rescanning",
                    extra={
                        "mailbox": mb.key,
                        "uidvalidity_old": stored_validity,
                        "uidvalidity": uidvalidity,
                    },
                )
                if mb.after_import == "seen":
                    # Messages already taken were marked \Seen: on the rescan
                    # take only the unseen ones among those present now, so a
                    # renumbered mailbox does not flood the queues again.
                    rescan_unseen_only = True
            last_uid = 0
            self._cursors.save(mb.key, uidvalidity, 0)

        present = await self._in_thread(session.uids_after, last_uid)
        if rescan_unseen_only:
            self._unseen_only_upto = max(present, default=0)
        done: set[int] = {uid for uid in self._done_above_cursor if uid > last_uid}
        if self._unseen_only_upto is not None:
            limit = self._unseen_only_upto
            unseen = await self._in_thread(session.unseen_between, last_uid + 1, limit)
            done.update(uid for uid in present if uid <= limit and uid not in unseen)
        todo = [uid for uid in present if uid not in done]

        created_count = 0
        failed: set[int] = set()
        cursor = last_uid
        for batch in _chunks(todo, self._batch_size):
            bodies = await self._in_thread(session.fetch, batch)
            if len(batch) > 1:
                # One bad message must not hold the batch: retry the missing ones alone.
                for uid in batch:
                    if uid not in bodies:
                        bodies.update(await self._in_thread(session.fetch, [uid]))
            accepted: list[int] = []
            for uid in batch:
                raw = bodies.get(uid)
                if raw is None:
                    failed.add(uid)
                    self._log.warning(
                        "imap message fetch failed; will retry",
                        extra={"mailbox": mb.key, "uidvalidity": uidvalidity, "uid": uid},
                    )
                    continue
                ref = mb.source_ref(uidvalidity, uid)
                try:
                    result = await self._sink.accept(raw, source="imap", source_ref=ref)
                except Exception:
                    failed.add(uid)
                    self._log.warning(
                        "imap message not accepted by the spool; will retry",
                        extra={"mailbox": mb.key, "uidvalidity": uidvalidity, "uid": uid},
                        exc_info=True,
                    )
                    continue
                accepted.append(uid)
                if result.created:
                    created_count += 1
                self._log.info(
                    "imap message imported",
                    extra={
                        "mailbox": mb.key,
                        "uidvalidity": uidvalidity,
                        "uid": uid,
                        "source_ref": ref,
                        "message_pk": result.message_pk,
                        "duplicate": not result.created,
                        "size_bytes": len(raw),
                    },
                )
            # Durable here first, only then touch the server.
            await self._in_thread(session.after_import, mb, accepted)
            done.update(accepted)
            cursor = self._advance(mb.key, uidvalidity, present, done, cursor)
        cursor = self._advance(mb.key, uidvalidity, present, done, cursor)
        if self._unseen_only_upto is not None and cursor >= self._unseen_only_upto:
            self._unseen_only_upto = None  # rescan finished
        self.failed_uids = frozenset(failed)
        return created_count

    def _advance(
        self, key: str, uidvalidity: int, present: Sequence[int], done: set[int], cursor: int
    ) -> int:
        """Move the cursor over the unbroken run of finished UIDs and save it."""
        start = cursor
        for uid in present:
            if uid <= cursor:
                continue
            if uid not in done:
                break
            cursor = uid
        if cursor != start:
            self._cursors.save(key, uidvalidity, cursor)
        # Finished UIDs above a held-back cursor are not fetched again by this process.
        self._done_above_cursor = {uid for uid in done if uid > cursor}
        return cursor

    async def _in_thread(self, func: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(func, *args)

    # -- forever ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Import, wait (IDLE or poll interval), repeat until `stop` is set.

        Never raises for IMAP, network or spool trouble: it logs, backs off
        and reconnects. Only cancellation ends it early.
        """
        mb = self._mailbox
        backoff = _Backoff(self._backoff_initial, self._backoff_max, self._rng)
        retry = _Backoff(self._backoff_initial, self._backoff_max, self._rng)
        use_idle = mb.idle
        watcher: _IdleWatcher | None = None
        try:
            while not stop.is_set():
                try:
                    if use_idle and watcher is None:
                        # Selected before the cycle, so mail that lands during
                        # the cycle shows up as EXISTS when IDLE starts.
                        watcher = await _IdleWatcher.open(mb, self._ssl_context, self._io_timeout)
                        if watcher is None:
                            use_idle = False
                            self._log.info(
                                "imap server has no IDLE; polling",
                                extra={"mailbox": mb.key, "interval_s": mb.poll_interval_s},
                            )
                    await self.poll_once()
                    backoff.reset()
                    if self.failed_uids:
                        # Something was left behind: come back soon, not at the next mail.
                        await _sleep_unless_stopped(stop, retry.next_delay())
                        continue
                    retry.reset()
                    if watcher is not None:
                        await watcher.wait(stop, self._idle_renew)
                    else:
                        await _sleep_unless_stopped(stop, mb.poll_interval_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    delay = backoff.next_delay()
                    self._log.warning(
                        "imap mailbox unavailable; reconnecting",
                        extra={
                            "mailbox": mb.key,
                            "retry_in_s": round(delay, 2),
                            "error": f"{type(exc).__name__}: {exc}"[:300],
                        },
                    )
                    if watcher is not None:
                        await watcher.close()
                        watcher = None
                    await _sleep_unless_stopped(stop, delay)
        finally:
            if watcher is not None:
                await watcher.close()

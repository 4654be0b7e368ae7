"""Parse each message in a long-lived child process, within a time budget.

Parsing is the one pipeline step whose cost depends on what a sender wrote, so
the pipeline hands the bytes to a child process and waits at most
`budget_s`. A parse over budget is stopped by killing the child (a thread could
not be stopped); the next message gets a fresh child. A child that dies is
reported as such. One slow message therefore delays the others by at most its
budget. The child is forked from multiprocessing's fork server, never from the
threaded server process, and is reused for every message: the round trip costs
a fraction of a millisecond for common mail. This module parses only: no
database, no blob store, no decisions about what happens to a message.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import pickle
import select
import signal
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from postroom.mail.model import ParsedMessage
from postroom.mail.parse import parse_message
from postroom.services.intake import ParserDied, ParserUnavailable, ParseTimeout

log = logging.getLogger("postroom.pipeline")

ParseFunction = Callable[..., ParsedMessage]  # (raw, *, cid_url) -> ParsedMessage

START_TIMEOUT_S = 60.0  # a child that is not ready by then has failed to start
_CONTEXT = mp.get_context("forkserver")
# Children fork from a server that has these imported already: about 10 ms a start.
_CONTEXT.set_forkserver_preload(["postroom.ingest.parse_process"])


def _serve(conn: Connection, parse: ParseFunction, owner: int) -> None:
    """The child: parse what arrives until the parent closes the pipe."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; the
    # parent stops in order and then closes the pipe (or kills this process), so
    # a parse under way is not reported as a dead parser.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with(owner)
    conn.send("ready")  # the budget counts the parse, not the start of this process
    while True:
        try:
            raw, cid_url = conn.recv()
        except (EOFError, OSError):
            return
        result: tuple[str, Any]
        try:
            result = ("ok", parse(raw, cid_url=cid_url))
        except Exception as exc:
            result = ("error", _portable(exc))
        try:
            conn.send(result)
        except (pickle.PicklingError, TypeError, ValueError, RecursionError) as exc:
            conn.send(("error", RuntimeError(f"cannot hand the parsed message back: {exc}")))


def _exit_with(owner: int) -> None:
    """Exit as soon as process `owner` (the pipeline's) is gone, whatever we are doing.

    After a kill -9 of the server, a parse that never ends would otherwise run on
    by itself: the child's parent is the fork server, which in turn stays up as
    long as the child does. A thread waits on a pidfd (Linux), or polls.
    """

    def watch() -> None:
        try:
            fd = os.pidfd_open(owner)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            select.select([fd], [], [])
            os._exit(1)
        while True:
            time.sleep(1.0)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


def _portable(exc: Exception) -> Exception:
    """The exception itself when it survives pickling, else its text in a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


_LIVE: weakref.WeakSet[ProcessParser] = weakref.WeakSet()


@atexit.register  # after multiprocessing.util's own (imported above), so it runs first
def _kill_children() -> None:
    """At interpreter exit, before multiprocessing joins its children: kill ours.

    The child ignores SIGTERM (see _serve), which is what multiprocessing would
    send it, and waits for its pipe, which stays open until exit: without this
    a process that never called close() would hang on its way out.
    """
    for parser in list(_LIVE):
        proc = parser._proc
        if proc is not None and proc.is_alive():
            proc.kill()


class ProcessParser:
    """`Parser` (services/intake.py) backed by one child process with a time budget."""

    def __init__(
        self,
        budget_s: float,
        *,
        slow_s: float = 2.0,
        parse: ParseFunction = parse_message,
    ) -> None:
        self.budget_s = budget_s
        self.slow_s = slow_s
        self._parse = parse
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        _LIVE.add(self)

    def parse(self, pk: int, raw: bytes, cid_url: Callable[[str], str]) -> ParsedMessage:
        with self._lock:
            conn = self._send(pk, raw, cid_url)
            started = time.monotonic()
            ready = conn.poll(min(self.slow_s, self.budget_s))
            if not ready and self.slow_s < self.budget_s:
                log.warning(
                    "message still parsing",
                    extra={
                        "message_pk": pk,
                        "size": len(raw),
                        "ms": round((time.monotonic() - started) * 1000),
                        "budget_s": self.budget_s,
                    },
                )
                ready = conn.poll(max(0.0, self.budget_s - (time.monotonic() - started)))
            if not ready:
                self._stop()
                log.error(
                    "message parse stopped: over its time budget",
                    extra={"message_pk": pk, "size": len(raw), "budget_s": self.budget_s},
                )
                raise ParseTimeout(pk, self.budget_s)
            try:
                status, value = conn.recv()
            except (EOFError, OSError):
                code = self._stop()
                log.error(
                    "parser process died",
                    extra={"message_pk": pk, "size": len(raw), "exit_code": code},
                )
                raise ParserDied(pk, code) from None
        if status == "ok":
            assert isinstance(value, ParsedMessage)
            return value
        assert isinstance(value, Exception)
        raise value

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _send(self, pk: int, raw: bytes, cid_url: Callable[[str], str]) -> Connection:
        """Hand the work to the child, starting one when there is none or it has died."""
        for _ in range(2):
            if self._conn is None:
                self._start()
            assert self._conn is not None
            try:
                self._conn.send((raw, cid_url))
                return self._conn
            except (BrokenPipeError, EOFError, OSError):
                self._stop()  # died between two messages: start another and resend
        raise ParserDied(pk, None)

    def _start(self) -> None:
        ours, theirs = _CONTEXT.Pipe()
        proc = _CONTEXT.Process(
            target=_serve,
            args=(theirs, self._parse, os.getpid()),
            name="postroom-parse",
            daemon=True,
        )
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, ours
        try:
            if not ours.poll(START_TIMEOUT_S) or ours.recv() != "ready":
                raise EOFError
        except (EOFError, OSError):
            code = self._stop()
            raise ParserUnavailable(
                f"the parser process did not start (exit code {code}); see the log"
            ) from None

    def _stop(self) -> int | None:
        """Kill the child (if any); return its exit code."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        return proc.exitcode

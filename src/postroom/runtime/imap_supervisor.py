"""The imap role: one poller per route with an IMAP mailbox, following the live
configuration.

Every few seconds the supervisor compares the mailboxes the stored routes name
with the pollers it runs: a new route's mailbox gets a poller, a removed
route's poller stops, a changed mailbox (host, user, password, folder, ...) is
stopped and started again with its new settings. A poller's cursor is keyed by
the route address, so a restarted poller continues where it was.

Starts and stops asyncio tasks only; polling is ingest/imap.py's, choosing the
route is intake's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from postroom.domain.routes import Route
from postroom.ingest.imap import ImapMailbox
from postroom.ingest.ports import Accepted, IntakeSink

log = logging.getLogger("postroom.imap")

STOP_GRACE_S = 5.0  # a stopped poller finishes its step this long before it is cancelled


class Poller(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class RouteRecipient:
    """An `IntakeSink` that gives mail from a route's own mailbox that route's address.

    Mail reaches a mailbox as Bcc or through aliases, so its headers may not name
    the route; the mailbox itself says where it was delivered.
    """

    def __init__(self, sink: IntakeSink, address: str) -> None:
        self.sink = sink
        self.recipients = [] if address.startswith("*@") else [address]

    async def accept(
        self,
        raw: bytes,
        *,
        source: str,
        source_ref: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
    ) -> Accepted:
        return await self.sink.accept(
            raw,
            source=source,
            source_ref=source_ref,
            envelope_from=envelope_from,
            envelope_to=envelope_to or self.recipients,
        )


def imap_mailboxes(routes: Sequence[Route]) -> list[tuple[ImapMailbox, str]]:
    """One mailbox per route that names one; the route address is its key."""
    boxes: list[tuple[ImapMailbox, str]] = []
    for route in routes:
        src = route.imap
        if src is None:
            continue
        boxes.append(
            (
                ImapMailbox(
                    key=route.address.replace(":", "_"),
                    host=src.host,
                    port=src.port,
                    tls=src.tls,
                    user=src.user,
                    password=src.password,
                    folder=src.folder,
                    after_import=src.after_import,
                    move_to=src.move_to,
                    poll_interval_s=src.poll_interval_s,
                    idle=src.idle,
                ),
                route.address,
            )
        )
    return boxes


@dataclass(frozen=True, slots=True)
class Plan:
    start: tuple[tuple[ImapMailbox, str], ...]
    stop: tuple[str, ...]  # keys


def plan(running: Mapping[str, ImapMailbox], wanted: Sequence[tuple[ImapMailbox, str]]) -> Plan:
    """What to start and stop so the pollers match `wanted`: a changed mailbox is
    stopped and started again."""
    want = {box.key: (box, address) for box, address in wanted}
    stop = [key for key, box in running.items() if key not in want or want[key][0] != box]
    start = [item for key, item in want.items() if key not in running or key in stop]
    return Plan(tuple(start), tuple(stop))


@dataclass
class _Running:
    box: ImapMailbox
    stop: asyncio.Event
    task: asyncio.Task[None]


class ImapSupervisor:
    """Runs a poller per wanted mailbox and follows `routes()` every `check_s`."""

    def __init__(
        self,
        routes: Callable[[], Sequence[Route]],
        make_poller: Callable[[ImapMailbox, str], Poller],
        *,
        check_s: float = 2.0,
    ) -> None:
        self.routes = routes
        self.make_poller = make_poller
        self.check_s = check_s
        self.running: dict[str, _Running] = {}

    async def reconcile(self) -> Plan:
        try:
            wanted = imap_mailboxes(self.routes())
        except Exception as exc:  # the database is away: keep what runs
            log.warning("cannot read the routes' mailboxes", extra={"error": repr(exc)[:300]})
            return Plan((), ())
        todo = plan({k: r.box for k, r in self.running.items()}, wanted)
        for key in todo.stop:
            await self._stop(key)
        for box, address in todo.start:
            stop = asyncio.Event()
            task = asyncio.create_task(
                self.make_poller(box, address).run(stop), name=f"imap-{box.key}"
            )
            self.running[box.key] = _Running(box, stop, task)
            log.info("imap: polling", extra={"mailbox": box.key, "host": box.host})
            print(f"IMAP: polling {box.user}@{box.host}:{box.port}/{box.folder}", flush=True)
        return todo

    async def _stop(self, key: str) -> None:
        found = self.running.pop(key, None)
        if found is None:
            return
        found.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(found.task), STOP_GRACE_S)
        except (TimeoutError, Exception):
            found.task.cancel()
            with contextlib.suppress(BaseException):
                await found.task
        log.info("imap: stopped", extra={"mailbox": key})

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.reconcile()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.check_s)
        finally:
            for key in list(self.running):
                await self._stop(key)

    def keys(self) -> list[str]:
        return sorted(self.running)

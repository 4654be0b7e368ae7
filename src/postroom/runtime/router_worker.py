"""The router worker: a thread that keeps the routing service fed.

Only schedules: rebuilds the engine on start, then handles routing requests when
woken (the pipeline wakes it in-process), every `poll_s` (requests written by
other processes), and when the engine's next timer is due. Decisions are made in
`postroom.services.routing`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from postroom.services.routing import RoutingService

log = logging.getLogger("postroom.router")


class RouterWorker:
    def __init__(
        self, service: RoutingService, clock: Callable[[], datetime], *, poll_s: float = 0.1
    ) -> None:
        self.service = service
        self.clock = clock
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="router", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self, *_: object) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.service.rebuild()
                break
            except Exception:
                log.exception("router could not rebuild from the database; retrying")
                self._stop.wait(2.0)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                while not self._stop.is_set() and self.service.poll():
                    pass
            except Exception:
                log.exception("router pass failed; retrying")
                self._stop.wait(1.0)
            delay = self.poll_s
            wake = self.service.next_wakeup()
            if wake is not None:
                delay = max(0.0, min(delay, (wake - self.clock()).total_seconds()))
            self._wake.wait(delay)

"""The router worker: keeps the routing service fed from a thread.

Only schedules: rebuilds the engine on start, then handles routing requests when
woken (the pipeline wakes it in-process), every `poll_s` (requests written by
other processes), and when the engine's next timer is due. Decisions are made in
`postroom.services.routing`.

With a router lock it routes only while it holds that lock: a second router
process stands by, and takes over (rebuilding the engine from the database,
since the other router acted meanwhile) when the first one stops or dies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from postroom.ingest.worker import LoopWorker
from postroom.services.routing import RoutingService
from postroom.store.router_lock import LockLost, RouterLock


class RouterWorker(LoopWorker):
    def __init__(
        self,
        service: RoutingService,
        clock: Callable[[], datetime],
        *,
        poll_s: float = 0.1,
        lock: RouterLock | None = None,
        standby_s: float = 2.0,
    ) -> None:
        self.service = service
        self.lock = lock
        if lock is not None:
            service.fence = lock.fence
        self._standby_s = standby_s
        self._next_try = 0.0
        self.leading = lock is None
        self._standing_by = False

        def delay() -> float:
            if not self.leading:
                return standby_s
            wake = service.next_wakeup()
            if wake is None:
                return poll_s
            return min(poll_s, (wake - clock()).total_seconds())

        super().__init__("router", self._step, delay=delay, start_up=self._lead)

    def _lead(self) -> None:
        """Take the lock if there is one, then build the engine from the database."""
        if self.lock is not None:
            # Every intake message wakes the router: a standby tries the lock at
            # its own pace, not once per message.
            if time.monotonic() < self._next_try:
                return
            self._next_try = time.monotonic() + self._standby_s
            if not self.lock.try_acquire():
                if not self._standing_by:
                    self.log.info("another process is routing; standing by")
                    self._standing_by = True
                self.leading = False
                return
            if self._standing_by:
                self.log.info("router lock taken; routing from here")
                self._standing_by = False
        self.service.rebuild()
        self.leading = True

    def _step(self) -> bool:
        if self.lock is not None and self.leading and not self.lock.held():
            self._lost()
        if not self.leading:
            self._lead()
            if not self.leading:
                return False
        try:
            return self.service.poll() > 0
        except LockLost:
            # Nothing of this pass committed; the engine ran ahead of the database
            # and is rebuilt from it if this process leads again.
            self._lost()
            return False

    def _lost(self) -> None:
        self.log.error("router lock lost (database session ended); standing by")
        self.leading = False
        self._next_try = 0.0

    def stop(self) -> None:
        super().stop()
        if self.lock is not None:
            self.lock.release()

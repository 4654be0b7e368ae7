"""The router worker: keeps the routing service fed from a thread.

Only schedules: rebuilds the engine on start, then handles routing requests when
woken (the pipeline wakes it in-process), every `poll_s` (requests written by
other processes), and when the engine's next timer is due. Decisions are made in
`postroom.services.routing`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from postroom.ingest.worker import LoopWorker
from postroom.services.routing import RoutingService


class RouterWorker(LoopWorker):
    def __init__(
        self, service: RoutingService, clock: Callable[[], datetime], *, poll_s: float = 0.1
    ) -> None:
        self.service = service

        def delay() -> float:
            wake = service.next_wakeup()
            if wake is None:
                return poll_s
            return min(poll_s, (wake - clock()).total_seconds())

        super().__init__(
            "router", lambda: service.poll() > 0, delay=delay, start_up=service.rebuild
        )

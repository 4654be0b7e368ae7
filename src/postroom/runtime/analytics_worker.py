"""The analytics worker: keeps the analytics tables up to date from a thread.

Only schedules: runs `AnalyticsProjector.step` while there are new events,
then every `poll_s` (events written by other processes) or when woken (the
router's listeners wake it after each commit). It runs in the process with the
`router` role. What is projected, and how, is in `postroom.services.analytics`.
"""

from __future__ import annotations

from postroom.ingest.worker import LoopWorker
from postroom.services.analytics import AnalyticsProjector

POLL_S = 1.0


class AnalyticsWorker(LoopWorker):
    def __init__(self, projector: AnalyticsProjector, *, poll_s: float = POLL_S) -> None:
        self.projector = projector

        def step() -> bool:
            # More at once while a whole batch came back; else sleep until woken or poll_s.
            return projector.step() >= projector.config.batch

        super().__init__("analytics", step, delay=lambda: poll_s)

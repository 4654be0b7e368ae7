"""The pipeline worker: runs pending spooled messages through intake in a thread.

It only schedules: wakes on the spool's commit signal (or every `idle_poll_s` as
a safety net and for mail spooled by other processes) and asks the intake
service for the next batch. The stages live in `postroom.services.intake`.
"""

from __future__ import annotations

from postroom.ingest.worker import LoopWorker
from postroom.services.intake import IntakeService


class PipelineWorker(LoopWorker):
    def __init__(
        self, service: IntakeService, *, idle_poll_s: float = 2.0, batch: int = 100
    ) -> None:
        self.service = service
        super().__init__(
            "pipeline",
            lambda: service.process_pending(batch) > 0,
            delay=lambda: idle_poll_s,
        )

"""The pipeline worker: a thread that runs pending spooled messages through intake.

It only schedules: wakes on the spool's commit signal (or every few seconds as a
safety net) and asks the intake service to drain. The stages themselves live in
`postroom.services.intake`.
"""

from __future__ import annotations

import logging
import threading

from postroom.services.intake import IntakeService

log = logging.getLogger("postroom.pipeline")


class PipelineWorker:
    def __init__(
        self, service: IntakeService, *, idle_poll_s: float = 2.0, batch: int = 100
    ) -> None:
        self.service = service
        self.idle_poll_s = idle_poll_s
        self.batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                while not self._stop.is_set() and self.service.process_pending(self.batch):
                    pass
            except Exception:
                log.exception("pipeline pass failed; retrying")
                self._stop.wait(self.idle_poll_s)
            self._wake.wait(self.idle_poll_s)

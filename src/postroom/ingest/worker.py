"""A background thread that repeats one step until told to stop.

Shared by the pipeline and the router: it wakes on `wake()` (another thread
has new work), after a delay the owner computes (a poll interval, the next
timer), and keeps going after a failed pass (logged) so a flaky database
never stops intake. It knows nothing about what the step does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class LoopWorker:
    def __init__(
        self,
        name: str,
        step: Callable[[], bool],
        *,
        delay: Callable[[], float],
        start_up: Callable[[], None] | None = None,
        retry_s: float = 1.0,
    ) -> None:
        """`step` returns True while it has more to do at once; `delay` says how
        long to sleep when it has not; `start_up` runs first, retried until it works."""
        self.step = step
        self.delay = delay
        self.start_up = start_up
        self.retry_s = retry_s
        self.log = logging.getLogger(f"postroom.{name}")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self, *_: object) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while self.start_up is not None and not self._stop.is_set():
            try:
                self.start_up()
                break
            except Exception:
                self.log.exception("start-up failed; retrying")
                self._stop.wait(self.retry_s)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                while not self._stop.is_set() and self.step():
                    pass
            except Exception:
                self.log.exception("pass failed; retrying")
                self._stop.wait(self.retry_s)
                continue
            self._wake.wait(max(0.0, self.delay()))

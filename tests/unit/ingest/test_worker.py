"""The loop worker keeps going after failures and wakes on demand."""

from __future__ import annotations

import threading

from postroom.ingest.worker import LoopWorker


def test_failed_pass_is_retried_and_wake_runs_the_step_at_once() -> None:
    calls: list[str] = []
    done = threading.Event()

    def step() -> bool:
        calls.append("step")
        if len(calls) == 1:
            raise RuntimeError("database went away")
        if len(calls) >= 3:
            done.set()
        return False

    worker = LoopWorker("test", step, delay=lambda: 60.0, retry_s=0.01)
    worker.start()
    try:
        # First pass fails, the retry passes; then it sleeps 60 s unless woken.
        for _ in range(200):
            if len(calls) >= 2:
                break
            threading.Event().wait(0.01)
        assert len(calls) == 2
        worker.wake()
        assert done.wait(5)
    finally:
        worker.stop()


def test_start_up_is_retried_until_it_works() -> None:
    attempts: list[int] = []
    ran = threading.Event()

    def start_up() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("not yet")

    worker = LoopWorker("test", lambda: ran.set() or False, delay=lambda: 60.0,
                        start_up=start_up, retry_s=0.01)
    worker.start()
    try:
        assert ran.wait(5) and len(attempts) == 3
    finally:
        worker.stop()

"""Service level: per-queue counts of conversations answered within the target.

Pure arithmetic over what the engine reports (entered, answered after a wait,
abandoned after a wait). No clock, no storage; the engine owns one accumulator
per queue and the simulator reuses the same type.
"""

from __future__ import annotations

from dataclasses import dataclass

from postroom.routing.model import ServiceLevel


def achieved_percent(answered_within: int, answered: int, abandoned: int) -> float | None:
    """Share answered within the threshold, of all answered or abandoned (None: nothing yet).

    Abandoned conversations (ended while waiting) count against the service
    level, as in most contact-center reporting.
    """
    total = answered + abandoned
    if total == 0:
        return None
    return 100.0 * answered_within / total


@dataclass(frozen=True, slots=True)
class ServiceLevelReport:
    queue_id: str
    target_percent: float
    threshold_s: float
    entered: int
    answered: int
    answered_within: int
    abandoned: int
    achieved_percent: float | None
    met: bool | None  # None until something was answered or abandoned
    average_wait_s: float | None  # over answered conversations


class ServiceLevelStats:
    def __init__(self, queue_id: str, target: ServiceLevel) -> None:
        self.queue_id = queue_id
        self.target = target
        self.entered = 0
        self.answered = 0
        self.answered_within = 0
        self.abandoned = 0
        self._wait_total = 0.0

    def record_entered(self) -> None:
        self.entered += 1

    def record_answered(
        self, wait_s: float, entered: float | None = None, answered: float | None = None
    ) -> None:
        """One answer after `wait_s` seconds; with `entered` and `answered` the wait is
        measured as the target counts it (business hours when it has a calendar)."""
        self.answered += 1
        self._wait_total += wait_s
        counted = wait_s
        if entered is not None and answered is not None:
            counted = self.target.waited(entered, answered)
        if counted <= self.target.seconds:
            self.answered_within += 1

    def record_abandoned(self) -> None:
        self.abandoned += 1

    def report(self) -> ServiceLevelReport:
        achieved = achieved_percent(self.answered_within, self.answered, self.abandoned)
        return ServiceLevelReport(
            queue_id=self.queue_id,
            target_percent=self.target.percent,
            threshold_s=self.target.seconds,
            entered=self.entered,
            answered=self.answered,
            answered_within=self.answered_within,
            abandoned=self.abandoned,
            achieved_percent=achieved,
            met=None if achieved is None else achieved >= self.target.percent,
            average_wait_s=self._wait_total / self.answered if self.answered else None,
        )

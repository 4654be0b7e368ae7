"""Business-hours calendars: weekly open hours, holidays and a time zone.

The job: say how many seconds of business time lie between two instants
(`business_seconds`) and when a number of business seconds after an instant
falls due (`add_business`). Service-level targets measured in business hours
use the first (analytics/metrics.py), the router's `deadline` ordering the
second (routing/model.py `ServiceLevel.due`).

Open hours are local wall-clock times in the calendar's IANA zone, so a
daylight-saving change moves them in UTC with the clocks: on the night the
clocks go forward a window spanning the gap is an hour shorter, on the night
they go back an hour longer. A local time that does not exist (in the gap)
is read with the offset before the change, as zoneinfo does (02:30 on the
night the clocks jump from 02:00 to 03:00 is 03:30 new time). Holidays are
whole local days on which nothing is open.

Searches are bounded: nothing further than `HORIZON_DAYS` after the start is
looked at, so a calendar open only on days that never come (every weekday
made a holiday) cannot stall a caller; `add_business` then answers the
horizon itself.

What it must not do: read a clock or storage. Time zones come as names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from postroom.domain.errors import ConfigError

HORIZON_DAYS = 3660  # ten years and a little: the furthest a search looks
MINUTES_PER_DAY = 24 * 60
_SPANS_KEPT = 20_000  # local days whose spans a calendar remembers (about 55 years)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CalendarError(ConfigError, ValueError):
    """A business-hours calendar that cannot be used as given."""


@dataclass(frozen=True, slots=True, order=True)
class OpenHours:
    """Open on `weekday` (0 = Monday) from `start` to `end`, minutes after local midnight
    (`end` up to 1440: open until midnight)."""

    weekday: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise CalendarError(f"weekday {self.weekday} is not 0 (Monday) to 6 (Sunday)")
        if not 0 <= self.start < self.end <= MINUTES_PER_DAY:
            raise CalendarError(
                f"open hours {_hhmm(self.start)}–{_hhmm(self.end)} on {WEEKDAYS[self.weekday]}: "
                "the start must come before the end, both within the day (00:00–24:00)"
            )


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone `name`; CalendarError when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Paris"
        ) from exc


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Weekly open hours and holidays in one time zone."""

    name: str
    zone: str
    hours: tuple[OpenHours, ...]
    holidays: frozenset[date] = frozenset()
    _tz: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _by_day: tuple[tuple[tuple[int, int], ...], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )
    # A local day's open spans as Unix times, by the day's ordinal, worked out once
    # (bounded; see `_day_spans`).
    _spans: dict[int, tuple[tuple[float, float], ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", zone_of(self.zone))
        if not self.hours:
            raise CalendarError(f"calendar {self.name!r} has no open hours: add at least one")
        days: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
        for h in sorted(self.hours):
            spans = days[h.weekday]
            if spans and h.start < spans[-1][1]:
                raise CalendarError(
                    f"calendar {self.name!r}: open hours overlap on {WEEKDAYS[h.weekday]} "
                    f"({_hhmm(spans[-1][0])}–{_hhmm(spans[-1][1])} and "
                    f"{_hhmm(h.start)}–{_hhmm(h.end)}); merge them"
                )
            spans.append((h.start, h.end))
        object.__setattr__(self, "_by_day", tuple(tuple(s) for s in days))
        object.__setattr__(self, "_spans", {})

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    def _instant(self, day: date, minutes: int) -> datetime:
        if minutes >= MINUTES_PER_DAY:
            day, minutes = day + timedelta(days=1), minutes - MINUTES_PER_DAY
        local = datetime.combine(day, time(minutes // 60, minutes % 60), self._tz)
        return local.astimezone(UTC)

    def _day_spans(self, ordinal: int) -> tuple[tuple[float, float], ...]:
        """The open spans (Unix times) of one local day, by its ordinal (none on a
        holiday), remembered: a query measures many waits over the same few days."""
        found = self._spans.get(ordinal)
        if found is None:
            day = date.fromordinal(ordinal)
            found = ()
            if day not in self.holidays:
                spans = ((self._instant(day, s), self._instant(day, e))
                         for s, e in self._by_day[day.weekday()])  # fmt: skip
                found = tuple((ws.timestamp(), we.timestamp()) for ws, we in spans if we > ws)
            if len(self._spans) >= _SPANS_KEPT:
                self._spans.clear()
            self._spans[ordinal] = found
        return found

    def _day_range(self, start: datetime, end: datetime) -> range:
        """The ordinals of the local days whose spans may overlap [start, end)."""
        first = start.astimezone(self._tz).date().toordinal() - 1
        last = min(end.astimezone(self._tz).date().toordinal(), first + HORIZON_DAYS)
        return range(first, last + 1)

    def windows(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open spans (UTC) that overlap [start, end), clipped to it, in order."""
        if end <= start:
            return
        a, b = start.timestamp(), end.timestamp()
        for ordinal in self._day_range(start, end):
            for ws, we in self._day_spans(ordinal):
                if we <= a or ws >= b:
                    continue
                lo = start if ws <= a else datetime.fromtimestamp(ws, UTC)
                hi = end if we >= b else datetime.fromtimestamp(we, UTC)
                yield lo, hi

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of open time in [start, end) (0 when end is not after start)."""
        if end <= start:
            return 0.0
        a, b = start.timestamp(), end.timestamp()
        total = 0.0
        for ordinal in self._day_range(start, end):
            for ws, we in self._day_spans(ordinal):
                lo = ws if ws > a else a
                hi = we if we < b else b
                if hi > lo:
                    total += hi - lo
        return total

    def add_business(self, start: datetime, seconds: float) -> datetime:
        """The instant at which `seconds` of open time after `start` have passed (the
        search horizon when they never do)."""
        horizon = start + timedelta(days=HORIZON_DAYS)
        if seconds <= 0:
            return start
        left = seconds
        for ws, we in self.windows(start, horizon):
            span = (we - ws).total_seconds()
            if span >= left:
                return ws + timedelta(seconds=left)
            left -= span
        return horizon

    def is_open(self, at: datetime) -> bool:
        return any(True for _ in self.windows(at, at + timedelta(microseconds=1)))


def weekly(
    name: str,
    zone: str,
    spans: Iterable[tuple[int, int, int]],
    holidays: Iterable[date] = (),
) -> BusinessCalendar:
    """A calendar from (weekday, start minute, end minute) triples."""
    return BusinessCalendar(
        name, zone, tuple(OpenHours(*s) for s in spans), frozenset(holidays)
    )

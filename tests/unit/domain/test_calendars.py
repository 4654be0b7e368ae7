"""Business-hours calendars: open time between instants, due times, DST, holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain.calendars import BusinessCalendar, CalendarError, OpenHours, weekly

PARIS = ZoneInfo("Europe/Paris")
NINE_TO_FIVE = [(d, 9 * 60, 17 * 60) for d in range(5)]  # Monday to Friday


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


def office(holidays: tuple[date, ...] = ()) -> BusinessCalendar:
    return weekly("office", "Europe/Paris", NINE_TO_FIVE, holidays)


def test_inside_one_day() -> None:
    cal = office()
    # Wednesday 2026-03-04 10:00 to 12:30
    assert cal.business_seconds(paris(2026, 3, 4, 10), paris(2026, 3, 4, 12, 30)) == 9000


def test_across_a_night_and_a_weekend() -> None:
    cal = office()
    # Friday 16:00 → Monday 10:00: one hour on Friday, one on Monday
    assert cal.business_seconds(paris(2026, 3, 6, 16), paris(2026, 3, 9, 10)) == 7200
    # Saturday to Sunday: nothing
    assert cal.business_seconds(paris(2026, 3, 7, 8), paris(2026, 3, 8, 20)) == 0


def test_holiday_is_closed() -> None:
    cal = office((date(2026, 5, 1),))  # a Friday
    assert cal.business_seconds(paris(2026, 5, 1, 8), paris(2026, 5, 1, 18)) == 0
    # Thursday 16:00 → Monday 09:30: Thursday's hour and Monday's half hour
    assert cal.business_seconds(paris(2026, 4, 30, 16), paris(2026, 5, 4, 9, 30)) == 5400


def test_dst_spring_forward_window_spanning_the_gap_is_an_hour_shorter() -> None:
    # Sunday 2026-03-29: Paris clocks jump 02:00 → 03:00.
    cal = weekly("night", "Europe/Paris", [(6, 0, 6 * 60)])
    start, end = paris(2026, 3, 29, 0), paris(2026, 3, 29, 12)
    assert cal.business_seconds(start, end) == 5 * 3600


def test_dst_fall_back_window_is_an_hour_longer() -> None:
    # Sunday 2026-10-25: Paris clocks go back 03:00 → 02:00.
    cal = weekly("night", "Europe/Paris", [(6, 0, 6 * 60)])
    start, end = paris(2026, 10, 25, 0), paris(2026, 10, 25, 12)
    assert cal.business_seconds(start, end) == 7 * 3600


def test_open_hours_follow_local_time_across_dst() -> None:
    cal = office()
    # Friday 2026-03-27 09:00 Paris is 08:00 UTC; Monday 2026-03-30 09:00 Paris is 07:00 UTC.
    friday = cal.add_business(datetime(2026, 3, 27, 8, tzinfo=UTC), 1)
    assert friday == datetime(2026, 3, 27, 8, 0, 1, tzinfo=UTC)
    monday = cal.add_business(datetime(2026, 3, 27, 16, tzinfo=UTC), 1)  # after Friday's close
    assert monday == datetime(2026, 3, 30, 7, 0, 1, tzinfo=UTC)


def test_add_business_skips_closed_time() -> None:
    cal = office((date(2026, 5, 1),))
    # Thursday 16:00 + 4 business hours: 1 h Thursday, Friday a holiday, 3 h Monday → 12:00
    assert cal.add_business(paris(2026, 4, 30, 16), 4 * 3600) == paris(2026, 5, 4, 12)
    # Starting while closed counts from the next opening
    assert cal.add_business(paris(2026, 5, 2, 10), 60) == paris(2026, 5, 4, 9, 1)
    assert cal.add_business(paris(2026, 5, 4, 10), 0) == paris(2026, 5, 4, 10)


def test_never_open_stops_at_the_horizon() -> None:
    # Open only on Mondays, and every Monday of the horizon is a holiday.
    mondays = [date(2026, 1, 5) + timedelta(weeks=w) for w in range(600)]
    cal = weekly("never", "UTC", [(0, 0, 60)], mondays)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert cal.add_business(start, 1) == start + timedelta(days=3660)


def test_a_calendar_needs_open_hours() -> None:
    with pytest.raises(CalendarError, match="no open hours"):
        BusinessCalendar("empty", "UTC", ())


def test_refuses_bad_hours_zone_and_overlaps() -> None:
    with pytest.raises(CalendarError, match="start must come before the end"):
        OpenHours(0, 17 * 60, 9 * 60)
    with pytest.raises(CalendarError, match="weekday"):
        OpenHours(7, 0, 60)
    with pytest.raises(CalendarError, match="unknown time zone"):
        weekly("x", "Mars/Olympus", NINE_TO_FIVE)
    with pytest.raises(CalendarError, match="overlap"):
        weekly("x", "UTC", [(0, 60, 180), (0, 120, 240)])


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)
).map(lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(instants, st.floats(min_value=0, max_value=30 * 86400))
def test_add_then_measure_is_identity(start: datetime, seconds: float) -> None:
    cal = office((date(2026, 12, 25),))
    due = cal.add_business(start, seconds)
    assert due >= start
    assert abs(cal.business_seconds(start, due) - seconds) < 1e-3


@settings(max_examples=200, deadline=None)
@given(instants, instants, instants)
def test_business_seconds_add_up(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    cal = office()
    whole = cal.business_seconds(a, c)
    assert abs(whole - cal.business_seconds(a, b) - cal.business_seconds(b, c)) < 1e-6
    assert 0 <= whole <= (c - a).total_seconds()


def _naive_open_seconds(cal: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Minute by minute in local wall-clock time: open when the local minute falls in a
    span of its weekday and the day is no holiday (start and end on whole minutes)."""
    total = 0.0
    t = start
    while t < end:
        local = t.astimezone(cal.tz)
        minute = local.hour * 60 + local.minute
        day = local.date()
        if day not in cal.holidays and any(
            h.weekday == day.weekday() and h.start <= minute < h.end for h in cal.hours
        ):
            total += 60.0
        t += timedelta(minutes=1)
    return total


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(min_value=datetime(2026, 3, 25), max_value=datetime(2026, 11, 5)),
    st.integers(min_value=0, max_value=4 * 24 * 60),
    st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_business_seconds_match_a_minute_by_minute_count_across_dst(
    start: datetime, minutes: int, zone: str
) -> None:
    # Open 07:30-12:00 and 13:00-24:00 on weekdays, a holiday in the spring-change week.
    spans = [(d, 450, 720) for d in range(5)] + [(d, 780, 1440) for d in range(5)]
    cal = weekly("c", zone, spans, [date(2026, 3, 30)])
    a = start.replace(second=0, microsecond=0, tzinfo=UTC)
    b = a + timedelta(minutes=minutes)
    assert cal.business_seconds(a, b) == _naive_open_seconds(cal, a, b)
    windows = list(cal.windows(a, b))
    assert sum((we - ws).total_seconds() for ws, we in windows) == cal.business_seconds(a, b)
    assert all(a <= ws < we <= b for ws, we in windows)

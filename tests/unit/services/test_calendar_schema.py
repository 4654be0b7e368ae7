"""The configuration schema of calendars and service-level targets: what it takes,
what it refuses (with the field), and that it becomes the domain's values."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from postroom.domain.calendars import OpenHours
from postroom.domain.routes import TargetConfig
from postroom.services.admin.schema import (
    CalendarModel,
    Configuration,
    QueueModel,
    ValidationError,
    describe,
)

OFFICE: dict[str, Any] = {
    "name": "office",
    "time_zone": "Europe/London",
    "hours": [
        {"day": "mon", "start": "09:00", "end": "17:00"},
        {"day": "sat", "start": "10:00", "end": "24:00"},
    ],
    "holidays": ["2026-12-25"],
}
TWO_TARGETS: dict[str, Any] = {
    "name": "support",
    "service_targets": [
        {"name": "4 business hours", "percent": 80, "seconds": 14400, "calendar": "office"},
        {"name": "2 days", "percent": 95, "seconds": 172800},
    ],
    "short_abandon_s": 30,
}


def problem(model: Any, data: Any) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return describe(info.value)


def test_a_calendar_becomes_the_domains_business_calendar() -> None:
    cal = CalendarModel.model_validate({**OFFICE, "holidays": [date(2026, 12, 26), "2026-12-25"]})
    domain = cal.to_domain()
    assert domain.zone == "Europe/London"
    assert domain.hours == (OpenHours(0, 540, 1020), OpenHours(5, 600, 1440))
    assert domain.holidays == frozenset({date(2026, 12, 25), date(2026, 12, 26)})
    assert cal.holidays == ["2026-12-25", "2026-12-26"]  # TOML dates and strings, sorted


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone", "IANA"),
        ({"time_zone": "../../etc/passwd"}, "time_zone", "IANA"),
        ({"time_zone": "x" * 65}, "time_zone", "at most 64"),
        ({"hours": []}, "hours", "at least 1"),
        ({"hours": [{"day": "mon", "start": "09:00", "end": "17:00"}] * 51}, "hours", "at most 50"),
        ({"hours": [{"day": "xyz", "start": "09:00", "end": "17:00"}]}, "hours[0].day", "'mon'"),
        ({"hours": [{"day": "mon", "start": "9:00", "end": "17:00"}]}, "hours[0].start", "HH:MM"),
        ({"hours": [{"day": "mon", "start": "09:00", "end": "24:30"}]}, "hours[0].end", "HH:MM"),
        ({"hours": [{"day": "mon", "start": "17:00", "end": "09:00"}]}, "hours[0]", "before"),
        (
            {"hours": [{"day": "mon", "start": "09:00", "end": "12:00"},
                       {"day": "mon", "start": "11:00", "end": "13:00"}]},
            "",
            "overlap",
        ),
        ({"holidays": ["2026-02-30"]}, "holidays[0]", "YYYY-MM-DD"),
        ({"holidays": ["20261225"]}, "holidays[0]", "YYYY-MM-DD"),
        ({"holidays": [f"2026-01-{d:02d}" for d in range(1, 29)] * 18}, "holidays", "at most 500"),
        ({"name": "a/b"}, "name", "'/'"),
        ({"extra": 1}, "extra", "Extra inputs"),
    ],
)  # fmt: skip
def test_a_calendar_that_cannot_be_used_is_refused_naming_the_field(
    change: dict[str, Any], field: str, words: str
) -> None:
    text = problem(CalendarModel, {**OFFICE, **change})
    assert text.startswith(f"{field}: " if field else "calendar"), text
    assert words in text


def test_targets_become_the_domains_and_the_first_sets_the_service_level() -> None:
    q = QueueModel.model_validate(TWO_TARGETS)
    assert (q.service_level_percent, q.service_level_seconds) == (80.0, 14400.0)
    domain = q.to_domain()
    assert domain.targets == (
        TargetConfig("4 business hours", 80.0, 14400.0, "office"),
        TargetConfig("2 days", 95.0, 172800.0, None),
    )
    assert domain.short_abandon_s == 30.0
    assert QueueModel.from_domain(domain) == q
    assert q.calendar_names() == ["office"]


def test_an_old_queue_has_one_target_from_its_service_level_fields() -> None:
    q = QueueModel.model_validate(
        {"name": "old", "service_level_percent": 90, "service_level_seconds": 600}
    )
    assert q.service_targets is None and q.short_abandon_s == 10.0
    assert q.to_domain().targets == (TargetConfig("default", 90.0, 600.0, None),)
    assert "service_targets" not in q.model_dump(exclude_none=True)  # the export keeps it so


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"service_targets": []}, "service_targets", "at least 1"),
        ({"service_targets": [{"name": f"t{i}", "percent": 80, "seconds": 60}
                              for i in range(6)]}, "service_targets", "at most 5"),
        ({"service_targets": [{"name": "a", "percent": 80, "seconds": 60}] * 2},
         "service_targets", "two targets are named 'a'"),
        ({"service_targets": [{"name": "a", "percent": 0, "seconds": 60}]},
         "service_targets[0].percent", "greater than 0"),
        ({"service_targets": [{"name": "a", "percent": 101, "seconds": 60}]},
         "service_targets[0].percent", "less than or equal to 100"),
        ({"service_targets": [{"name": "a", "percent": 80, "seconds": 1e300}]},
         "service_targets[0].seconds", "less than or equal"),
        ({"service_targets": [{"name": "a", "percent": "80", "seconds": 60}]},
         "service_targets[0].percent", "valid number"),
        ({"service_targets": [{"name": "", "percent": 80, "seconds": 60}]},
         "service_targets[0].name", "at least 1"),
        ({"short_abandon_s": -1}, "short_abandon_s", "greater than or equal to 0"),
        ({"short_abandon_s": 3601}, "short_abandon_s", "less than or equal to 3600"),
    ],
)  # fmt: skip
def test_bad_targets_are_refused_naming_the_field(
    change: dict[str, Any], field: str, words: str
) -> None:
    text = problem(QueueModel, {**TWO_TARGETS, **change})
    assert text.startswith(f"{field}: "), text
    assert words in text


def test_a_target_naming_an_unknown_calendar_is_refused_naming_the_field() -> None:
    text = problem(Configuration, {"queues": [TWO_TARGETS]})
    assert "queue 'support': service_targets[0].calendar: calendar 'office' is not defined" in text
    twice = problem(Configuration, {"calendars": [OFFICE, OFFICE], "queues": [TWO_TARGETS]})
    assert "calendar 'office' is defined more than once" in twice
    ok = Configuration.model_validate({"calendars": [OFFICE], "queues": [TWO_TARGETS]})
    assert ok.calendars[0].name == "office"


def test_the_sample_configuration_has_a_calendar_a_second_target_uses() -> None:
    import postroom.runtime

    sample = Path(postroom.runtime.__file__).parent / "sample.toml"
    from postroom.runtime.settings import configuration_from_mapping

    config = configuration_from_mapping(tomllib.loads(sample.read_text()))
    [office] = config.calendars
    support = next(q for q in config.queues if q.name == "support")
    targets = support.to_domain().targets
    assert len(targets) == 2 and targets[1].calendar == office.name
    assert targets[0].calendar is None  # the first is the router's: as before, 24 h

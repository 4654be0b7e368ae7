"""Calendars and service-level targets in a real browser against a real `postroom
serve`: a calendar made on /admin/calendars (an unknown time zone first: the error
beside its field, the typed hours kept), then the support queue given two targets on
its page, the first counted in the calendar's business hours; no CSP violations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, Server, run_server
from tests.e2e.helpers import Page, csp_violations, expect, login, shot, watch_csp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "calendars"
    root.mkdir()
    with run_server(root, users=(("wanda", "admin", None),)) as srv:
        yield srv


def test_admin_makes_a_calendar_and_gives_a_queue_two_targets(
    page: Page, admin_server: Server
) -> None:
    console_errors = watch_csp(page)
    login(page, admin_server, "wanda")
    page.goto(admin_server.url + "/admin/calendars")
    page.get_by_role("link", name="New calendar").click()
    page.get_by_label("Name", exact=True).fill("office")
    page.get_by_label("Time zone").fill("Europe/Londn")
    page.locator("#f-hours-fri-0-end").fill("12:30")
    page.locator("#f-hours-fri-1-start").fill("13:30")
    page.locator("#f-hours-fri-1-end").fill("17:00")
    page.get_by_label("Holidays").fill("2026-12-25\n2026-12-28")
    page.get_by_role("button", name="Create calendar").click()
    expect(page.locator("#f-time_zone-error")).to_contain_text("IANA")
    expect(page.locator("#f-hours-fri-1-start")).to_have_value("13:30")
    page.get_by_label("Time zone").fill("Europe/London")
    page.get_by_role("button", name="Create calendar").click()
    expect(page.get_by_role("status")).to_contain_text("Calendar created")
    expect(page.get_by_role("heading", name="Calendar office")).to_be_visible()
    shot(page, "admin-calendars")

    page.goto(admin_server.url + "/admin/queues/support")
    page.locator("#f-service_targets-0-name").fill("4 business hours")
    page.locator("#f-service_targets-0-percent").fill("80")
    page.locator("#f-service_targets-0-seconds").fill("14400")
    page.locator("#f-service_targets-0-calendar").select_option("office")
    page.locator("#f-service_targets-1-name").fill("2 days")
    page.locator("#f-service_targets-1-percent").fill("95")
    page.locator("#f-service_targets-1-seconds").fill("172800")
    page.get_by_label("Short abandon (seconds)").fill("30")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    expect(page.locator("#f-service_targets-0-calendar")).to_have_value("office")
    targets = page.locator("#service-targets")
    targets.scroll_into_view_if_needed()
    targets.screenshot(path=str(ARTIFACTS / "admin-queue-targets.png"))

    api = admin_server.session("wanda")
    queue = api.call("GET", "/api/v1/routing/queues/support")
    assert [(t["name"], t["calendar"]) for t in queue["service_targets"]] == [
        ("4 business hours", "office"), ("2 days", None),
    ]  # fmt: skip
    assert queue["short_abandon_s"] == 30
    office = api.call("GET", "/api/v1/routing/calendars/office")
    assert office["queues"] == ["support"] and office["holidays"] == ["2026-12-25", "2026-12-28"]
    assert {"day": "fri", "start": "13:30", "end": "17:00"} in office["hours"]
    assert csp_violations(page) == []
    assert [e for e in console_errors if "status of 422" not in e] == []

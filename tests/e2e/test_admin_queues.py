"""The admin's queue pages in a real browser against a real `postroom serve`: a
skill added to the catalog, a queue created on /admin/queues (an alert timeout
too short first: the error beside its field, the typed name kept), an agent made
a member on /admin/members and given the skill; no CSP violations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, run_server
from tests.e2e.helpers import Page, csp_violations, expect, login, shot, watch_csp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "queues"
    root.mkdir()
    with run_server(root, users=(("wanda", "admin", None), ("ann", "agent", "support"))) as srv:
        yield srv


def test_admin_creates_a_queue_adds_an_agent_and_gives_a_skill(
    page: Page, admin_server: Server
) -> None:
    console_errors = watch_csp(page)
    login(page, admin_server, "wanda")
    page.goto(admin_server.url + "/admin/wrapup-codes")
    page.get_by_label("Skill", exact=True).fill("printers")
    page.get_by_label("Skill", exact=True).press("Enter")
    expect(page.locator("#skill-list")).to_contain_text("printers")

    page.goto(admin_server.url + "/admin/queues")
    page.get_by_role("link", name="New queue").click()
    page.get_by_label("Name", exact=True).fill("tier2")
    page.get_by_label("Alert timeout (seconds)").fill("3")
    page.get_by_label("Alert timeout (seconds)").press("Enter")  # submit with the keyboard
    expect(page.locator("#f-alert_timeout_s-error")).to_contain_text("7")
    expect(page.get_by_label("Alert timeout (seconds)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name", exact=True)).to_have_value("tier2")
    shot(page, "admin-queue-error")
    page.get_by_label("Alert timeout (seconds)").fill("30")
    page.get_by_role("button", name="Create queue").click()
    expect(page.get_by_role("status")).to_contain_text("Queue created")
    expect(page.get_by_role("heading", name="Queue tier2")).to_be_visible()

    page.goto(admin_server.url + "/admin/members")
    box = page.get_by_label("Ann in tier2")
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    page.get_by_role("button", name="Save memberships").click()
    expect(page.get_by_role("status")).to_contain_text("Memberships saved")
    expect(page.get_by_label("Ann in tier2")).to_be_checked()

    page.get_by_role("link", name="Ann", exact=True).click()
    page.get_by_label("printers").select_option("4")
    page.get_by_role("button", name="Save agent").click()
    expect(page.get_by_role("status")).to_contain_text("Agent saved")
    shot(page, "admin-members")
    ann = admin_server.session("wanda").call("GET", "/api/v1/agents/ann")
    assert sorted(ann["queues"]) == ["support", "tier2"] and ann["skills"] == {"printers": 4}
    assert csp_violations(page) == []
    # The refused form was answered 422 on purpose; nothing else may fail.
    assert [e for e in console_errors if "status of 422" not in e] == []

"""Running a contact center from the browser, end to end, with no restart: an
admin creates a queue (a validation error first, shown beside its field), a
skill, and a route for a new address that needs the skill; makes an agent a
member of the queue and gives them the skill; mail to the new address is then
offered to that agent in their own browser at once; the audit log shows each
change. Real `postroom serve`, SMTP and Chromium; no CSP violations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server, run_server
from tests.e2e.helpers import (
    Page,
    accept_offer,
    csp_violations,
    expect,
    go_on_queue,
    login,
    send_mail,
    shot,
    watch_csp,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "admin-flow"
    root.mkdir()
    users = (("olga", "admin", None), ("ann", "agent", "support"))
    with run_server(root, users=users) as srv:
        yield srv


def test_a_new_address_is_offered_to_the_agent_an_admin_just_set_up(
    page: Page, server: Server, browser: Any
) -> None:
    console_errors = watch_csp(page)
    # The agent is signed in and on queue before any of the configuration exists.
    agent_context = browser.new_context()
    agent = agent_context.new_page()
    agent_errors = watch_csp(agent)
    login(agent, server, "ann")
    go_on_queue(agent)

    login(page, server, "olga")
    page.goto(server.url + "/admin/wrapup-codes")
    page.get_by_label("Skill", exact=True).fill("printers")
    page.get_by_label("Skill", exact=True).press("Enter")
    expect(page.locator("#skill-list")).to_contain_text("printers")

    page.goto(server.url + "/admin/queues")
    page.get_by_role("link", name="New queue").click()
    page.get_by_label("Name", exact=True).fill("printing")
    page.get_by_label("Alert timeout (seconds)").fill("2")
    page.get_by_role("button", name="Create queue").click()
    expect(page.locator("#f-alert_timeout_s-error")).to_contain_text("7")
    expect(page.get_by_label("Name", exact=True)).to_have_value("printing")
    page.get_by_label("Alert timeout (seconds)").fill("60")
    page.get_by_role("button", name="Create queue").click()
    expect(page.get_by_role("status")).to_contain_text("Queue created")
    shot(page, "admin-queue-edit")

    page.goto(server.url + "/admin/routes")
    page.get_by_label("Address", exact=True).fill("printers@example.com")
    page.locator("#route-queue").select_option("printing")
    page.locator("#route-skills").fill("printers:3")
    page.get_by_label("Address", exact=True).press("Enter")
    expect(page.locator("#route-list")).to_contain_text("printers@example.com")

    page.goto(server.url + "/admin/members")
    page.get_by_label("Ann in printing").check()
    page.get_by_role("button", name="Save memberships").click()
    expect(page.get_by_role("status")).to_contain_text("Memberships saved")
    page.get_by_role("link", name="Ann", exact=True).click()
    page.get_by_label("printers").select_option("4")
    page.get_by_role("button", name="Save agent").click()
    expect(page.get_by_role("status")).to_contain_text("Agent saved")
    shot(page, "admin-members")

    # Mail to the address that did not exist a minute ago reaches the agent now.
    send_mail(server, "printers@example.com", make_email(
        subject="The printer eats paper", to="printers@example.com",
    ))
    cid = accept_offer(agent, "The printer eats paper")
    conv = server.session("olga").call("GET", f"/api/v1/conversations/{cid}")
    assert conv["queue"] == "printing"

    page.goto(server.url + "/admin/audit")
    actions = page.locator(".audit-action")
    for action in ("skill.create", "queue.create", "route.create"):
        expect(actions.filter(has_text=action).first).to_be_visible()
    expect(page.locator(".audit-entry", has_text="ann").first).to_be_visible()
    shot(page, "admin-audit-flow")

    assert csp_violations(page) == [] and csp_violations(agent) == []
    # The refused form was answered 422 on purpose; nothing else may fail.
    assert [e for e in console_errors if "status of 422" not in e] == []
    assert agent_errors == []
    agent_context.close()

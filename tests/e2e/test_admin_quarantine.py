"""An administrator in a real browser retries a quarantined message from
/admin/quarantine, and the audit log page shows that change. Own server, with
an admin user; no Content-Security-Policy violations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import USERS, Server, run_server
from tests.e2e.helpers import Page, csp_violations, expect, login, shot, watch_csp
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def ops_server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "ops"
    root.mkdir()
    with run_server(root, users=(*USERS, ("ada", "admin", None))) as srv:
        yield srv


def test_admin_retries_a_quarantined_message_and_the_audit_log_shows_it(
    page: Page, ops_server: Server, tmp_path: Path
) -> None:
    server = ops_server
    eml = tmp_path / "lost.eml"
    eml.write_bytes(
        make_email(to="nobody@elsewhere.example", subject="Lost parcel", headers={"X-Trace": "e2e"})
    )
    server.cli("import", str(eml))  # no route for that address: quarantined
    console_errors = watch_csp(page)
    login(page, server, "ada")
    page.goto(server.url + "/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Quarantine"
    ).click()
    expect(page.get_by_role("heading", name="Quarantine", exact=True)).to_be_visible()
    row = page.locator("table.quarantine-list tbody tr", has_text="Lost parcel")
    expect(row).to_contain_text("rules")
    message_id = row.get_attribute("data-id")
    assert message_id
    row.get_by_role("link", name=message_id, exact=True).click()
    expect(page.locator("table.header-fields")).to_contain_text("X-Trace")
    expect(page.locator(".facts")).to_contain_text("no route matches")
    shot(page, "admin-quarantine-detail")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text(f"Message {message_id} is pending again")

    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Audit log"
    ).click()
    entry = page.locator("tr.audit-entry", has_text="quarantine.retry")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("ada")
    expect(entry).to_contain_text(message_id)
    expect(entry.locator("ins").first).to_be_visible()
    shot(page, "admin-audit")
    assert csp_violations(page) == [] and console_errors == []


def test_supervisor_edits_a_canned_response_with_a_live_preview(
    page: Page, ops_server: Server
) -> None:
    server = ops_server
    console_errors = watch_csp(page)
    login(page, server, "sue")
    page.goto(server.url + "/admin/canned")
    page.get_by_role("link", name="New canned response").click()
    page.get_by_label("Folder").fill("Billing/Refunds")
    page.get_by_label("Text").fill("Dear {customer_name}, your refund is on its way. {agent_name}")
    # The preview fills in sample values as one types (htmx, with the CSRF header).
    expect(page.locator("#preview-text")).to_have_text(
        "Dear Alex Example, your refund is on its way. Sue", timeout=10_000
    )
    page.get_by_role("button", name="Save").click()
    # No name: the error is beside the Name field, and the typing is kept.
    expect(page.locator("#f-name-error")).to_contain_text("at least 1 character")
    expect(page.get_by_label("Text")).to_have_value(
        "Dear {customer_name}, your refund is on its way. {agent_name}"
    )
    page.get_by_label("Name").fill("Refund sent")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    shot(page, "admin-canned-editor")
    page.goto(server.url + "/admin/canned")
    page.get_by_role("navigation", name="Folders").get_by_role("link", name="Refunds").click()
    expect(page.locator("table.canned-list")).to_contain_text("Refund sent")
    # The form sent back with its errors is a 422 page, which Chromium logs.
    unexpected = [e for e in console_errors if "status of 422" not in e]
    assert csp_violations(page) == [] and unexpected == []

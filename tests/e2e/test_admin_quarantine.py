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

"""The routes and rules page in a real browser against a real `postroom serve`:
an admin creates a route for a new address with the keyboard (a bad address
first: the error beside the field, the typed values kept), adds a rule, and the
dry-run box beside them explains that the rule matched; then mail to the new
address over SMTP is accepted without a restart. No CSP violations."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, run_server
from tests.e2e.helpers import Page, csp_violations, expect, login, shot, watch_csp
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "routes"
    root.mkdir()
    with run_server(root, users=(("rita", "admin", None),)) as srv:
        yield srv


def test_admin_creates_a_route_and_a_rule_and_the_dry_run_explains_it(
    page: Page, admin_server: Server
) -> None:
    console_errors = watch_csp(page)
    login(page, admin_server, "rita")
    page.goto(admin_server.url + "/admin/routes")
    expect(page.get_by_role("heading", name="Routes and rules", exact=True)).to_be_visible()

    address = page.get_by_label("Address", exact=True)
    address.fill("orders at example.com")
    page.locator("#route-queue").select_option("sales")
    page.get_by_label("Name in From").fill("Orders desk")
    address.press("Enter")  # submit with the keyboard
    expect(page.locator("#route-address-error")).to_contain_text("user@domain")
    expect(page.get_by_label("Address", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name in From")).to_have_value("Orders desk")
    expect(page.locator("#route-queue")).to_have_value("sales")
    shot(page, "admin-route-error")
    page.get_by_label("Address", exact=True).fill("orders@example.com")
    page.get_by_label("Address", exact=True).press("Enter")
    expect(page.locator("#route-list")).to_contain_text("orders@example.com")

    page.get_by_label("Name", exact=True).fill("urgent orders")
    page.get_by_label("Field 1").fill("subject")
    page.get_by_label("Test 1").select_option("contains")
    page.get_by_label("Value 1").fill("urgent")
    page.locator("#rule-then-priority").fill("8")
    page.locator("#rule-then-tags").fill("urgent")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-list")).to_contain_text("urgent orders")

    mail = make_email(subject="Urgent: order 1234 missing", to="orders@example.com")
    page.get_by_label("Email (headers, an empty line, the body)").fill(mail.decode())
    page.get_by_role("button", name="Explain").click()
    answer = page.locator("#dry-run-result")
    expect(answer.locator("#dry-run-route")).to_contain_text("orders@example.com")
    expect(answer.locator("#dry-run-route")).to_contain_text("sales")
    expect(answer.locator(".rule-matched")).to_contain_text("urgent orders")
    expect(answer.locator("#dry-run-result-values")).to_contain_text("8")
    shot(page, "admin-routes-dry-run")

    # Mail to the address created a moment ago is accepted at once.
    with smtplib.SMTP("127.0.0.1", admin_server.smtp_port, timeout=10) as smtp:
        refused = smtp.sendmail("cust@example.org", ["orders@example.com"], mail)
    assert refused == {}
    assert csp_violations(page) == []
    assert [e for e in console_errors if "status of 422" not in e] == []

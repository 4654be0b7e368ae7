"""Acting on the backlog in a real browser: a supervisor bulk-moves a selection from a
queue's backlog page, connects a waiting conversation to an agent who sees it at once
in their own browser, and requeues that agent's work from the agent board."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import (
    Page,
    close_waiting,
    csp_violations,
    expect,
    login,
    send_mail,
    shot,
    watch_csp,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _mail(server: Server, subject: str) -> None:
    send_mail(
        server,
        "returns@example.com",
        make_email(sender="Rita <rita@customer.example>", to="returns@example.com", subject=subject),
        "rita@customer.example",
    )


def _close_backlog(supervisor: ApiSession) -> None:
    found = supervisor.call("GET", "/api/v1/conversations?q=Backlog&limit=50")["conversations"]
    close_waiting(supervisor, [c["id"] for c in found])


def test_bulk_move_assign_and_requeue(
    page: Page, browser: Browser, server: Server, supervisor: ApiSession
) -> None:
    console_errors = watch_csp(page)
    login(page, server, "sue")
    page.goto(server.url + "/queues")
    waiting = page.locator("#queue-table tr[data-queue=returns] [data-figure=waiting]")
    before = int(waiting.inner_text())
    for subject in ("Backlog one", "Backlog two", "Backlog three"):
        _mail(server, subject)
    expect(waiting).to_have_text(str(before + 3), timeout=15_000)  # the page is live
    waiting.locator("a").click()
    expect(page).to_have_url(server.url + "/supervisor/queues/returns")
    table = page.locator("#backlog-table")
    expect(table.locator("tr", has_text="Backlog three")).to_be_visible(timeout=10_000)

    # Bulk: tick two, move them to billing.
    for subject in ("Backlog one", "Backlog two"):
        table.locator("tr", has_text=subject).locator("input.pick").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    shot(page, "supervisor-backlog")
    bar = page.locator("#bulk")
    bar.get_by_label("Action").select_option("move")
    bar.locator('input[name="queue"]').fill("billing")
    bar.get_by_role("button", name="Apply").click()
    expect(page.locator("#bulk-result")).to_have_text("2 of 2 done", timeout=10_000)
    expect(table.locator("tr", has_text="Backlog one")).to_have_count(0, timeout=10_000)
    expect(page.locator("#backlog-table tr", has_text="Backlog three")).to_be_visible()

    # fay, off queue, has her workspace open; the supervisor connects "three" to her.
    fay_context = browser.new_context()
    fay = fay_context.new_page()
    try:
        login(fay, server, "fay")
        row = page.locator("#backlog-table tr", has_text="Backlog three")
        cid = int(row.get_attribute("data-cid") or 0)
        row.locator('select[name="agent"]').select_option("fay")
        row.locator('select[name="mode"]').select_option("connect")
        row.get_by_role("button", name="Assign").click()
        expect(fay.locator(f'#mine a[data-cid="{cid}"]')).to_be_visible(timeout=10_000)

        # The agent board shows her holding it; requeue all her work.
        page.goto(server.url + "/supervisor/agents")
        fay_row = page.locator("#agent-board tr[data-agent=fay]")
        expect(fay_row.locator("[data-figure=holding]")).to_have_text("1 / 1", timeout=10_000)
        shot(page, "supervisor-agent-board")
        fay_row.get_by_role("button", name="Requeue all work").click()
        expect(fay_row.locator("[data-figure=holding]")).to_have_text("0 / 1", timeout=10_000)
        expect(fay.locator(f'#mine a[data-cid="{cid}"]')).to_have_count(0, timeout=10_000)
    finally:
        fay_context.close()
        _close_backlog(supervisor)  # later tests on this server expect no waiting work
    assert csp_violations(page) == []
    assert console_errors == []

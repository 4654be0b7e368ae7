"""The supervisor's queue view in a real browser: live figures per queue and the
agents' routing status, updated without a reload; agents have no way in."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import Page, csp_violations, expect, login, send_mail, shot, watch_csp
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_supervisor_sees_live_queue_figures_and_agents(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    console_errors = watch_csp(page)
    login(page, server, "sue")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Queues").click()
    expect(page).to_have_url(server.url + "/queues")
    expect(page.get_by_role("heading", name="Queues", exact=True)).to_be_visible()
    rows = page.locator("#queue-table tbody tr")
    expect(rows).to_have_count(5)
    returns = page.locator("#queue-table tr[data-queue=returns]")
    # "returns" has no agents: what arrives there waits.
    waiting_before = int(returns.locator("[data-figure=waiting]").inner_text())
    expect(returns.locator("[data-figure=service_level_target]")).to_have_text("90 % within 1 h")
    expect(returns.locator("[data-figure=agents_on_queue]")).to_have_text("0")
    fay = page.locator("#agent-table tr[data-agent=fay]")
    expect(fay.locator("[data-figure=routing_status]")).to_have_text("off queue")
    expect(fay.locator("[data-figure=queues]")).to_have_text("billing")

    send_mail(
        server,
        "returns@example.com",
        make_email(
            sender="Rolf Return <rolf@customer.example>",
            to="returns@example.com",
            subject="Wrong size",
            body="The shoes are too small.\n",
        ),
        "rolf@customer.example",
    )
    # Live, without a reload: the new conversation waits in "returns"...
    expect(returns.locator("[data-figure=waiting]")).to_have_text(
        str(waiting_before + 1), timeout=10_000
    )
    expect(returns.locator("[data-figure=longest_waiting]")).to_contain_text(" s")
    # ...and an agent going on queue shows up as idle and counts for their queue.
    billing = page.locator("#queue-table tr[data-queue=billing]")
    on_billing = int(billing.locator("[data-figure=agents_on_queue]").inner_text())
    supervisor.call("PUT", "/api/v1/users/fay/presence", {"presence": "on_queue"})
    try:
        expect(fay.locator("[data-figure=routing_status]")).to_have_text("idle", timeout=10_000)
        expect(fay.locator("[data-figure=presence]")).to_have_text("on queue")
        expect(billing.locator("[data-figure=agents_on_queue]")).to_have_text(str(on_billing + 1))
        shot(page, "queues")
    finally:
        supervisor.call("PUT", "/api/v1/users/fay/presence", {"presence": "offline"})
    expect(fay.locator("[data-figure=routing_status]")).to_have_text("off queue", timeout=10_000)

    # The page shows what the queue API reports.
    api = {q["name"]: q for q in supervisor.call("GET", "/api/v1/queues")["queues"]}
    expect(returns.locator("[data-figure=waiting]")).to_have_text(str(api["returns"]["waiting"]))
    assert csp_violations(page) == []
    assert console_errors == []


def test_agents_have_no_queues_page(page: Page, server: Server) -> None:
    console_errors = watch_csp(page)
    login(page, server, "ann")
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Workspace")).to_be_visible()
    expect(nav.get_by_role("link", name="Queues")).to_have_count(0)
    response = page.goto(server.url + "/queues")
    assert response is not None and response.status == 403
    reason = page.locator("#forbidden-reason")
    expect(reason).to_contain_text("The queues page is for supervisors and administrators")
    expect(reason).to_contain_text("see_all_work permission")
    assert page.request.get(server.url + "/workspace/parts/queues").status == 403
    assert csp_violations(page) == []
    assert console_errors == [
        f"Failed to load resource: the server responded with a status of 403 (Forbidden) ({server.url}/queues)"
    ]

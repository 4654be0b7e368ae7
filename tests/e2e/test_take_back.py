"""Take back in a real browser: a parked conversation comes back to its agent
connected and stays in their list, also when they are at capacity."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import (
    OFFER_TIMEOUT_MS,
    Page,
    accept_offer,
    expect,
    go_offline,
    go_on_queue,
    login,
    send_mail,
    wrap_up,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_take_back_at_capacity_connects_it_again_and_keeps_it_in_the_list(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    login(page, server, "fay")  # capacity 1, the only agent of billing
    go_on_queue(page)
    send_mail(server, "billing@example.com", make_email(subject="Parked invoice question"))
    parked = accept_offer(page, "Parked invoice question")
    page.get_by_role("button", name="Park", exact=True).click()
    expect(page.locator("#toast")).to_contain_text("Parked")
    expect(page.locator("#conv-state")).to_have_text("parked")

    # Parked work does not count: fay takes another conversation and is at capacity.
    send_mail(
        server,
        "billing@example.com",
        make_email(subject="Second billing question", sender="bob@customer.example"),
        sender="bob@customer.example",
    )
    busy = accept_offer(page, "Second billing question")

    mine = page.locator("#mine")
    mine.locator(f'a[data-cid="{parked}"]').click()
    expect(page.locator("#conversation")).to_have_attribute("data-cid", str(parked))
    expect(page.locator("#conv-state")).to_have_text("parked")
    page.get_by_role("button", name="Take back").click()
    expect(page.locator("#toast")).to_contain_text("Taken back")
    # Connected again, with nothing to accept, and both in the Active list.
    expect(page.locator("#conv-state")).to_have_text("connected", timeout=OFFER_TIMEOUT_MS)
    expect(page.locator("#offers .offer")).to_have_count(0)
    active = mine.locator('section[aria-labelledby="mine-connected"]')
    expect(active.locator(".count")).to_have_text("2")
    expect(active.locator(f'a[data-cid="{parked}"]')).to_be_visible()
    expect(active.locator(f'a[data-cid="{busy}"]')).to_be_visible()
    for cid in (parked, busy):
        conv = supervisor.call("GET", f"/api/v1/conversations/{cid}")
        assert (conv["state"], conv["agent"]) == ("connected", "fay")

    wrap_up(page, "paid")
    mine.locator(f'a[data-cid="{busy}"]').click()
    expect(page.locator("#conversation")).to_have_attribute("data-cid", str(busy))
    wrap_up(page, "paid")
    go_offline(page)

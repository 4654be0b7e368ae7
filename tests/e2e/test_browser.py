"""The conversation browser in a real browser: a supervisor finds a conversation by a
word in its body, opens it in the thread view and sees the customer panel."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import Page, csp_violations, expect, login, send_mail, shot, watch_csp
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _wait_indexed(supervisor: ApiSession, word: str) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = supervisor.call("GET", f"/api/v1/conversations?q={word}")["conversations"]
        if found:
            return int(found[0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"{word!r} was never found")


def test_supervisor_finds_a_conversation_by_a_word_in_its_body(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    watch_csp(page)
    send_mail(
        server,
        "returns@example.com",
        make_email(
            sender="Rita Return <rita@rita-shop.example>",
            to="returns@example.com",
            subject="Parcel question",
            body="The parcel arrived with a squashed marmalade jar inside.\n",
        ),
        "rita@rita-shop.example",
    )
    cid = _wait_indexed(supervisor, "marmalade")
    login(page, server, "sue")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Conversations").click()
    expect(page).to_have_url(server.url + "/conversations")
    page.locator("#browser-q").fill("marmalade")
    page.get_by_role("button", name="Find").click()
    row = page.locator(f"#browser-table tr[data-cid='{cid}']")
    expect(row).to_be_visible()
    expect(row.locator(".snippet mark")).to_have_text("marmalade")
    expect(page.locator("#browser-table tbody tr")).to_have_count(1)
    expect(row.locator("input.pick")).to_have_count(1)  # supervisors may act on it
    shot(page, "conversation-browser")
    row.locator("a.open").click()
    expect(page).to_have_url(f"{server.url}/c/{cid}")
    expect(page.locator("#conversation")).to_contain_text("Parcel question")
    expect(page.locator("#customer .customer-address")).to_have_text("rita@rita-shop.example")
    assert csp_violations(page) == []

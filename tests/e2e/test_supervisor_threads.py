"""Split and merge in a real browser: a supervisor splits a customer's reply out of
the thread view into a new conversation, then merges it back, and each time lands
on the conversation that holds the messages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import (
    Page,
    close_waiting,
    csp_violations,
    eventually,
    expect,
    login,
    send_mail,
    shot,
    watch_csp,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUSTOMER = "Rita Split <rita@customer.example>"


def _find(supervisor: ApiSession, subject: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        got = supervisor.call("GET", "/api/v1/conversations?q=" + subject.replace(" ", "+"))
        return next(iter(got["conversations"]), None)

    return eventually(found)  # type: ignore[no-any-return]


def test_a_supervisor_splits_a_reply_out_and_merges_it_back(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    errors = watch_csp(page)
    first = make_email(
        sender=CUSTOMER, subject="Toner smudges everywhere", message_id="<split-1@customer.example>",
    )
    send_mail(server, "support@example.com", first, sender="rita@customer.example")
    cid = int(_find(supervisor, "Toner smudges")["id"])
    second = make_email(
        sender=CUSTOMER, subject="Also: my login fails", in_reply_to="<split-1@customer.example>",
        message_id="<split-2@customer.example>", body="Unrelated: I cannot log in.\n",
    )
    send_mail(server, "support@example.com", second, sender="rita@customer.example")

    def two_messages() -> list[dict[str, Any]] | None:
        msgs = supervisor.call("GET", f"/api/v1/conversations/{cid}")["messages"]
        return msgs if len(msgs) == 2 else None

    moved = next(m for m in eventually(two_messages) if m["subject"] == "Also: my login fails")

    login(page, server, "sue")
    page.goto(f"{server.url}/c/{cid}")
    section = page.locator("#rethread")
    expect(section).to_be_visible()
    expect(page.locator("#split-message option")).to_have_count(1)
    expect(page.locator("#split-message")).to_have_value(str(moved["id"]))
    shot(page, "supervisor-split")
    page.get_by_role("button", name="Split into a new conversation").click()
    expect(page.locator("#conversation")).not_to_have_attribute("data-cid", str(cid))
    new = int(page.locator("#conversation").get_attribute("data-cid") or 0)
    assert new != cid
    expect(page.locator("#conv-title")).to_have_text("Also: my login fails")
    expect(page.locator("#conv-thread .message")).to_have_count(1)
    assert [m["id"] for m in supervisor.call("GET", f"/api/v1/conversations/{new}")["messages"]] == [
        moved["id"]
    ]

    # Merge it back into the first one: the dialog takes the conversation number.
    page.get_by_role("button", name="Merge into…").click()
    expect(page.locator("#merge-dialog")).to_be_visible()
    page.get_by_label("Conversation number").fill(f"#{cid}")
    shot(page, "supervisor-merge")
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.locator("#conversation")).to_have_attribute("data-cid", str(cid))
    expect(page.locator("#conv-thread .message")).to_have_count(2)

    def closed() -> bool:
        return bool(supervisor.call("GET", f"/api/v1/conversations/{new}")["state"] == "closed")

    eventually(closed)
    close_waiting(supervisor, [cid])  # later tests on this server go on queue in support
    assert not csp_violations(page) and not errors, (csp_violations(page), errors)

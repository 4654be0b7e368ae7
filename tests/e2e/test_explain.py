"""Why did this happen, in a real browser: a supervisor opens a conversation and
reads why it went to its agent (the timeline's offer) and why its reply joined the
thread (the message's disclosure)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ApiSession, Server
from tests.e2e.helpers import Page, eventually, expect, login, send_mail
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e]


def test_supervisor_reads_why_this_agent_and_why_this_thread(
    page: Page, server: Server, supervisor: ApiSession
) -> None:
    fay = server.session("fay")  # the only agent of billing
    fay.call("PUT", "/api/v1/users/fay/presence", {"presence": "on_queue"})
    root = "<explain-root@customer.example>"
    send_mail(server, "billing@example.com", make_email(subject="Why me", message_id=root))

    def offered() -> int | None:
        found = supervisor.call("GET", "/api/v1/conversations?state=alerting")
        mine = [c for c in found["conversations"] if c["subject"] == "Why me"]
        return int(mine[0]["id"]) if mine and mine[0]["agent"] == "fay" else None

    cid = eventually(offered)
    fay.call("POST", f"/api/v1/conversations/{cid}/accept")
    send_mail(server, "billing@example.com", make_email(subject="Re: Why me", in_reply_to=root))

    def appended() -> bool:
        conv = supervisor.call("GET", f"/api/v1/conversations/{cid}")
        return len(conv["messages"]) == 2

    eventually(appended)
    try:
        login(page, server, "sue")
        page.goto(f"{server.url}/c/{cid}")
        timeline = page.locator("#timeline")
        timeline.locator("summary").first.click()
        offer = timeline.locator('li[data-kind="offer_created"]')
        expect(offer).to_contain_text("Offered to fay")
        offer.get_by_text("Why this agent").click()
        expect(offer.locator(".why-agent")).to_contain_text("only_eligible_agent")
        expect(offer.locator(".why-agent")).to_contain_text("eligible")
        reply = page.locator('.thread-reason[data-reason="in_reply_to"]')
        page.locator("details.message", has=reply).evaluate("el => { el.open = true; }")
        reply.get_by_text("Why this thread").click()
        expect(reply).to_contain_text("In-Reply-To matched message")
        expect(page.locator('.thread-reason[data-reason="no_match"]')).to_have_count(1)
    finally:
        fay.call("POST", f"/api/v1/conversations/{cid}/wrapup", {"code": "paid"})
        fay.call("PUT", "/api/v1/users/fay/presence", {"presence": "offline"})

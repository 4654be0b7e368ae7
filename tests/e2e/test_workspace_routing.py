"""The workspace against a server of its own with a queue whose offers time out
within 7 s (the shortest allowed) and whose route acknowledges mail: a missed offer and the one press
that brings the agent back on queue, and a thread that opens on the customer's
message under our acknowledgement, with the wrap-up notes shown to the next agent."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CONFIG, Server, _missing, run_server
from tests.e2e.helpers import (
    OFFER_TIMEOUT_MS,
    Page,
    accept_offer,
    csp_violations,
    eventually,
    expect,
    go_offline,
    go_on_queue,
    login,
    send_mail,
    shot,
    watch_csp,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUICK_CONFIG = CONFIG + """
[[queues]]
name = "quick"
alert_timeout_s = 7
wrapup_codes = ["answered"]

[[routes]]
address = "quick@example.com"
queue = "quick"
reply_from = "quick@example.com"
auto_ack = "Thank you, we got your mail: {{reference}}."
"""
USERS = (("hal", "agent", "quick"), ("ivy", "agent", "quick"), ("sue", "supervisor", None))


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if _missing():
        pytest.skip(_missing() or "")
    with run_server(tmp_path_factory.mktemp("postroom-quick"), QUICK_CONFIG, USERS) as srv:
        yield srv


def test_one_press_brings_a_not_responding_agent_back_on_queue(page: Page, quick: Server) -> None:
    console_errors = watch_csp(page)
    login(page, quick, "hal")
    go_on_queue(page)
    send_mail(quick, "quick@example.com", make_email(to="quick@example.com", subject="Nobody answers"))
    offer = page.locator(".offer", has_text="Nobody answers")
    expect(offer).to_be_visible(timeout=OFFER_TIMEOUT_MS)
    expect(offer).to_contain_text("New conversation: Nobody answers")
    # Hal lets it time out: still on queue, but not responding, and the button says so.
    expect(offer).to_have_count(0, timeout=OFFER_TIMEOUT_MS)
    status = page.locator("#routing-status")
    expect(status).to_have_text("not responding", timeout=10_000)
    # ... and it is no longer listed as offered to him (he cannot see it any more).
    expect(page.locator("#mine")).not_to_contain_text("Nobody answers")
    button = page.locator("#queue-toggle")
    expect(button).to_have_text("Not responding — go back on queue")
    expect(button).to_have_attribute("aria-pressed", "false")
    shot(page, "not-responding")
    button.click()  # once
    expect(button).to_have_text("On queue")
    expect(status).not_to_have_text("not responding")
    expect(status).not_to_have_text("off queue")
    # On queue for real: the waiting conversation is offered to him again.
    expect(offer).to_be_visible(timeout=OFFER_TIMEOUT_MS)
    accept_offer(page, "Nobody answers")
    expect(status).to_have_text("interacting")
    page.locator("[data-dialog=wrapup-dialog]").click()
    page.locator("#wrapup-dialog").get_by_role("button", name="Finish").click()
    expect(page.locator("#conv-state")).to_have_text("closed", timeout=10_000)
    expect(status).to_have_text("idle")
    go_offline(page)
    assert csp_violations(page) == []
    assert console_errors == []


def test_thread_opens_on_the_customers_message_and_shows_earlier_wrap_ups(
    page: Page, quick: Server
) -> None:
    console_errors = watch_csp(page)
    login(page, quick, "ivy")
    go_on_queue(page)
    first = make_email(
        sender="Kim Customer <kim@customer.example>",
        to="quick@example.com",
        subject="Where is my parcel",
        body="My parcel 77 has not arrived.\n",
        message_id="<parcel-1@customer.example>",
    )
    send_mail(quick, "quick@example.com", first, "kim@customer.example")
    accept_offer(page, "Where is my parcel")
    thread = page.locator("#conv-thread")
    # The sender role sends the acknowledgement; opened afresh, the thread shows it
    # on top, closed, and the customer's question below it, open.
    ack = thread.locator(".message.auto")

    def acknowledged() -> bool:
        page.reload()
        expect(thread.locator(".message").first).to_be_visible()
        return ack.count() == 1

    eventually(acknowledged, timeout=20)
    expect(ack).to_contain_text("auto-acknowledgement")
    expect(thread.locator(".message").first).to_have_class("message out auto")
    expect(ack).not_to_have_attribute("open", "")
    expect(ack.locator("pre.body-text")).to_be_hidden()
    question = thread.locator(".message.in")
    expect(question).to_have_attribute("open", "")
    expect(question.locator("pre.body-text")).to_be_visible()
    expect(question).to_contain_text("My parcel 77 has not arrived.")
    shot(page, "thread-auto-ack")
    page.locator("[data-dialog=wrapup-dialog]").click()
    dialog = page.locator("#wrapup-dialog")
    dialog.get_by_label("Notes").fill("Parcel 77 is at the depot; the customer collects it Monday.")
    dialog.get_by_role("button", name="Finish").click()
    expect(page.locator("#conv-state")).to_have_text("closed", timeout=10_000)
    wrapups = page.locator("#conv-wrapups")
    expect(wrapups).to_contain_text("answered")
    expect(wrapups).to_contain_text("Parcel 77 is at the depot")
    expect(wrapups).to_contain_text("Ivy")
    go_offline(page)

    # The customer writes again; Hal takes it and reads Ivy's notes above the thread.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    login(page, quick, "hal")
    go_on_queue(page)
    reply = make_email(
        sender="Kim Customer <kim@customer.example>",
        to="quick@example.com",
        subject="Re: Where is my parcel",
        body="The depot is closed on Monday.\n",
        message_id="<parcel-2@customer.example>",
        in_reply_to="<parcel-1@customer.example>",
        references="<parcel-1@customer.example>",
    )
    send_mail(quick, "quick@example.com", reply, "kim@customer.example")
    offer = page.locator(".offer", has_text="Where is my parcel")
    expect(offer).to_be_visible(timeout=OFFER_TIMEOUT_MS)
    expect(offer).to_contain_text("Customer replied in thread PR-")
    accept_offer(page, "Where is my parcel")
    expect(page.locator("#conv-wrapups")).to_contain_text("Parcel 77 is at the depot")
    expect(page.locator("#conv-wrapups")).to_contain_text("earlier conversation")
    opened = thread.locator(".message[open]")
    expect(opened).to_have_count(1)
    expect(opened).to_contain_text("The depot is closed on Monday.")
    shot(page, "thread-wrapups")
    page.locator("[data-dialog=wrapup-dialog]").click()
    page.locator("#wrapup-dialog").get_by_role("button", name="Finish").click()
    expect(page.locator("#conv-state")).to_have_text("closed", timeout=10_000)
    go_offline(page)
    assert csp_violations(page) == []
    assert console_errors == []

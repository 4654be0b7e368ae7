"""Steps the browser tests share: signing in, going on queue, taking an offer,
wrapping up, sending mail to the test server, screenshots and a watch on the
page's Content-Security-Policy."""

from __future__ import annotations

import functools
import re
import smtplib
from typing import Any

from tests.e2e.conftest import ARTIFACTS, PASSWORD, Server
from tests.waiting import eventually as _eventually

# The test modules import Page and expect from here, so the fallback lives once.
try:
    from playwright.sync_api import Page as Page
    from playwright.sync_api import expect as expect
except ImportError:  # the conftest skips (or fails in CI) before these run
    Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

OFFER_TIMEOUT_MS = 20_000

# Runs before the page's own scripts in every document (init scripts are not
# subject to the page's CSP) and records each violation the browser reports.
CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "") + " " + (e.sample || "") +
    " at " + (e.sourceFile || "?") + ":" + e.lineNumber + ":" + e.columnNumber);
});
"""


def watch_csp(page: Page) -> list[str]:
    """Record CSP violations (see csp_violations) and console errors (returned list)."""
    errors: list[str] = []
    page.add_init_script(CSP_WATCH)

    def console(m: Any) -> None:
        url = m.location.get("url", "")
        if m.type == "error":  # a missing /favicon.ico counts too: the app serves one
            errors.append(f"{m.text} ({url})")

    page.on("console", console)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return errors


def csp_violations(page: Page) -> list[str]:
    return list(page.evaluate("() => window.__csp || []"))


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


eventually = functools.partial(_eventually, interval=0.2)


def send_mail(server: Server, to: str, raw: bytes, sender: str = "alice@customer.example") -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.sendmail(sender, [to], raw)


def login(page: Page, server: Server, user: str) -> None:
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(server.url + "/")
    expect(page.locator("body[data-stream=open]")).to_have_count(1, timeout=10_000)


def go_on_queue(page: Page) -> None:
    page.locator("#queue-toggle").click()
    expect(page.locator("#queue-toggle")).to_have_text("On queue")
    expect(page.locator("#routing-status")).to_have_text("idle")


def accept_offer(page: Page, subject: str) -> int:
    offer = page.locator(".offer", has_text=subject)
    expect(offer).to_be_visible(timeout=OFFER_TIMEOUT_MS)
    expect(offer.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d left$"))
    cid = int(offer.get_attribute("data-cid") or 0)
    offer.get_by_role("button", name="Accept").click()
    expect(page.locator("#conversation")).to_have_attribute("data-cid", str(cid))
    expect(page.locator("#conv-state")).to_have_text("connected")
    return cid


def wrap_up(page: Page, code: str) -> None:
    page.keyboard.press("Alt+w")
    dialog = page.locator("#wrapup-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Wrap-up code").select_option(code)
    dialog.get_by_label("Notes").fill("done in the browser test")
    dialog.get_by_role("button", name="Finish").click()
    # With optional wrap-up the state turns "closed" when the interaction ends, which
    # the page can show before the wrap-up request (the code) has been answered.
    expect(page.locator("#toast")).to_contain_text("Wrapped up", timeout=10_000)
    expect(page.locator("#conv-state")).to_have_text("closed", timeout=10_000)


def go_offline(page: Page) -> None:
    page.get_by_label("Presence").select_option("offline")
    expect(page.locator("#routing-status")).to_have_text("off queue")


def close_waiting(supervisor: Any, ids: list[int]) -> None:
    """Close (as duplicates) those of `ids` that still wait: the browser tests share
    one server, and work left in a queue would be offered to the next test's agent."""
    waiting = [
        i
        for i in ids
        if supervisor.call("GET", f"/api/v1/conversations/{i}")["state"] in ("queued", "alerting")
    ]
    if waiting:
        body = {"ids": waiting, "action": "close", "reason": "duplicate"}
        supervisor.call("POST", "/api/v1/conversations/bulk", body)

"""The admin's webhooks page in a real browser against a real `postroom serve`:
create a webhook with the keyboard (a bad URL first: the error beside the field,
the typed values kept), see the secret once, send a test delivery to a loopback
receiver and find it delivered with its status code; no CSP violations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from postroom.outbound.webhooks import verify
from tests.e2e.conftest import Server, free_port, run_server
from tests.e2e.helpers import Page, csp_violations, eventually, expect, login, shot, watch_csp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    hits: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            hits.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/hooks", hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "webhooks"
    root.mkdir()
    with run_server(root, users=(("wanda", "admin", None),)) as srv:
        yield srv


def test_admin_creates_a_webhook_and_sees_a_test_delivery_arrive(
    page: Page,
    admin_server: Server,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, hits = receiver
    console_errors = watch_csp(page)
    login(page, admin_server, "wanda")
    page.goto(admin_server.url + "/admin/webhooks")
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    page.get_by_label("Name").fill("CRM")
    page.get_by_label("URL").fill("ftp://crm.example/")
    page.get_by_label("Event types").fill("offer_created, conversation_closed")
    page.get_by_label("URL").press("Enter")  # submit with the keyboard
    expect(page.locator("#f-url-error")).to_contain_text("https:// or http://")
    expect(page.get_by_label("URL")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name")).to_have_value("CRM")
    expect(page.get_by_label("Event types")).to_have_value("offer_created, conversation_closed")
    page.get_by_label("URL").fill(url)
    page.get_by_label("URL").press("Enter")
    secret = page.locator("#webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    shot(page, "admin-webhook-created")
    page.get_by_role("button", name="Send a test delivery").click()
    expect(page.get_by_role("status").filter(has_text="test delivery")).to_be_visible()
    eventually(lambda: hits)
    headers, body = hits[0]
    t = int(headers["postroom-signature"].split(",")[0].removeprefix("t="))
    assert verify(secret, headers["postroom-signature"], body, now=t)
    assert headers["postroom-event"] == "ping"

    def delivered() -> bool:
        page.reload()
        return "delivered" in page.locator("#webhook-deliveries").inner_text()

    eventually(delivered)
    row = page.locator("#webhook-deliveries tbody tr").first
    expect(row).to_contain_text("204")
    expect(page.locator("#webhook-secret")).to_have_count(0)  # never shown again
    expect(row.get_by_role("button", name="Redeliver")).to_be_visible()
    shot(page, "admin-webhook-deliveries")
    assert csp_violations(page) == []
    # The refused form was answered 422 on purpose; nothing else may fail.
    assert [e for e in console_errors if "status of 422" not in e] == []

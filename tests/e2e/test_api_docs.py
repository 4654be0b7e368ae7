"""The API page (/api/v1/docs) in a real browser without internet access:
Swagger UI comes from Postroom's own files, runs under the page's CSP and
lists the operations; and every page has a favicon."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.helpers import Page, csp_violations, expect, shot, watch_csp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _offline(page: Page, server: Server) -> list[str]:
    """Refuse every request that leaves the server (as without internet); returns them."""
    elsewhere: list[str] = []

    def handle(route: Any) -> None:
        url = route.request.url
        if url.startswith(server.url) or url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", handle)
    return elsewhere


def test_api_docs_render_offline_from_our_own_files(page: Page, server: Server) -> None:
    console_errors = watch_csp(page)
    elsewhere = _offline(page, server)
    response = page.goto(server.url + "/api/v1/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Postroom", timeout=15_000)
    # The operations, grouped by tag: "conversations" and its endpoints.
    tag = page.locator(".opblock-tag", has_text="conversations").first
    expect(tag).to_be_visible()
    expect(page.locator(".opblock-summary-path[data-path='/api/v1/conversations/{conversation_id}']").first).to_be_attached()
    page.locator(".opblock-summary-path", has_text="/api/v1/auth/login").first.click()
    expect(page.get_by_text("Try it out").first).to_be_visible()
    shot(page, "api-docs")
    assert elsewhere == []
    assert csp_violations(page) == []
    assert console_errors == []


def test_every_page_has_a_favicon(page: Page, server: Server) -> None:
    response = page.goto(server.url + "/favicon.ico")
    assert response is not None and response.status == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file
    page.goto(server.url + "/login")
    expect(page.locator("link[rel=icon]")).to_have_attribute("href", "/favicon.ico")
    loaded = page.evaluate(
        "() => fetch(document.querySelector('link[rel=icon]').href).then(r => r.status)"
    )
    assert loaded == 200

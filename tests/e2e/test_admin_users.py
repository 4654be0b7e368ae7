"""Users and tokens in a real browser: an admin sees a validation error beside
its field with the typed values kept, creates an API token that is shown once
and works, and revokes it."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import PASSWORD, Server
from tests.e2e.helpers import Page, csp_violations, expect, login, shot, watch_csp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN = "ada-users"


def _me(server: Server, token: str) -> int:
    req = urllib.request.Request(
        server.url + "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return int(res.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_admin_creates_a_token_sees_it_once_and_revokes_it(page: Page, server: Server) -> None:
    server.cli("user", "add", ADMIN, "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    console_errors = watch_csp(page)
    login(page, server, ADMIN)
    page.goto(server.url + "/admin/users")
    expect(page.get_by_role("heading", name="Users and tokens")).to_be_visible()
    expect(page.locator("#users tr[data-user=sue]")).to_contain_text("supervisor")

    # A taken sign-in name: the error sits beside its field, what was typed stays.
    add_user = page.locator("#add-user")
    add_user.get_by_label("Sign-in name").fill("ann")
    add_user.get_by_label("Full name").fill("Another Ann")
    add_user.get_by_role("button", name="Add user").click()
    field = page.locator("#add-user .field.invalid")
    expect(field).to_have_count(1)
    expect(field.locator("#f-id-error")).to_contain_text("already a user 'ann'")
    expect(page.locator("#add-user").get_by_label("Sign-in name")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(page.locator("#add-user").get_by_label("Full name")).to_have_value("Another Ann")

    # A token: shown once, it works; after a reload it is gone from the page.
    add_token = page.locator("#add-token")
    add_token.get_by_label("Token name").fill("e2e-script")
    add_token.get_by_label("Expires after (days)").fill("7")
    add_token.get_by_role("button", name="Create token").click()
    secret = page.locator("#secret")
    expect(secret).to_contain_text("prt_")
    token = secret.inner_text().strip()
    assert _me(server, token) == 200
    shot(page, "admin-users-token")
    page.goto(server.url + "/admin/users")
    expect(page.locator("#secret")).to_have_count(0)
    assert token not in page.content()
    row = page.locator("#tokens tr", has_text="e2e-script")
    expect(row).to_contain_text("active")

    row.get_by_role("button", name=f"Revoke token e2e-script of {ADMIN}").click()
    expect(page.locator("#tokens tr", has_text="e2e-script")).to_contain_text("revoked")
    assert _me(server, token) == 401
    assert csp_violations(page) == []
    # The refused form answered 422 (the browser logs that status); nothing else.
    assert [e for e in console_errors if "status of 422" not in e] == []

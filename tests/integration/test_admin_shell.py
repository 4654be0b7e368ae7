"""The admin home page: who may open it, and the admin links each role sees.
SQLite and PostgreSQL."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture


def admin_links(html: str) -> list[str]:
    m = re.search(r'<nav class="admin-nav".*?</nav>', html, re.S)
    assert m, "no admin navigation"
    return re.findall(r'href="(/admin/[^"]+)"', m.group(0))


def test_admins_see_every_area_and_supervisors_only_what_they_may_use(api: Api) -> None:
    r = api.client("adam").get("/admin")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "/admin/audit" in admin_links(r.text)
    assert 'href="/admin"' in r.text  # the header's link
    sue = admin_links(api.client("sue").get("/admin").text)
    assert "/admin/queues" in sue and "/admin/canned" in sue
    assert "/admin/users" not in sue and "/admin/audit" not in sue


def test_agents_are_told_which_role_the_admin_pages_need(api: Api) -> None:
    r = api.client("ann").get("/admin")
    assert r.status_code == 403
    assert "view_config permission" in r.text and "supervisor or admin" in r.text
    assert 'href="/admin"' not in api.client("ann").get("/").text


def test_signed_out_visitors_go_to_the_login(api: Api) -> None:
    r = TestClient(api.app).get("/admin", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"

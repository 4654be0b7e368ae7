"""The /admin/users page: the user list with role and state, the add-user form
that keeps typed values and shows each error beside its field, user editing,
disable/enable and password reset, and tokens shown once and revoked."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient

from postroom.services import users as user_svc
from postroom.store.schema import api_tokens
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _error_of(page: str, field: str, prefix: str = "f-") -> str:
    found = re.search(
        rf'<span class="error" id="{prefix}{field}-error" role="alert">([^<]*)</span>', page
    )
    assert found, f"no error beside {field}"
    return found.group(1)


def test_lists_users_with_role_and_state(api: Api) -> None:
    user_svc.set_disabled(api.db, api.comps.clock, "bob", True)
    r = api.client("adam").get("/admin/users")
    assert r.status_code == 200
    row = re.search(r'<tr data-user="bob">(.*?)</tr>', r.text, re.S)
    assert row and "agent" in row.group(1) and "disabled" in row.group(1)
    assert 'aria-current="page"' in r.text and "Users and tokens" in r.text
    assert "<script>" not in r.text and "style=" not in r.text


def test_add_user_errors_sit_beside_their_field_and_keep_typed_values(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/users").text)
    r = adam.post("/admin/users", data={"csrf_token": csrf, "id": "ann", "name": "Another Ann",
                                        "email": "ann2@example.com", "role": "supervisor"})
    assert r.status_code == 422
    assert "already a user &#39;ann&#39;" in _error_of(r.text, "id")
    assert 'value="Another Ann"' in r.text and 'value="ann2@example.com"' in r.text
    assert '<option value="supervisor" selected>' in r.text
    assert 'aria-describedby="f-id-error"' in r.text
    r = adam.post("/admin/users", data={"csrf_token": csrf, "id": "eve", "email": "nope"})
    assert r.status_code == 422 and "name@example.com" in _error_of(r.text, "email")


def test_add_user_shows_the_generated_password_once(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/users").text)
    r = adam.post("/admin/users", data={"csrf_token": csrf, "id": "eve", "role": "agent"})
    assert r.status_code == 200 and "User eve added." in r.text
    password = re.search(r'<output id="secret" class="secret">([^<]+)</output>', r.text)
    assert password
    login = TestClient(api.app).post(
        "/api/v1/auth/login", json={"user": "eve", "password": password.group(1)}
    )
    assert login.status_code == 200
    assert password.group(1) not in adam.get("/admin/users").text


def test_edit_disable_enable_and_reset(api: Api) -> None:
    adam = api.client("adam")
    page = adam.get("/admin/users/bob")
    assert page.status_code == 200
    csrf = _csrf(page.text)
    r = adam.post("/admin/users/bob", data={"csrf_token": csrf, "action": "save", "name": "Robert",
                                            "email": "bad", "role": "agent"})
    assert r.status_code == 422 and _error_of(r.text, "email") and 'value="Robert"' in r.text
    r = adam.post("/admin/users/bob", data={"csrf_token": csrf, "action": "save", "name": "Robert",
                                            "email": "", "role": "supervisor"})
    assert r.status_code == 200 and user_svc.get_user(api.db, "bob").role == "supervisor"
    r = adam.post("/admin/users/bob", data={"csrf_token": csrf, "action": "disable"})
    assert r.status_code == 200 and user_svc.get_user(api.db, "bob").disabled
    r = adam.post("/admin/users/bob", data={"csrf_token": csrf, "action": "enable"})
    assert not user_svc.get_user(api.db, "bob").disabled
    r = adam.post("/admin/users/bob", data={"csrf_token": csrf, "action": "password", "password": "x"})
    assert r.status_code == 422 and "at least 8" in _error_of(r.text, "password")
    r = adam.post("/admin/users/bob", data={"csrf_token": csrf, "action": "password"})
    assert r.status_code == 200 and '<output id="secret"' in r.text
    r = adam.post("/admin/users/adam", data={"csrf_token": csrf, "action": "disable"})
    assert r.status_code == 422 and "last enabled administrator" in r.text


def test_tokens_created_once_and_revoked_on_the_page(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/users").text)
    r = adam.post("/admin/users/tokens", data={"csrf_token": csrf, "name": "nightly", "user": "sue",
                                               "role": "agent", "expires_in_days": "10"})
    assert r.status_code == 200, r.text
    token = re.search(r'<output id="secret" class="secret">(prt_[^<]+)</output>', r.text)
    assert token
    assert TestClient(api.app, headers={"Authorization": f"Bearer {token.group(1)}"}).get(
        "/api/v1/users/me").json()["role"] == "agent"
    listing = adam.get("/admin/users").text
    assert token.group(1) not in listing and "nightly" in listing
    with api.db.connect() as conn:
        tid = conn.execute(sa.select(api_tokens.c.id).where(api_tokens.c.name == "nightly")).scalar()
    r = adam.post(f"/admin/users/tokens/{tid}/revoke", data={"csrf_token": csrf},
                  follow_redirects=False)
    assert r.status_code == 303
    assert user_svc.get_token(api.db, int(tid))["revoked_at"] is not None
    r = adam.post("/admin/users/tokens", data={"csrf_token": csrf, "name": "x", "user": "ann",
                                               "role": "admin", "expires_in_days": "5"})
    assert r.status_code == 422 and "at most their role" in _error_of(r.text, "role", "t-")
    assert 'value="5"' in r.text


def test_the_page_is_for_admins(api: Api) -> None:
    r = api.client("sue").get("/admin/users")
    assert r.status_code == 403 and "manage_users" in r.text
    r = TestClient(api.app).get("/admin/users", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_a_form_post_with_origin_null_counts_as_same_site_only_when_the_browser_says_so(
    api: Api,
) -> None:
    # Our pages send Referrer-Policy: no-referrer, so a browser's form post says
    # `Origin: null`; its Sec-Fetch-Site tells same-site from cross-site.
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/users").text)
    form = {"csrf_token": csrf, "id": "oscar"}
    r = adam.post("/admin/users", data=form,
                  headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and "another site" in r.text
    r = adam.post("/admin/users", data=form, headers={"Origin": "null"})
    assert r.status_code == 403
    r = adam.post("/admin/users", data=form,
                  headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200 and "User oscar added." in r.text

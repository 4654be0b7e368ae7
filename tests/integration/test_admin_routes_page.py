"""The /admin/routes page: routes and rules in order with move up/down and
enable/disable, the route and rule forms that keep typed values and show each
error beside its field (condition rows added and removed without saving), the
IMAP password shown only as "set", and the dry-run box (htmx fragment and plain
form post); supervisors read, only admins change."""

from __future__ import annotations

import re

import sqlalchemy as sa

from postroom.services import configuration
from postroom.store.schema import messages
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api
from tests.mailfactory import make_email

api = fx.api  # the shared fixture


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _error_of(page: str, field: str, prefix: str) -> str:
    fid = prefix + field.replace(".", "-")
    found = re.search(rf'<span class="error" id="{fid}-error" role="alert">([^<]*)</span>', page)
    assert found, f"no error beside {field}"
    return found.group(1)


def _value_of(page: str, field: str, prefix: str) -> str:
    fid = prefix + field.replace(".", "-")
    found = re.search(rf'id="{fid}" name="{re.escape(field)}" value="([^"]*)"', page)
    assert found, f"no field {field}"
    return found.group(1)


ROUTE_FORM = {
    "address": "sales@example.com",
    "queue": "support",
    "priority": "3",
    "skills": "english:2",
    "language": "",
    "reply_from": "",
    "reply_from_name": "Sales",
    "auto_ack": "",
    "preferred_agents": "",
    "preferred_window_s": "300",
    "deadline_s": "",
    "imap.host": "",
    "imap.user": "",
}


def test_page_lists_routes_and_rules_in_order_without_inline_script(api: Api) -> None:
    r = api.client("adam").get("/admin/routes")
    assert r.status_code == 200
    assert "support@example.com" in r.text and "*@billing.example.com" in r.text
    assert r.text.index("vip customers") < r.text.index("drop spam")
    assert 'aria-current="page"' in r.text and 'id="dry-run-form"' in r.text
    assert "<script>" not in r.text and "style=" not in r.text
    assert 'aria-label="Move rule drop spam up"' in r.text


def test_route_form_errors_beside_fields_keep_values_then_saves(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/routes").text)
    bad = {**ROUTE_FORM, "csrf_token": csrf, "address": "not-an-address", "priority": "high"}
    r = adam.post("/admin/routes", data=bad)
    assert r.status_code == 422
    assert "user@domain" in _error_of(r.text, "address", "route-")
    assert _error_of(r.text, "priority", "route-")
    assert _value_of(r.text, "address", "route-") == "not-an-address"
    assert _value_of(r.text, "reply_from_name", "route-") == "Sales"
    r = adam.post("/admin/routes", data={**bad, "address": "sales@example.com", "priority": "3",
                                         "skills": "english:"})
    assert r.status_code == 422 and "name:level" in _error_of(r.text, "skills", "route-")
    r = adam.post("/admin/routes", data={**ROUTE_FORM, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    with api.db.connect() as conn:
        route = next(x for x in configuration.load(conn).routes if x.address == "sales@example.com")
    assert route.priority == 3 and route.skills == (("english", 2.0),)
    assert route.reply_from_name == "Sales"
    assert "sales@example.com" in adam.get("/admin/routes").text


def test_imap_password_is_never_shown_and_kept_when_left_empty(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/routes").text)
    form = {**ROUTE_FORM, "csrf_token": csrf, "imap.host": "imap.example.com",
            "imap.user": "sales", "imap.password": "", "imap.port": "993", "imap.tls": "ssl",
            "imap.folder": "INBOX", "imap.after_import": "seen", "imap.poll_interval_s": "60"}
    r = adam.post("/admin/routes", data=form)
    assert r.status_code == 422 and "password" in _error_of(r.text, "imap.password", "route-")
    r = adam.post("/admin/routes", data={**form, "imap.password": "pw-123456"}, follow_redirects=False)
    assert r.status_code == 303
    with api.db.connect() as conn:
        rid = conn.execute(sa.text("select id from routes where address = 'sales@example.com'")).scalar_one()
    page = adam.get(f"/admin/routes/{rid}").text
    assert "pw-123456" not in page and "set — leave empty to keep" in page
    r = adam.post(f"/admin/routes/{rid}", data={**form, "imap.host": "imap2.example.com"},
                  follow_redirects=False)
    assert r.status_code == 303
    with api.db.connect() as conn:
        route = next(x for x in configuration.load(conn).routes if x.address == "sales@example.com")
    assert route.imap is not None and route.imap.password == "pw-123456"
    assert route.imap.host == "imap2.example.com"


def test_rule_form_adds_and_removes_rows_then_saves_and_toggles_and_moves(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/routes").text)
    form = {"csrf_token": csrf, "name": "refunds", "match": "all", "enabled": "true",
            "when.0.field": "subject", "when.0.op": "contains", "when.0.value": "refund",
            "then.priority": "4", "then.tags": "money, refund"}
    r = adam.post("/admin/rules", data={**form, "add_condition": "1"})
    assert r.status_code == 200 and 'name="when.1.field"' in r.text
    assert _value_of(r.text, "name", "rule-") == "refunds"
    r = adam.post("/admin/rules", data={**form, "when.1.field": "body", "when.1.op": "contains",
                                        "when.1.value": "x", "remove_condition": "1"})
    assert 'name="when.1.field"' not in r.text and 'name="when.0.field"' in r.text
    r = adam.post("/admin/rules", data={**form, "when.0.op": "regex", "when.0.value": "(",
                                        "then.queue": "", "save": "1"})
    assert r.status_code == 422 and "regular expression" in _error_of(r.text, "when.0.value", "rule-")
    r = adam.post("/admin/rules", data={**form, "save": "1"}, follow_redirects=False)
    assert r.status_code == 303
    with api.db.connect() as conn:
        names = [x.name for x in configuration.load(conn).rules]
        rid = conn.execute(sa.text("select id from rules where name = 'refunds'")).scalar_one()
    assert names[-1] == "refunds"
    r = adam.post(f"/admin/rules/{rid}/move", data={"csrf_token": csrf, "direction": "up"},
                  follow_redirects=False)
    assert r.status_code == 303
    with api.db.connect() as conn:
        assert [x.name for x in configuration.load(conn).rules][-2] == "refunds"
    adam.post(f"/admin/rules/{rid}/enabled", data={"csrf_token": csrf, "enabled": "false"})
    with api.db.connect() as conn:
        assert "refunds" not in [x.name for x in configuration.load(conn).rules]
    page = adam.get("/admin/routes").text
    assert re.search(r'aria-pressed="false" aria-label="Rule refunds enabled"', page)
    edit = adam.get(f"/admin/rules/{rid}").text
    assert _value_of(edit, "then.tags", "rule-") == "money, refund"


def test_dry_run_box_fragment_and_plain_post(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/routes").text)
    raw = make_email(subject="win at the casino", to="support@example.com").decode()
    with api.db.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
    r = adam.post("/admin/dry-run", data={"raw": raw, "envelope_to": ""},
                  headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert "drop spam</strong>:\n      matched" in r.text or re.search(r"drop spam</strong>:\s*matched", r.text)
    assert "spam subject" in r.text and "Nothing was stored" in r.text
    r = adam.post("/admin/dry-run", data={"csrf_token": csrf, "raw": raw, "envelope_to": ""})
    assert r.status_code == 200 and "<html" in r.text and "spam subject" in r.text
    r = adam.post("/admin/dry-run", data={"raw": "", "envelope_to": ""}, headers={"HX-Request": "true"})
    assert "Paste an email" in r.text
    with api.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == before


def test_supervisor_reads_without_forms_and_agent_is_refused(api: Api) -> None:
    page = api.client("sue").get("/admin/routes")
    assert page.status_code == 200 and 'id="route-form"' not in page.text
    assert 'id="dry-run-form"' in page.text
    csrf = _csrf(page.text)
    r = api.client("sue").post("/admin/routes", data={**ROUTE_FORM, "csrf_token": csrf})
    assert r.status_code == 403
    assert api.client("ann").get("/admin/routes").status_code == 403


def test_hostile_form_posts_are_never_a_500(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/routes").text)
    junk = ["\x00", "x" * 100_000, "-1", "1e309", "9" * 400, "*@", "header:\x00", "(" * 5000]
    for value in junk:
        for path, fields in (
            ("/admin/routes", ("address", "queue", "priority", "skills", "imap.host", "imap.port",
                               "preferred_window_s", "deadline_s")),
            ("/admin/routes/1", ("address", "skills", "imap.user", "imap.password")),
            ("/admin/rules", ("name", "match", "when.0.field", "when.0.op", "when.0.value",
                              "then.priority", "then.skills", "then.queue", "remove_condition")),
            ("/admin/rules/1/move", ("direction",)),
            ("/admin/rules/1/enabled", ("enabled",)),
            ("/admin/dry-run", ("raw", "envelope_to")),
        ):
            for field in fields:
                data = {**ROUTE_FORM, "csrf_token": csrf, "when.0.field": "subject", field: value}
                r = adam.post(path, data=data, follow_redirects=False)
                assert r.status_code < 500, (path, field, value[:20], r.text[:300])

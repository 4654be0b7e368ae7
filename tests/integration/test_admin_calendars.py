"""Business-hours calendars and service-level targets through the admin API and pages
(web/admin/calendars.py, queues.py over services/admin/calendars.py): create, replace
and delete audited and announced, hostile input as 422 naming the field, a calendar in
use not deleted (409 naming the queues), the router taking a calendar's hours for its
deadlines, the pages, and `config export|apply` round-tripping calendars and targets."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from postroom.services import configuration
from postroom.services.admin import audit, config_file
from postroom.services.admin.audit import Actor
from postroom.services.admin.schema import Configuration
from postroom.store.schema import calendars, routing_inbox
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api
from tests.waiting import eventually

api = fx.api  # the shared fixture

C = "/api/v1/routing/calendars"
Q = "/api/v1/routing/queues"
OFFICE: dict[str, Any] = {
    "name": "office",
    "time_zone": "Europe/London",
    "hours": [{"day": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")],
    "holidays": ["2026-12-25"],
}
TARGETS = [
    {"name": "4 business hours", "percent": 80, "seconds": 14400, "calendar": "office"},
    {"name": "2 days", "percent": 95, "seconds": 172800},
]


def _audit(api: Api, **filters: Any) -> list[dict[str, Any]]:
    with api.db.connect() as conn:
        return audit.entries(conn, **filters)


def _versions(api: Api) -> int:
    with api.db.connect() as conn:
        return int(conn.execute(
            sa.select(sa.func.count()).where(routing_inbox.c.kind == "config_changed")
        ).scalar_one())  # fmt: skip


def _support_with_targets(api: Api) -> dict[str, Any]:
    adam = api.client("adam")
    queue = adam.get(f"{Q}/support").json()
    r = adam.put(f"{Q}/support", json=queue | {"service_targets": TARGETS, "short_abandon_s": 30})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_calendars_are_created_replaced_and_deleted_audited_and_announced(api: Api) -> None:
    adam = api.client("adam")
    assert adam.get(C).json() == {"calendars": []}
    before = _versions(api)
    r = adam.put(f"{C}/office", json=OFFICE)
    assert r.status_code == 201, r.text
    assert r.json()["time_zone"] == "Europe/London"
    assert adam.put(f"{C}/office", json=OFFICE).status_code == 200  # the same: nothing moves
    changed = OFFICE | {"holidays": ["2026-12-26", "2026-12-25"]}
    r = adam.put(f"{C}/office", json=changed)
    assert r.status_code == 200 and r.json()["holidays"] == ["2026-12-25", "2026-12-26"]
    assert _versions(api) == before + 2
    (created,) = _audit(api, action="calendar.create", target_id="office")
    (updated,) = _audit(api, action="calendar.update", target_id="office")
    assert created["actor"] == "adam" and created["after"]["hours"][0]["day"] == "mon"
    assert updated["before"]["holidays"] == ["2026-12-25"]
    assert api.comps.live.current().calendar("office") is not None  # the snapshot holds it
    listed = adam.get(C).json()["calendars"]
    assert [(c["name"], c["queues"]) for c in listed] == [("office", [])]
    assert adam.delete(f"{C}/office").status_code == 200
    assert adam.get(f"{C}/office").status_code == 404
    (deleted,) = _audit(api, action="calendar.delete", target_id="office")
    assert deleted["before"]["name"] == "office"


def test_hostile_calendars_are_refused_naming_the_field(api: Api) -> None:
    adam = api.client("adam")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"time_zone": "Nowhere/Atlantis"}, "time_zone"),
        ({"time_zone": "../../../etc/passwd"}, "time_zone"),
        ({"time_zone": "x" * 10_000}, "time_zone"),
        ({"time_zone": 5}, "time_zone"),
        ({"hours": []}, "hours"),
        ({"hours": [{"day": "mon", "start": "09:00", "end": "17:00"}] * 51}, "hours"),
        ({"hours": [{"day": "funday", "start": "09:00", "end": "17:00"}]}, "hours.0.day"),
        ({"hours": [{"day": "mon", "start": "99:99", "end": "17:00"}]}, "hours.0.start"),
        ({"hours": [{"day": "mon", "start": "09:00", "end": "x" * 100_000}]}, "hours.0.end"),
        ({"hours": [{"day": "mon", "start": "17:00", "end": "09:00"}]}, "hours.0"),
        ({"hours": [{"day": "mon", "start": "09:00", "end": "12:00"},
                    {"day": "mon", "start": "10:00", "end": "13:00"}]}, "overlap"),
        ({"holidays": ["9999-99-99"]}, "holidays.0"),
        ({"holidays": [["2026-12-25"]]}, "holidays.0"),
        ({"holidays": ["2026-12-25"] * 501}, "holidays"),
        ({"name": "other"}, "name"),
        ({"extra": True}, "extra"),
    ]  # fmt: skip
    for change, field in cases:
        r = adam.put(f"{C}/office", json=OFFICE | change)
        assert r.status_code == 422, (change, r.text)
        error = r.json()["error"]
        assert field in error["message"] or error.get("field") == field, (field, error)
    long_name = "n" * 201
    assert adam.put(f"{C}/{long_name}", json=OFFICE | {"name": long_name}).status_code == 422
    assert adam.get(C).json() == {"calendars": []}  # nothing was stored


def test_a_queue_target_needs_a_known_calendar_and_a_used_calendar_is_not_deleted(
    api: Api,
) -> None:
    adam = api.client("adam")
    queue = adam.get(f"{Q}/support").json()
    r = adam.put(f"{Q}/support", json=queue | {"service_targets": TARGETS})
    assert r.status_code == 422 and r.json()["error"]["field"] == "service_targets.0.calendar"
    assert "office" in r.json()["error"]["message"]
    bad = [TARGETS[0] | {"calendar": None}] * 2
    r = adam.put(f"{Q}/support", json=queue | {"service_targets": bad})
    assert r.status_code == 422 and "two targets" in r.json()["error"]["message"]
    r = adam.put(f"{Q}/support", json=queue | {"service_targets": TARGETS[:1] * 0})
    assert r.status_code == 422
    r = adam.put(f"{Q}/support", json=queue | {"short_abandon_s": 1e12})
    assert r.status_code == 422 and "short_abandon_s" in r.json()["error"]["message"]

    assert adam.put(f"{C}/office", json=OFFICE).status_code == 201
    saved = _support_with_targets(api)
    assert (saved["service_level_percent"], saved["service_level_seconds"]) == (80.0, 14400.0)
    r = adam.delete(f"{C}/office")
    assert r.status_code == 409 and "'support'" in r.json()["error"]["message"]
    assert adam.get(f"{C}/office").json()["queues"] == ["support"]
    # Supervisors read, only admins change.
    assert api.client("sue").get(C).status_code == 200
    assert api.client("sue").put(f"{C}/office", json=OFFICE).status_code == 403
    assert api.client("ann").get(C).status_code == 403


def test_the_router_takes_the_first_targets_calendar_and_its_changes(api: Api) -> None:
    assert api.router is not None
    adam = api.client("adam")
    assert adam.put(f"{C}/office", json=OFFICE).status_code == 201
    _support_with_targets(api)

    def calendar_of_support() -> Any:
        assert api.router is not None
        q = api.router.service.engine.queue("support")
        return q.service_level.calendar if q is not None else None

    eventually(lambda: calendar_of_support() is not None)
    sl = api.router.service.engine.queue("support").service_level  # type: ignore[union-attr]
    friday_4pm = datetime(2026, 3, 6, 16, tzinfo=UTC).timestamp()
    assert sl.due(friday_4pm) == datetime(2026, 3, 9, 12, tzinfo=UTC).timestamp()  # Mon 12:00
    # Only the calendar changes (Mondays closed): the router re-configures the queue.
    hours = [h for h in OFFICE["hours"] if h["day"] != "mon"]
    assert adam.put(f"{C}/office", json=OFFICE | {"hours": hours}).status_code == 200
    eventually(lambda: len(calendar_of_support().hours) == 4)


def test_config_export_and_apply_round_trip_calendars_and_targets(api: Api) -> None:
    adam = api.client("adam")
    assert adam.put(f"{C}/office", json=OFFICE).status_code == 201
    _support_with_targets(api)
    with api.db.connect() as conn:
        data = config_file.export_data(conn)
    assert data["calendars"][0]["name"] == "office"
    [support] = [q for q in data["queues"] if q["name"] == "support"]
    assert support["service_targets"][1] == {"name": "2 days", "percent": 95.0, "seconds": 172800.0}
    assert support["short_abandon_s"] == 30.0
    config = Configuration.model_validate(data)
    at = datetime.now(UTC)
    assert config_file.apply(api.db, at, Actor.cli(), config).empty  # nothing to change
    # A file that drops the calendar while the queue names it is refused whole.
    refused = data | {"calendars": []}
    try:
        Configuration.model_validate(refused)
    except ValueError as exc:
        assert "service_targets[0].calendar" in str(exc)
    else:
        raise AssertionError("a target naming a missing calendar was accepted")
    # Changing it through apply: one audit entry for the calendar.
    changed = data | {"calendars": [data["calendars"][0] | {"time_zone": "Europe/Dublin"}]}
    plan = config_file.apply(api.db, at, Actor.cli(), Configuration.model_validate(changed))
    assert [c.text() for c in plan.changes] == [
        '~ calendar \'office\': time_zone: "Europe/London" -> "Europe/Dublin"'
    ]
    with api.db.connect() as conn:
        assert conn.execute(sa.select(calendars.c.config)).scalar_one()["time_zone"] == (
            "Europe/Dublin"
        )
        assert configuration.load(conn).calendar("office").zone == "Europe/Dublin"  # type: ignore[union-attr]


# -- the pages ---------------------------------------------------------------------------


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _error_of(page: str, field: str) -> str:
    found = re.search(rf'<span class="error" id="f-{field}-error" role="alert">([^<]*)</span>', page)
    assert found, f"no error beside {field}"
    return found.group(1)


def test_the_calendars_page_creates_edits_and_refuses_deleting_one_in_use(api: Api) -> None:
    adam = api.client("adam")
    r = adam.get("/admin/calendars")
    assert r.status_code == 200 and "No calendars yet" in r.text and 'href="/admin/calendars"' in r.text
    r = adam.get("/admin/calendars?new=1")
    assert '<label for="f-time_zone"' in r.text and '<label for="f-hours-sun-0-start"' in r.text
    form = {"csrf_token": _csrf(r.text), "name": "office", "time_zone": "Europe/Londn",
            "hours.mon.0.start": "09:00", "hours.mon.0.end": "17:00",
            "hours.fri.0.start": "09:00", "hours.fri.0.end": "12:00",
            "hours.fri.1.start": "13:00", "hours.fri.1.end": "25:00",
            "holidays": "2026-12-25\n2026-13-01"}  # fmt: skip
    r = adam.post("/admin/calendars", data=form)
    assert r.status_code == 422
    assert "IANA" in _error_of(r.text, "time_zone")
    assert "HH:MM" in _error_of(r.text, "hours-fri-1-end")
    assert "YYYY-MM-DD" in _error_of(r.text, "holidays")
    assert 'value="Europe/Londn"' in r.text and 'value="13:00"' in r.text  # typed values kept
    form |= {"time_zone": "Europe/London", "hours.fri.1.end": "17:00", "holidays": "2026-12-25"}
    r = adam.post("/admin/calendars", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/calendars/office?done=created"
    r = adam.get(r.headers["location"])
    assert r.status_code == 200 and "Calendar created." in r.text and 'value="12:00"' in r.text
    (entry,) = _audit(api, action="calendar.create", target_id="office")
    assert entry["after"]["hours"] == [
        {"day": "mon", "start": "09:00", "end": "17:00"},
        {"day": "fri", "start": "09:00", "end": "12:00"},
        {"day": "fri", "start": "13:00", "end": "17:00"},
    ]
    # In use by a queue: the delete says which.
    _support_with_targets(api)
    r = adam.post("/admin/calendars/office/delete", data={"csrf_token": _csrf(r.text)})
    assert r.status_code == 409 and "support" in r.text and 'id="delete-error"' in r.text
    # Supervisors read the page but cannot save.
    sue = api.client("sue")
    r = sue.get("/admin/calendars/office")
    assert r.status_code == 200 and "Delete this calendar" not in r.text
    assert sue.post("/admin/calendars/office", data={"csrf_token": _csrf(r.text)}).status_code == 403


def test_the_queue_page_edits_targets_with_a_calendar_and_the_short_abandon(api: Api) -> None:
    adam = api.client("adam")
    assert adam.put(f"{C}/office", json=OFFICE).status_code == 201
    r = adam.get("/admin/queues/support")
    assert '<option value="office"' in r.text and 'id="f-service_targets-4-name"' in r.text
    form = {"csrf_token": _csrf(r.text), "alert_timeout_s": "60", "service_level_percent": "80",
            "service_level_seconds": "86400", "evaluation": "all_skills",
            "scoring_method": "deadline", "wrapup_prompt": "optional", "wrapup_timeout_s": "60",
            "last_agent_routing_mode": "disabled", "last_agent_window_s": "0",
            "park_timeout_s": "3600", "quote_original": "true", "short_abandon_s": "45",
            "service_targets.0.name": "4 business hours", "service_targets.0.percent": "80",
            "service_targets.0.seconds": "14400", "service_targets.0.calendar": "office",
            "service_targets.2.name": "2 days", "service_targets.2.percent": "195",
            "service_targets.2.seconds": "172800"}  # fmt: skip
    r = adam.post("/admin/queues/support", data=form)
    assert r.status_code == 422
    assert "less than or equal to 100" in _error_of(r.text, "service_targets-2-percent")
    form["service_targets.2.percent"] = "95"
    r = adam.post("/admin/queues/support", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    saved = adam.get(f"{Q}/support").json()
    assert saved["short_abandon_s"] == 45.0
    assert [(t["name"], t["calendar"]) for t in saved["service_targets"]] == [
        ("4 business hours", "office"), ("2 days", None),
    ]  # fmt: skip
    assert saved["service_level_seconds"] == 14400.0
    r = adam.get("/admin/queues/support")
    assert '<option value="office" selected>' in r.text and 'value="2 days"' in r.text
    (entry,) = _audit(api, action="queue.update", target_id="support")
    assert entry["after"]["service_targets"][0]["calendar"] == "office"


def test_the_queue_figures_show_every_targets_service_level(api: Api) -> None:
    adam = api.client("adam")
    assert adam.put(f"{C}/office", json=OFFICE).status_code == 201
    _support_with_targets(api)
    api.comps.live.refresh()
    [support] = [q for q in api.client("sue").get("/api/v1/queues").json()["queues"]
                 if q["name"] == "support"]  # fmt: skip
    sl = support["service_level"]
    assert (sl["target_percent"], sl["threshold_s"]) == (80.0, 14400.0)
    assert [(t["name"], t["calendar"], t["target_percent"]) for t in sl["targets"]] == [
        ("4 business hours", "office", 80.0), ("2 days", None, 95.0),
    ]  # fmt: skip
    r = api.client("sue").get("/queues")
    assert r.status_code == 200 and "(office hours)" in r.text and 'data-target="2 days"' in r.text


def test_the_command_line_applies_and_exports_calendars_and_targets(
    any_settings: Any, tmp_path: Any, capsys: Any
) -> None:
    import tomllib

    from tests.integration.test_config_file import base, run, write

    data = base()
    data["calendars"] = [OFFICE]
    data["queues"][0] |= {"service_targets": TARGETS, "short_abandon_s": 20}
    opts = write(tmp_path / "postroom.toml", any_settings, base())
    code, out, _ = run(capsys, "config", "apply", str(_toml(tmp_path / "new.toml", data)), *opts)
    assert code == 0, out
    assert "+ calendar 'office': added" in out.splitlines()
    code, out, _ = run(capsys, "config", "export", *opts)
    exported = tomllib.loads(out)
    assert exported["calendars"][0]["hours"][0] == {"day": "mon", "start": "09:00", "end": "17:00"}
    support = exported["queues"][0]
    assert [t["name"] for t in support["service_targets"]] == ["4 business hours", "2 days"]
    assert support["short_abandon_s"] == 20
    code, out, _ = run(capsys, "config", "apply", str(_toml(tmp_path / "again.toml", exported)),
                       *opts)  # fmt: skip
    assert code == 0 and "no changes" in out


def _toml(path: Any, data: dict[str, Any]) -> Any:
    import tomli_w

    path.write_text(tomli_w.dumps(data))
    return path


def test_the_dashboard_is_given_every_target_of_a_queue(api: Api) -> None:
    from tests.integration.test_supervisor_pages import PAGE, TILES, config

    adam = api.client("adam")
    assert adam.put(f"{C}/office", json=OFFICE).status_code == 201
    _support_with_targets(api)
    sue = api.client("sue")
    cfg = config(sue.get(PAGE).text)
    assert cfg["serviceTargets"]["support"] == [
        {"name": "4 business hours", "percent": 80.0}, {"name": "2 days", "percent": 95.0},
    ]  # fmt: skip
    assert cfg["targets"]["support"] == 80.0  # the first target's, as before
    assert sue.get(TILES).status_code == 200


def test_hostile_page_forms_are_answered_without_a_server_error(api: Api) -> None:
    adam = api.client("adam")
    csrf = _csrf(adam.get("/admin/calendars?new=1").text)
    junk = ["", " ", "x" * 100_000, "24:01", "-1", "nan", "1e400", "\u202e09:00", "09:00\n17:00",
            "<script>", "2026-02-29", "0" * 5000]  # fmt: skip
    for value in junk:
        form = {"csrf_token": csrf, "name": value or "n", "time_zone": value,
                "hours.mon.0.start": value, "hours.mon.0.end": "17:00", "holidays": value}  # fmt: skip
        r = adam.post("/admin/calendars", data=form)
        assert r.status_code in (303, 422), (value[:20], r.status_code)
        if value == "<script>":
            assert 'value="&lt;script&gt;"' in r.text  # typed values come back escaped
    r = adam.get("/admin/queues/support")
    csrf = _csrf(r.text)
    for value in junk:
        form = {"csrf_token": csrf, "service_targets.0.name": value or "t",
                "service_targets.0.percent": value, "service_targets.0.seconds": value,
                "service_targets.0.calendar": value, "short_abandon_s": value}  # fmt: skip
        r = adam.post("/admin/queues/support", data=form)
        assert r.status_code in (303, 422), (value[:20], r.status_code)

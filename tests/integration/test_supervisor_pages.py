"""The supervisor dashboard page and its live tiles: for supervisors and admins (agents
get 403), a header link for those who may open it, its filters read from the address
(wrong values fall back to defaults and are named, never a 500), the interval, chart
steps and targets handed to the script, the vendored chart library served, and a CSP
that admits it."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture

PAGE = "/supervisor/dashboard"
TILES = "/supervisor/parts/tiles"


def config(page: str) -> dict[str, Any]:
    m = re.search(r'id="dashboard" class="charts" data-config="([^"]*)"', page)
    assert m, page
    out: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    return out


def test_dashboard_is_for_supervisors_and_admins(api: Api) -> None:
    api.deliver("Nobody is on queue")  # waits in support
    for user in ("sue", "adam"):
        page = api.client(user).get(PAGE)
        assert page.status_code == 200, page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "connect-src 'self'" in csp
        assert '<script src="/static/workspace/vendor/uplot-1.6.32.iife.min.js" defer>' in page.text
        assert '<script src="/static/supervisor/dashboard.js" defer>' in page.text
        assert "<script>" not in page.text  # nothing inline: the CSP would block it
        assert 'href="/supervisor/dashboard" aria-current="page"' in page.text
        assert 'hx-get="/supervisor/parts/tiles"' in page.text
        part = api.client(user).get(TILES)
        assert part.status_code == 200
        tile = re.search(r'<li class="tile" data-queue="support">(.*?)</li>', part.text, re.S)
        assert tile is not None
        assert '<dd data-figure="waiting" class="hot">1</dd>' in tile.group(1)
        assert re.search(r'<dd data-figure="longest_waiting">\d+ s</dd>', tile.group(1))
        assert "/ 80 %" in tile.group(1)  # the target beside today's service level
    ann = api.client("ann")
    assert 'href="/supervisor/dashboard"' not in ann.get("/").text
    assert 'href="/supervisor/dashboard"' in api.client("sue").get("/").text
    r = ann.get(PAGE)
    assert r.status_code == 403 and "supervisors and administrators" in r.text
    assert "see_all_work permission" in r.text and "data-config" not in r.text
    for headers in ({}, {"HX-Request": "true"}):
        r = ann.get(TILES, headers=headers)
        assert r.status_code == 403 and "data-queue" not in r.text


def test_vendored_chart_library_and_script_are_served(api: Api) -> None:
    c = api.client("sue")
    for path, kind in (
        ("/static/workspace/vendor/uplot-1.6.32.iife.min.js", "javascript"),
        ("/static/workspace/vendor/uplot-1.6.32.min.css", "css"),
        ("/static/supervisor/dashboard.js", "javascript"),
        ("/static/supervisor/dashboard.css", "css"),
    ):
        r = c.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
    assert "uPlot" in c.get("/static/workspace/vendor/uplot-1.6.32.iife.min.js").text


def test_filters_make_the_interval_and_the_chart_steps(api: Api) -> None:
    sue = api.client("sue")
    r = sue.get(PAGE, params={"from": "2026-03-29", "to": "2026-03-29", "tz": "Europe/Paris",
                              "queue": "support", "agent": "ann"})  # fmt: skip
    assert r.status_code == 200
    cfg = config(r.text)
    # The day of the spring change in Paris: 23 hours.
    assert cfg["interval"] == "2026-03-29T00:00:00+01:00/2026-03-30T00:00:00+02:00"
    assert (cfg["granularity"], len(cfg["edges"])) == ("PT1H", 23)
    assert cfg["edges"][:3] == ["2026-03-29T00:00:00+01:00", "2026-03-29T01:00:00+01:00",
                                "2026-03-29T03:00:00+02:00"]  # fmt: skip
    assert (cfg["queue"], cfg["agent"], cfg["timeZone"]) == ("support", "ann", "Europe/Paris")
    assert cfg["targets"]["support"] == 80.0 and cfg["agents"]["ann"]
    assert '<option value="support" selected>' in r.text
    cfg = config(sue.get(PAGE, params={"from": "2026-01-01", "to": "2026-01-31"}).text)
    assert (cfg["granularity"], len(cfg["edges"])) == ("P1D", 31)
    cfg = config(sue.get(PAGE, params={"from": "2026-01-01", "to": "2026-12-31"}).text)
    assert cfg["granularity"] == "P1W"


def test_wrong_filters_fall_back_and_say_so(api: Api) -> None:
    sue = api.client("sue")
    cases = [
        ({"tz": "Mars/Olympus"}, "Unknown time zone"),
        ({"tz": "../../etc/passwd"}, "Unknown time zone"),
        ({"from": "yesterday"}, "is not a date"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "is not a date"),
        ({"from": "0001-01-01"}, "is not a date"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "ends before it starts"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "at most 400 days"),
        ({"queue": "nowhere"}, "No such queue"),
        ({"agent": "x" * 5000}, "No such agent"),
        ({"queue": "<script>alert(1)</script>"}, "No such queue"),
    ]
    for params, message in cases:
        r = sue.get(PAGE, params=params)
        assert r.status_code == 200, (params, r.text)
        assert message in r.text, params
        assert "<script>alert" not in r.text
        cfg = config(r.text)
        assert (cfg["queue"], cfg["agent"]) == ("", "")  # none of the cases names a real one
    long = config(sue.get(PAGE, params={"from": "2020-01-01", "to": "2026-01-01"}).text)
    start, end = long["interval"].split("/")
    assert (start[:10], end[:10]) == ("2020-01-01", "2021-02-04")  # 400 days

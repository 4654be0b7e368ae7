"""The supervisor dashboard in a real browser, on its own server: after an agent
answered a few conversations (and one waits), the dashboard's tiles, its four uPlot
charts and its tables show them, and the CSV buttons download files that parse and
match the API's JSON for the same request. The page keeps its CSP and logs no
console error."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, CONFIG, run_server
from tests.e2e.helpers import (
    Page,
    accept_offer,
    csp_violations,
    eventually,
    expect,
    go_offline,
    go_on_queue,
    login,
    send_mail,
    watch_csp,
    wrap_up,
)
from tests.mailfactory import make_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USERS = (("ann", "agent", "support"), ("sue", "supervisor", None))


def _ready(page: Page, key: str) -> None:
    page.wait_for_function(f"() => window.postroomDashboard && window.postroomDashboard.ready.{key} === true",
                           timeout=15_000)  # fmt: skip


def _series(page: Page, chart: str) -> list[list[Any]]:
    out: list[list[Any]] = page.evaluate(
        f"() => window.postroomDashboard.charts.{chart}.data.map(s => Array.from(s))"
    )
    return out


def _download(page: Page, key: str) -> tuple[str, list[dict[str, str]]]:
    with page.expect_download() as info:
        page.locator(f'button[data-csv="{key}"]').click()
    download = info.value
    path = download.path()
    assert path is not None
    text = Path(path).read_text(encoding="utf-8")
    return download.suggested_filename, list(csv.DictReader(io.StringIO(text)))


def test_dashboard_draws_charts_and_tables_from_the_analytics_api(
    page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("dashboard")
    # Its own server (a copy of the shared configuration), so every figure is known.
    with run_server(root, config=CONFIG.replace("[smtp]", "[smtp]\n"), users=USERS) as server:
        sue = server.session("sue")
        console_errors = watch_csp(page)
        login(page, server, "ann")
        go_on_queue(page)
        for subject, code in (("Printer jam", "resolved"), ("Toner low", "resolved"),
                              ("Paper tray", "needs-follow-up")):  # fmt: skip
            send_mail(server, "support@example.com", make_email(subject=subject))
            accept_offer(page, subject)
            wrap_up(page, code)
        go_offline(page)
        send_mail(server, "support@example.com", make_email(subject="Nobody is here"))
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login$"))

        # The projector runs in the server's router role: wait until it has it all.
        login(page, server, "sue")
        page.get_by_role("navigation", name="Pages").get_by_role("link", name="Dashboard").click()
        expect(page).to_have_url(server.url + "/supervisor/dashboard")
        page.wait_for_function("() => window.postroomDashboard && window.postroomDashboard.config")
        interval = page.evaluate("() => window.postroomDashboard.config.interval")
        probe = {"interval": interval, "groupBy": ["queueId"],
                 "metrics": ["nOffered", "nConnected", "tHandle"]}  # fmt: skip

        def projected() -> bool:
            res = sue.call("POST", "/api/v1/analytics/conversations/aggregates/query", probe)
            m = {x["metric"]: x["stats"]["count"] for r in res["results"]
                 if r["group"]["queueId"] == "support" for x in r["data"][0]["metrics"]}  # fmt: skip
            return m == {"nOffered": 4, "nConnected": 3, "tHandle": 3}

        eventually(projected, timeout=30)
        page.reload()

        # Live tiles over the event stream.
        tile = page.locator('.tile[data-queue="support"]')
        expect(tile.locator("[data-figure=waiting]")).to_have_text("1")
        expect(tile.locator("[data-figure=service_level]")).to_contain_text("100 %")

        # The charts: a uPlot canvas with data in each.
        for key in ("offered", "sl", "waits", "backlog"):
            _ready(page, key)
            expect(page.locator(f'[data-chart="{key}"] .uplot canvas')).to_have_count(1)
        offered = _series(page, "offered")
        assert len(offered[0]) == len(offered[1]) > 0
        assert (sum(offered[1]), sum(offered[2])) == (4, 3)  # offered, answered
        sl = _series(page, "sl")
        support = page.evaluate(
            "() => window.postroomDashboard.charts.sl.series.map(s => s.label)"
        )
        line = sl[support.index("support")]
        goal = sl[support.index("support goal 80 %")]
        assert {v for v in line if v is not None} == {100} and set(goal) == {80}
        waits = _series(page, "waits")
        assert len(waits[0]) == 7 and sum(waits[1]) == 3
        backlog = _series(page, "backlog")
        labels = page.evaluate("() => window.postroomDashboard.charts.backlog.series.map(s => s.label)")
        assert len(backlog[0]) > 0 and backlog[labels.index("support")][-1] == 1

        # The tables.
        _ready(page, "agents")
        _ready(page, "wrapups")
        ann = page.locator('#agent-table tr[data-agent="ann"]')
        expect(ann.locator("[data-figure=handled]")).to_have_text("3")
        expect(ann.locator("[data-figure=handle]")).to_have_text(re.compile(r"\d+ (s|min)"))
        expect(page.locator('#wrapup-table tr[data-code="resolved"] [data-figure=handled]')).to_have_text("2")
        expect(page.locator('#wrapup-table tr[data-code="needs-follow-up"] [data-figure=finished]')).to_have_text("1")
        # Time in each status, from the users aggregates.
        assert page.evaluate("() => 'users' in window.postroomDashboard.data")
        expect(ann.locator("[data-figure=routing]")).to_contain_text(re.compile(r"\d"))
        expect(ann.locator("[data-figure=presence]")).to_contain_text(re.compile(r"\d"))

        page.set_viewport_size({"width": 1280, "height": 1500})
        page.wait_for_timeout(400)  # the charts redraw at the new width
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "supervisor-dashboard.png"), full_page=True)

        # CSV downloads parse and match the API's JSON for the same request.
        name, rows = _download(page, "agents")
        assert name.endswith("aggregates.csv")
        path, body = page.evaluate("() => window.postroomDashboard.requests.agents")
        api = sue.call("POST", "/api/v1/analytics" + path, body)
        want = {
            (r["group"].get("userId") or "", m["metric"]): m["stats"]
            for r in api["results"] for d in r["data"] for m in d["metrics"]
        }  # fmt: skip
        got = {(x["userId"], x["metric"]): x for x in rows}
        assert set(got) == set(want) and ("ann", "nConnected") in got
        for k, stats in want.items():
            for stat, value in stats.items():
                assert float(got[k][stat]) == pytest.approx(value), (k, stat)
        _, rows = _download(page, "waits")
        path, body = page.evaluate("() => window.postroomDashboard.requests.waits")
        api = sue.call("POST", "/api/v1/analytics" + path, body)
        want_w = {(r["group"]["queueId"], b["label"]): n for r in api["results"]
                  for b, n in zip(api["buckets"], r["counts"], strict=True)}  # fmt: skip
        assert {(x["queueId"], x["bucket"]): int(x["count"]) for x in rows} == want_w
        _, rows = _download(page, "wrapups")
        assert {x["wrapUpCode"] for x in rows if x["metric"] == "nConnected"} >= {
            "resolved", "needs-follow-up"
        }  # fmt: skip

        # A range with nothing in it: empty charts and tables, no script error.
        page.goto(server.url + "/supervisor/dashboard?from=2199-01-01&to=2199-01-02&tz=Asia/Tokyo")
        for key in ("offered", "sl", "waits", "backlog", "agents", "wrapups"):
            _ready(page, key)
        assert sum(_series(page, "offered")[1]) == 0
        expect(page.locator('[data-state="backlog"]')).to_have_text(
            "Nothing to show before the range starts."
        )
        expect(page.locator("#agent-table tbody")).to_contain_text("No agent handled")
        expect(page.locator("#wrapup-table tbody")).to_contain_text("No conversation was handled")

        assert csp_violations(page) == []
        assert console_errors == []

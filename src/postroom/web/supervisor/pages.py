"""The supervisor dashboard: the page `/supervisor/dashboard` and its live queue tiles
`/supervisor/parts/tiles` (an htmx fragment refreshed over the event stream).

The page renders the filters (date range, time zone, queue, agent) and empty chart
and table panels; static/dashboard.js fetches their figures from the analytics API
(web/supervisor/analytics.py) and draws the charts with the vendored uPlot
(workspace/static/vendor/VENDORED.md). The interval, its chart steps and the queues'
targets are computed here and handed to the script in data attributes, so the page
has no inline script (its CSP allows scripts from this origin only).

Reads only; needs the `see_all_work` permission, as the analytics API does. No figure
is computed here: the tiles are services/agents.py `queue_figures`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from postroom.analytics import metrics as am
from postroom.domain import permissions
from postroom.domain.permissions import Permission
from postroom.services import agents as agent_svc
from postroom.web.deps import AppContext, Principal, get_ctx, needs, refusal
from postroom.web.supervisor.analytics import MAX_SPAN, _zones
from postroom.web.workspace import pages as workspace_pages

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

templates = Jinja2Templates(directory=str(HERE / "templates"))
# The dashboard extends the workspace's base.html and shares its header.
templates.env.loader = ChoiceLoader(
    [
        FileSystemLoader(str(HERE / "templates")),
        FileSystemLoader(str(Path(workspace_pages.__file__).parent / "templates")),
    ]
)
for _name, _filter in workspace_pages.templates.env.filters.items():
    templates.env.filters.setdefault(_name, _filter)

router = APIRouter(include_in_schema=False)

SEE_ALL = needs(Permission.SEE_ALL_WORK)
MAX_FIELD = 200  # longest filter value read from the address
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)  # the dates the filters take


@dataclass(frozen=True, slots=True)
class Filters:
    """The dashboard's filters, checked: dates, zone, queue and agent ("" for all)."""

    first: date
    last: date
    zone: str
    queue: str
    agent: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), tzinfo=self.tz)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), tzinfo=self.tz)

    @property
    def interval(self) -> str:
        start, end = self.start, self.end
        # Local midnights as written in the zone: "2026-03-29T00:00:00+01:00/...".
        return (
            f"{start.isoformat(timespec='seconds')}/"
            f"{end.astimezone(self.tz).isoformat(timespec='seconds')}"
        )

    @property
    def granularity(self) -> str:
        """The charts' step: hours for up to two days, days up to two months, else weeks."""
        days = (self.last - self.first).days + 1
        return "PT1H" if days <= 2 else "P1D" if days <= 62 else "P1W"


def _text(params: Any, name: str) -> str:
    value = params.get(name) or ""
    return value.strip() if isinstance(value, str) and len(value) <= MAX_FIELD else "\x00"


def read_filters(
    params: Any, today: date, queues: list[str], agents: list[str]
) -> tuple[Filters, list[str]]:
    """The filters from the page's address, and what was wrong with them (each wrong
    value is replaced by its default: today, UTC, all queues, all agents)."""
    problems: list[str] = []
    zone = _text(params, "tz") or "UTC"
    if zone not in _zones():
        problems.append("Unknown time zone: use an IANA name like Europe/Paris.")
        zone = "UTC"
    dates = []
    for name in ("from", "to"):
        raw = _text(params, name)
        try:
            value = date.fromisoformat(raw) if raw else today
        except ValueError:
            value = None
        if value is None or not FIRST_DAY <= value <= LAST_DAY:
            problems.append(f"The {name!r} date is not a date like 2026-03-29.")
            value = today
        dates.append(value)
    first, last = dates
    if last < first:
        problems.append("The range ends before it starts: showing its first day.")
        last = first
    if timedelta(days=(last - first).days + 1) > MAX_SPAN:
        problems.append("The range may span at most 400 days: showing 400 days.")
        last = first + MAX_SPAN - timedelta(days=1)
    queue = _text(params, "queue")
    if queue and queue not in queues:
        problems.append("No such queue: showing all queues.")
        queue = ""
    agent = _text(params, "agent")
    if agent and agent not in agents:
        problems.append("No such agent: showing all agents.")
        agent = ""
    return Filters(first, last, zone, queue, agent), problems


def _tiles(ctx: AppContext) -> dict[str, Any]:
    """Each queue's live figures with today's service level and its target."""
    now = ctx.clock()
    targets = agent_svc.service_level_targets(ctx.configured.queues, ctx.configured.calendars)
    figures = agent_svc.queue_figures(ctx.db, ctx.configured.queue_names, now, targets)
    return {"queues": [f.to_json() for f in figures], "at": now}


def _dashboard(ctx: AppContext, params: Any) -> dict[str, Any]:
    everyone = agent_svc.list_agents(ctx.db)
    queues = ctx.configured.queue_names
    today = ctx.clock().date()
    filters, problems = read_filters(params, today, queues, [a["id"] for a in everyone])
    tz = filters.tz
    edges = am.boundaries(filters.start, filters.end, filters.granularity, tz)
    config = {
        "interval": filters.interval,
        "timeZone": filters.zone,
        "granularity": filters.granularity,
        "queue": filters.queue,
        "agent": filters.agent,
        # The start of every chart interval, as the API writes them.
        "edges": [e.astimezone(tz).isoformat(timespec="seconds") for e in edges[:-1]],
        "targets": {q.name: q.service_level_percent for q in ctx.configured.queues},
        # Every queue's service-level targets, first first (one chart line each).
        "serviceTargets": {
            q.name: [{"name": t.name, "percent": t.percent} for t in q.targets]
            for q in ctx.configured.queues
        },
        "agents": {a["id"]: a["name"] or a["id"] for a in everyone},
    }
    return {
        "filters": filters,
        "problems": problems,
        "queues": queues,
        "agents": [{"id": a["id"], "name": a["name"] or a["id"]} for a in everyone],
        "zones": sorted(_zones()),
        "config": json.dumps(config, separators=(",", ":")),
        "tiles": _tiles(ctx),
    }


def _render(request: Request, name: str, status_code: int = 200, **values: Any) -> Response:
    nonce = secrets.token_urlsafe(18)
    return templates.TemplateResponse(
        request,
        name,
        {"csp_nonce": nonce, **values},
        status_code=status_code,
        headers=workspace_pages._headers(workspace_pages.PAGE_CSP.format(nonce=nonce)),
    )


def _refused(request: Request, principal: Principal) -> Response:
    reason = (
        "The dashboard is for supervisors and administrators: "
        + str(refusal(Permission.SEE_ALL_WORK))
        + "."
    )
    if request.headers.get("hx-request"):
        return Response(reason, status_code=403, media_type="text/plain")
    return workspace_pages._page(
        request, principal, "forbidden.html", status_code=403, title="Dashboard", reason=reason
    )


@router.get("/supervisor/dashboard", openapi_extra=SEE_ALL)
async def dashboard(request: Request) -> Response:
    """Supervisors and admins: live queue tiles, charts and tables of the analytics."""
    principal = await workspace_pages._principal(request)
    if principal is None:
        return workspace_pages._to_login(request)
    if not permissions.allows(principal.user.role, Permission.SEE_ALL_WORK):
        return await anyio.to_thread.run_sync(lambda: _refused(request, principal))
    ctx = get_ctx(request)
    view = await anyio.to_thread.run_sync(lambda: _dashboard(ctx, request.query_params))
    nav = await anyio.to_thread.run_sync(lambda: workspace_pages._nav(ctx, principal))
    return _render(
        request,
        "supervisor/dashboard.html",
        user=principal.user,
        csrf=principal.csrf_token or "",
        presences=workspace_pages.PRESENCES,
        nav=nav,
        page="dashboard",
        **view,
    )


@router.get("/supervisor/parts/tiles", openapi_extra=SEE_ALL)
async def part_tiles(request: Request) -> Response:
    """The live queue tiles (htmx swaps them in on every change the stream reports)."""
    principal = await workspace_pages._principal(request)
    if principal is None:
        return workspace_pages._to_login(request)
    if not permissions.allows(principal.user.role, Permission.SEE_ALL_WORK):
        return Response(
            "the dashboard is for supervisors and administrators: "
            + str(refusal(Permission.SEE_ALL_WORK)),
            status_code=403,
            media_type="text/plain",
        )
    tiles = await anyio.to_thread.run_sync(_tiles, get_ctx(request))
    return _render(request, "supervisor/_tiles.html", tiles=tiles)

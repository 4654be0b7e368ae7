"""Supervisor analytics over HTTP: the analytics API (analytics.py, `/api/v1/analytics/...`)
and the dashboard page with its fragments (pages.py, `/supervisor/...`), with static
files under /static/supervisor. `mount` adds the page and its files; app.py includes
the API router with the others."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from postroom.web.supervisor import backlog_pages, pages


def mount(app: FastAPI) -> None:
    """Add the dashboard and its static files to `app`."""
    app.include_router(pages.router)
    app.include_router(backlog_pages.router)
    app.mount(
        "/static/supervisor", StaticFiles(directory=pages.STATIC_DIR), name="supervisor-static"
    )

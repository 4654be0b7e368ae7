"""Administration over HTTP: the admin API (`/api/v1/...`) and the admin pages
(`/admin/...`), one module per area with the same names as services/admin/.

Each area module exposes `api` (JSON, in OpenAPI) and `pages` (HTML forms that
post back to themselves and re-render with the errors beside their fields)
routers; `mount` adds them all. Translation to HTTP only: every rule lives in
the services and the shared schema.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from postroom.web.admin import (
    agents,
    audit,
    calendars,
    canned,
    catalog,
    dryrun,
    pages,
    quarantine,
    queues,
    routes,
    rules,
    users,
    webhooks,
)

# Area modules, in the order of the admin navigation. Each has `api` and `pages`.
AREAS: tuple[object, ...] = (
    queues,
    calendars,
    agents,
    catalog,
    routes,
    rules,
    dryrun,
    canned,
    users,
    webhooks,
    quarantine,
    audit,
)


def mount(app: FastAPI) -> None:
    """Add the admin API, the admin pages and their static files to `app`."""
    for area in AREAS:
        for name in ("api", "pages"):
            router = getattr(area, name, None)
            if isinstance(router, APIRouter):
                app.include_router(router)
    app.include_router(pages.router)
    app.mount("/static/admin", StaticFiles(directory=pages.STATIC_DIR), name="admin-static")

"""The HTTP application factory: health, intake status and the /api/v1 routers.

Wires the routers, error handlers, the event hub and the presence time-out
onto one FastAPI app. Translates to HTTP only: it reads and writes through the
services and never touches SMTP/IMAP or the routing engine itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pwdlib import PasswordHash

from postroom import __version__
from postroom.services.configuration import ConfigSource
from postroom.services.users import password_hasher
from postroom.store.blobs import BlobStore, FileBlobStore
from postroom.store.intake_repo import status_counts
from postroom.web import (
    admin,
    api_canned,
    api_conversations,
    api_docs,
    api_explain,
    api_files,
    api_new_email,
    api_queues,
    api_users,
    api_workspace,
    auth,
    browser,
    edge,
    errors,
    events_stream,
    supervisor,
    workspace,
)
from postroom.web import metrics as web_metrics
from postroom.web.deps import (
    PERMISSION_KEY,
    PUBLIC,
    AppContext,
    CanSeeAllWork,
    SettingsLike,
    WebConfig,
    route_permission,
    utc_now,
)
from postroom.web.presence import watch_presence
from postroom.web.supervisor import analytics as supervisor_analytics
from postroom.web.supervisor import backlog as supervisor_backlog
from postroom.web.supervisor import threads as supervisor_threads

FAVICON = Path(workspace.__file__).parent / "static" / "favicon.ico"


def create_app(
    engine: sa.Engine,
    settings: SettingsLike | None = None,
    blobs: BlobStore | None = None,
    *,
    config: WebConfig | None = None,
    clock: Callable[[], datetime] = utc_now,
    hasher: PasswordHash | None = None,
    presence_watch: bool = True,
    live: ConfigSource | None = None,
) -> FastAPI:
    """The app; `config` (tests) overrides what `settings` would give."""
    if config is None:
        config = WebConfig.from_settings(settings) if settings is not None else WebConfig()
    if blobs is None:
        blobs = FileBlobStore(Path(tempfile.mkdtemp(prefix="postroom-blobs-")))
    web_metrics.allow_list(config.metrics_allow)  # a bad entry stops the start, named
    ctx = AppContext(engine, config, blobs, hasher or password_hasher(), clock, live)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch_presence(ctx)) if presence_watch else None
        try:
            yield
        finally:
            app.state.hub.close()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = FastAPI(
        title="Postroom",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # api_docs serves it from our own files
        redoc_url=None,
        lifespan=lifespan,
        description="Postroom's REST API and event stream; see docs/api.md.",
    )
    app.state.ctx = ctx
    app.state.hub = events_stream.EventHub(ctx)
    errors.install(app)
    app.add_middleware(edge.EdgeGuard)

    @app.get("/healthz", tags=["status"], openapi_extra=PUBLIC)
    def healthz() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/favicon.ico", include_in_schema=False, openapi_extra=PUBLIC)
    def favicon() -> FileResponse:
        return FileResponse(
            FAVICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
        )

    @app.get("/api/v1/status", tags=["status"])
    def status(_user: CanSeeAllWork) -> dict[str, Any]:
        """Intake figures (`postroom status --json`), for supervisors and administrators;
        `/healthz` is the public probe for load balancers."""
        with engine.connect() as conn:
            return status_counts(conn)

    for module in (
        api_docs,
        auth,
        api_conversations,
        api_explain,
        api_new_email,
        api_users,
        api_queues,
        api_canned,
        api_files,
        api_workspace,
        events_stream,
        supervisor_analytics,
        supervisor_threads,
        supervisor_backlog,
        web_metrics,
    ):
        app.include_router(module.router)
    workspace.mount(app, settings)
    admin.mount(app)
    supervisor.mount(app)
    browser.mount(app)
    _document_permissions(app)
    return app


def _document_permissions(app: FastAPI) -> None:
    """Every operation's OpenAPI entry says what it needs (`x-permission`: a
    permission of domain/permissions.py, or "public")."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for route in routes(app):
            needed = route_permission(route)
            for method in route.methods or ():
                entry = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
                if entry is not None and needed is not None:
                    entry[PERMISSION_KEY] = needed
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def routes(app: FastAPI) -> list[Any]:
    """Every HTTP endpoint and page of `app` as FastAPI sees it (path, methods,
    dependant, openapi_extra), including those of included routers."""
    return [
        rc
        for rc in iter_route_contexts(app.routes)
        if isinstance(rc.original_route, APIRoute)
    ]

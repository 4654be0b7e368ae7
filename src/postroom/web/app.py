"""The HTTP application: health and intake status for now (the API grows here).

Translates to HTTP only; it reads through the store and never touches SMTP/IMAP.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

from postroom import __version__
from postroom.store.intake_repo import status_counts


def create_app(engine: sa.Engine) -> FastAPI:
    app = FastAPI(
        title="Postroom",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
    )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/api/v1/status")
    def status() -> dict[str, Any]:
        with engine.connect() as conn:
            return status_counts(conn)

    return app

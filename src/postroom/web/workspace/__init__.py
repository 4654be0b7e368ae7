"""The agent workspace: server-rendered pages (Jinja2, htmx with its SSE
extension) at "/", with static files under /static/workspace.

`mount` wires it onto the FastAPI app; the pages live in workspace/pages.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from postroom.web.workspace import pages

STATIC_DIR = Path(__file__).parent / "static"


def mount(app: FastAPI, settings: Any = None) -> None:
    """Add the workspace pages and their static files to `app`."""
    app.state.settings = settings
    app.include_router(pages.router)
    app.mount("/static/workspace", StaticFiles(directory=STATIC_DIR), name="workspace-static")

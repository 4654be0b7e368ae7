"""The conversation browser: the page `/conversations` (find, filter, sort and page
through the conversations you may see) and the customer panel fragment beside the
thread view (pages.py, templates under templates/browser/). `mount` adds them; the
API they mirror is web/api_conversations.py."""

from __future__ import annotations

from fastapi import FastAPI

from postroom.web.browser import pages


def mount(app: FastAPI) -> None:
    """Add the browser page and its fragments to `app`."""
    app.include_router(pages.router)

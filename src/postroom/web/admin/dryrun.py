"""The dry run over HTTP: `POST /api/v1/routing/dry-run` and the dry-run box of
the routes page (`POST /admin/dry-run`, answered with a fragment for htmx or
the whole page without JavaScript).

Translation to HTTP only: services/admin/dryrun.py parses and explains; nothing
is stored. Needs `view_config` (it reads the configuration, changes nothing).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from postroom.domain.errors import PostroomError
from postroom.domain.permissions import Permission
from postroom.services.admin import dryrun as svc
from postroom.services.admin.schema import RuleModel
from postroom.web.admin import forms
from postroom.web.admin import pages as shell
from postroom.web.admin.routes import render
from postroom.web.deps import CanViewConfig, Ctx, get_ctx, needs

api = APIRouter(prefix="/api/v1/routing", tags=["routing"])
pages = APIRouter(include_in_schema=False)

HeaderName = Annotated[str, Field(min_length=1, max_length=200)]
Recipient = Annotated[str, Field(min_length=1, max_length=320)]


class DryRunIn(BaseModel):
    """A raw message, or headers and a body; optionally the envelope recipients and
    a rule set to try instead of the stored rules."""

    raw: str | None = Field(
        default=None, max_length=svc.MAX_RAW, description="the whole RFC 5322 message"
    )
    headers: dict[HeaderName, Annotated[str, Field(max_length=10_000)]] | None = Field(
        default=None, max_length=svc.MAX_HEADERS, description="header name -> value"
    )
    text: str | None = Field(default=None, max_length=svc.MAX_RAW)
    html: str | None = Field(default=None, max_length=svc.MAX_RAW)
    envelope_to: list[Recipient] = Field(
        default_factory=list,
        max_length=100,
        description="the SMTP recipients; empty: To and Cc (and Delivered-To) decide",
    )
    rules: list[RuleModel] | None = Field(
        default=None, max_length=500, description="try these rules instead of the stored ones"
    )

    @model_validator(mode="after")
    def _one_message(self) -> DryRunIn:
        if (self.raw is None) == (self.headers is None and self.text is None):
            raise ValueError("give either raw (the whole message) or headers and text")
        return self

    def message(self) -> bytes:
        if self.raw is not None:
            return self.raw.encode("utf-8", "surrogateescape")
        return svc.compose_raw(self.headers or {}, self.text or "", self.html)


@api.post("/dry-run")
async def dry_run(body: DryRunIn, ctx: Ctx, _user: CanViewConfig) -> dict[str, Any]:
    """What intake would do with this email now: the route chosen (or why none),
    every rule in order (matched, not matched, skipped after a stop or discard,
    disabled) with each condition's result, and the resulting queue, priority,
    skills, language, tags, acknowledgement, discard reason and preferred agents.
    Nothing is stored."""

    def run() -> dict[str, Any]:
        return svc.dry_run(
            ctx.db,
            body.message(),
            envelope_to=body.envelope_to,
            rules=body.rules,
        )

    return await anyio.to_thread.run_sync(run)


@pages.post("/admin/dry-run", response_model=None, openapi_extra=needs(Permission.VIEW_CONFIG))
async def dry_run_from_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.VIEW_CONFIG)
    if isinstance(found, Response):
        return found
    form = await request.form()
    values = {"raw": forms.text(form, "raw"), "envelope_to": forms.text(form, "envelope_to")}
    ctx = get_ctx(request)
    fragment = bool(request.headers.get("hx-request"))

    def run() -> Response:
        error: str | None = None
        result: dict[str, Any] | None = None
        raw = values["raw"].replace("\r\n", "\n").replace("\n", "\r\n")
        if not raw.strip():
            error = "Paste an email (headers, an empty line, then the body)."
        else:
            try:
                result = svc.dry_run(
                    ctx.db,
                    raw.encode("utf-8", "surrogateescape"),
                    envelope_to=forms.names(values["envelope_to"])[:100],
                )
            except PostroomError as exc:
                error = str(exc)
        if fragment:
            return shell.templates.TemplateResponse(
                request,
                "admin/_dryrun.html",
                {"dry": result, "dry_error": error},
            )  # 200 either way: htmx swaps only successful answers
        return render(
            request,
            found,
            status_code=200 if error is None else 422,
            dry=result,
            dry_form=values,
            dry_error=error,
        )

    return await anyio.to_thread.run_sync(run)

"""The audit log over HTTP: `GET /api/v1/audit` (filters, newest first, paged
with `before_id`) and the page `/admin/audit` (a filter form, who/when/what,
and each entry's before and after side by side, changed fields marked).

Read only: entries are written by the services, in the transaction of each
change (services/admin/audit.py). Translation to HTTP and display only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from postroom.domain.permissions import Permission
from postroom.services.admin import audit as audit_svc
from postroom.web.admin import pages as shell
from postroom.web.deps import CanViewAudit, Ctx, RowId, get_ctx, needs

api = APIRouter(prefix="/api/v1/audit", tags=["audit"])
pages = APIRouter(include_in_schema=False)

PAGE_MAX = 500
SECTION = "/admin/audit"
FILTERS = ("actor", "action", "target_type", "target_id", "since", "until")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@api.get("")
async def list_entries(
    ctx: Ctx,
    _user: CanViewAudit,
    actor: Annotated[str | None, Query(max_length=200, description="a user id, or cli")] = None,
    action: Annotated[str | None, Query(max_length=60, description="e.g. queue.update")] = None,
    target_type: Annotated[str | None, Query(max_length=40)] = None,
    target_id: Annotated[str | None, Query(max_length=320)] = None,
    since: Annotated[datetime | None, Query(description="at or after (UTC if no zone)")] = None,
    until: Annotated[datetime | None, Query(description="before (UTC if no zone)")] = None,
    before_id: Annotated[RowId | None, Query(description="next_before_id of the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> dict[str, Any]:
    """Audit entries newest first: who (`actor`, `via`), when (`at`), what (`action`,
    `target_type`, `target_id`) and the values `before` and `after` (secrets shown
    as "***"). Page on with `before_id` = `next_before_id`."""
    filters = {
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "since": _utc(since),
        "until": _utc(until),
    }
    return await anyio.to_thread.run_sync(lambda: _read(ctx.db, filters, before_id, limit))


def _read(
    db: sa.Engine, filters: dict[str, Any], before_id: int | None, limit: int
) -> dict[str, Any]:
    with db.connect() as conn:
        found = audit_svc.entries(conn, **filters, before_id=before_id, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    return {"entries": found, "next_before_id": found[-1]["id"] if more and found else None}


# -- the page --------------------------------------------------------------------------


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def diff(before: Any, after: Any) -> list[dict[str, Any]]:
    """Rows for the before/after view: one per field of two objects (changed ones
    marked), or one row for values that are not objects."""
    if isinstance(before, dict) or isinstance(after, dict):
        old = before if isinstance(before, dict) else {}
        new = after if isinstance(after, dict) else {}
        keys = sorted(set(old) | set(new))
        return [
            {
                "field": key,
                "before": _shown(old.get(key)) if before is not None else "",
                "after": _shown(new.get(key)) if after is not None else "",
                "changed": before is None or after is None or old.get(key) != new.get(key),
            }
            for key in keys
        ]
    return [
        {"field": "", "before": _shown(before), "after": _shown(after), "changed": before != after}
    ]


def _parse_when(value: str, field: str, errors: dict[str, str]) -> datetime | None:
    if not value:
        return None
    try:
        return _utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        errors[field] = "Write a date as 2026-12-31, or a time as 2026-12-31T14:30 (UTC)."
        return None


@pages.get(SECTION, response_model=None, openapi_extra=needs(Permission.VIEW_AUDIT))
async def audit_page(request: Request) -> Response:
    found = await shell.guard(request, Permission.VIEW_AUDIT)
    if isinstance(found, Response):
        return found
    ctx = get_ctx(request)
    params = request.query_params
    values = {k: (params.get(k) or "").strip()[:320] for k in FILTERS}
    errors: dict[str, str] = {}
    before_raw = params.get("before_id", "")
    before_id = int(before_raw) if before_raw.isdigit() and len(before_raw) < 10 else None
    filters: dict[str, Any] = {
        k: values[k] or None for k in ("actor", "action", "target_type", "target_id")
    }
    filters["since"] = _parse_when(values["since"], "since", errors)
    filters["until"] = _parse_when(values["until"], "until", errors)
    if errors:
        result: dict[str, Any] = {"entries": [], "next_before_id": None}
    else:
        result = await anyio.to_thread.run_sync(lambda: _read(ctx.db, filters, before_id, 50))
    rows = [e | {"diff": diff(e["before"], e["after"])} for e in result["entries"]]
    next_url = None
    if result["next_before_id"] is not None:
        query = {k: v for k, v in values.items() if v} | {"before_id": result["next_before_id"]}
        next_url = f"{SECTION}?{urlencode(query)}"
    return shell.page(
        request,
        found,
        "admin/audit.html",
        section=SECTION,
        status_code=422 if errors else 200,
        title="Audit log",
        entries=rows,
        values=values,
        errors=errors,
        next_url=next_url,
    )

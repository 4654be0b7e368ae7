"""Queue endpoints: live figures, wrap-up codes and signatures of the configured queues.

Reads figures through services/agents.py and renders signatures through
services/signatures.py; it changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query

from postroom.domain.errors import NotFoundError
from postroom.services import agents as agent_svc
from postroom.services import signatures
from postroom.web.deps import Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1/queues", tags=["queues"])


@router.get("")
async def list_queues(ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    """Every queue: waiting, alerting, interacting, parked, wrap-up, longest waiting
    (seconds), agents on queue and today's achieved service level."""
    targets = agent_svc.service_level_targets(ctx.configured.queues, ctx.configured.calendars)
    figures = await anyio.to_thread.run_sync(
        agent_svc.queue_figures, ctx.db, ctx.configured.queue_names, ctx.clock(), targets
    )
    return {"queues": [f.to_json() for f in figures]}


@router.get("/{name}")
async def get_queue(name: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    """One queue's live figures and its wrap-up codes."""
    q = ctx.configured.queue(name)
    if q is None:
        raise NotFoundError(f"no queue {name!r}; queues: {', '.join(ctx.configured.queue_names)}")
    targets = agent_svc.service_level_targets([q], ctx.configured.calendars)
    (fig,) = await anyio.to_thread.run_sync(
        agent_svc.queue_figures, ctx.db, [name], ctx.clock(), targets
    )
    return fig.to_json() | {
        "wrapup_codes": list(q.wrapup_codes),
        "wrapup_prompt": q.wrapup_prompt,
        "signature": {"text": q.signature_text, "html": q.signature_html},
    }


@router.get("/{name}/signature")
async def signature(
    name: str,
    ctx: Ctx,
    user: CurrentUser,
    conversation_id: Annotated[
        RowId | None,
        Query(description="fill in its customer and reference (default: a new email)"),
    ] = None,
) -> dict[str, Any]:
    """The queue's signature rendered for you: text and sanitized HTML (null without one)."""
    q = ctx.configured.queue(name)
    if q is None:
        raise NotFoundError(f"no queue {name!r}; queues: {', '.join(ctx.configured.queue_names)}")
    rendered = await anyio.to_thread.run_sync(
        lambda: signatures.render_for(
            ctx.db, user, q, conversation_id, prefix=ctx.config.reference_prefix
        )
    )
    return {"queue": name, "conversation_id": conversation_id} | rendered.to_json()


@router.get("/{name}/wrapup-codes")
async def wrapup_codes(name: str, ctx: Ctx, _user: CurrentUser) -> dict[str, Any]:
    """The queue's wrap-up codes (empty: any code, or none, is accepted)."""
    q = ctx.configured.queue(name)
    if q is None:
        raise NotFoundError(f"no queue {name!r}; queues: {', '.join(ctx.configured.queue_names)}")
    return {"queue": name, "codes": list(q.wrapup_codes), "prompt": q.wrapup_prompt}

"""Why did this happen: a conversation's timeline and its routing story over HTTP.

Translation only: services/conversations/timeline.py reads and decides what each
user may see; nothing here changes a conversation.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter

from postroom.services.conversations import timeline as timeline_svc
from postroom.web.deps import CanSeeAllWork, Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


@router.get("/{conversation_id}/timeline")
async def get_timeline(conversation_id: RowId, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """The conversation's events and messages, oldest first; offers carry why they
    went to their agent for supervisors. Agents: conversations they may see."""
    entries = await anyio.to_thread.run_sync(
        lambda: timeline_svc.timeline(ctx.db, user, conversation_id)
    )
    return {"conversation_id": conversation_id, "entries": entries}


@router.get("/{conversation_id}/routing")
async def get_routing(conversation_id: RowId, ctx: Ctx, user: CanSeeAllWork) -> dict[str, Any]:
    """Every offer of the conversation with the router's explanation (supervisors)."""
    return await anyio.to_thread.run_sync(
        lambda: timeline_svc.routing_story(ctx.db, user, conversation_id)
    )

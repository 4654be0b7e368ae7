"""Supervisors' backlog and agent actions over HTTP (`/api/v1/...`).

Pydantic bodies at the edge; services/supervisor/backlog.py checks the parameters
against the configuration and asks the router, which decides. Conversation
actions need `act_on_backlog`; an agent's presence and work, `manage_agent_status`;
the agent board's figures, `see_all_work`. No routing logic here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from postroom.services import agents as agent_svc
from postroom.services.supervisor import backlog as svc
from postroom.services.supervisor import board
from postroom.web.deps import (
    AppContext,
    CanActOnBacklog,
    CanManageAgentStatus,
    CanSeeAllWork,
    Ctx,
    RowId,
)

router = APIRouter(prefix="/api/v1", tags=["backlog"])

AgentId = Annotated[str, Path(min_length=1, max_length=200, description="an agent id")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Skill = tuple[Name, Annotated[float, Field(ge=0, le=5)]]
Priority = Annotated[int, Field(ge=-svc.MAX_PRIORITY, le=svc.MAX_PRIORITY)]


class AssignIn(BaseModel):
    agent: Name = Field(description="the agent to give it to")
    mode: Literal["offer", "connect"] = Field(
        default="offer", description="offer (alert them, back to the queue if missed) or connect"
    )
    override_capacity: bool = Field(default=False, description="even past their capacity")


class MoveIn(BaseModel):
    queue: Name


class PriorityIn(BaseModel):
    priority: Priority | None = None
    skills: list[Skill] | None = Field(default=None, max_length=svc.MAX_SKILLS)


class CloseIn(BaseModel):
    reason: Literal["spam", "duplicate", "other"]
    note: str = Field(default="", max_length=svc.NOTE_MAX)


class BulkIn(BaseModel):
    ids: list[RowId] = Field(min_length=1, max_length=svc.MAX_BULK)
    action: Literal["assign", "move", "priority", "close"]
    agent: Name | None = None
    mode: Literal["offer", "connect"] = "offer"
    override_capacity: bool = False
    queue: Name | None = None
    priority: Priority | None = None
    skills: list[Skill] | None = Field(default=None, max_length=svc.MAX_SKILLS)
    reason: Literal["spam", "duplicate", "other"] | None = None
    note: str = Field(default="", max_length=svc.NOTE_MAX)


class BacklogOut(BaseModel):
    conversation_id: int
    action: str
    result: Literal["ok"] = "ok"


class ResultOut(BaseModel):
    id: int
    ok: bool
    error: str | None


class BulkOut(BaseModel):
    results: list[ResultOut]


class AgentActionOut(BaseModel):
    agent: str
    action: str
    result: Literal["ok"] = "ok"


def _params(ctx: AppContext, action: svc.Action, body: BaseModel) -> dict[str, Any]:
    agent_ids = [a["id"] for a in agent_svc.list_agents(ctx.db)]
    raw = body.model_dump(exclude={"ids", "action"})
    if raw.get("skills") is not None:
        raw["skills"] = [list(s) for s in raw["skills"]]
    return svc.check_params(action, raw, queues=ctx.configured.queue_names, agent_ids=agent_ids)


async def _one(
    ctx: AppContext, user_id: str, action: svc.Action, conversation_id: int, body: BaseModel
) -> BacklogOut:
    def run() -> None:
        data = _params(ctx, action, body)
        svc.one(
            ctx.db, ctx.clock, action, conversation_id, data,
            by=user_id, wait_s=ctx.config.request_wait_s,
        )  # fmt: skip

    await anyio.to_thread.run_sync(run)
    return BacklogOut(conversation_id=conversation_id, action=action)


@router.post("/conversations/bulk", response_model=BulkOut)
async def bulk(body: BulkIn, ctx: Ctx, user: CanActOnBacklog) -> BulkOut:
    """The same action on up to 1000 waiting conversations; one result per id
    (`ok`, or `error` saying why that one was refused)."""

    def run() -> list[svc.Outcome]:
        data = _params(ctx, body.action, body)
        return svc.submit(
            ctx.db, ctx.clock, body.action, body.ids, data,
            by=user.id, wait_s=max(ctx.config.request_wait_s, 30.0),
        )  # fmt: skip

    outcomes = await anyio.to_thread.run_sync(run)
    return BulkOut(results=[ResultOut(id=o.id, ok=o.ok, error=o.error) for o in outcomes])


@router.post("/conversations/{conversation_id}/assign", response_model=BacklogOut)
async def assign(
    conversation_id: RowId, body: AssignIn, ctx: Ctx, user: CanActOnBacklog
) -> BacklogOut:
    """Give a waiting conversation to an agent: offer it to them or connect it
    directly; refused (409) when they are at capacity unless `override_capacity`."""
    return await _one(ctx, user.id, "assign", conversation_id, body)


@router.post("/conversations/{conversation_id}/move", response_model=BacklogOut)
async def move(conversation_id: RowId, body: MoveIn, ctx: Ctx, user: CanActOnBacklog) -> BacklogOut:
    """Move a waiting conversation to another queue (its wait there starts now)."""
    return await _one(ctx, user.id, "move", conversation_id, body)


@router.post("/conversations/{conversation_id}/priority", response_model=BacklogOut)
async def priority(
    conversation_id: RowId, body: PriorityIn, ctx: Ctx, user: CanActOnBacklog
) -> BacklogOut:
    """Change a waiting conversation's priority and/or required skills (it keeps its wait)."""
    return await _one(ctx, user.id, "priority", conversation_id, body)


@router.post("/conversations/{conversation_id}/close", response_model=BacklogOut)
async def close(
    conversation_id: RowId, body: CloseIn, ctx: Ctx, user: CanActOnBacklog
) -> BacklogOut:
    """Close a waiting conversation with a reason (spam, duplicate, other + note)."""
    return await _one(ctx, user.id, "close", conversation_id, body)


@router.get("/supervisor/agents")
async def agents_board(ctx: Ctx, _user: CanSeeAllWork) -> dict[str, Any]:
    """Every agent: presence, routing status, time in it, holding/capacity, queues."""
    rows = await anyio.to_thread.run_sync(board.agent_board, ctx.db, ctx.clock())
    return {"agents": rows}


@router.post("/agents/{agent_id}/requeue", response_model=AgentActionOut)
async def requeue_agent(agent_id: AgentId, ctx: Ctx, _user: CanManageAgentStatus) -> AgentActionOut:
    """All of the agent's work back to its queues: offers withdrawn, connected and
    parked work queued again, wrap-up ended (code `requeued-by-supervisor`)."""
    await anyio.to_thread.run_sync(
        lambda: svc.agent_request(
            ctx.db, ctx.clock, agent_id, "requeue_agent", {}, wait_s=ctx.config.request_wait_s
        )
    )
    return AgentActionOut(agent=agent_id, action="requeue")


@router.post("/agents/{agent_id}/off-queue", response_model=AgentActionOut)
async def off_queue(agent_id: AgentId, ctx: Ctx, _user: CanManageAgentStatus) -> AgentActionOut:
    """Set the agent off queue (presence `available`): no more routed work for them."""
    off = {"presence": "available"}
    wait_s = ctx.config.request_wait_s
    await anyio.to_thread.run_sync(
        lambda: svc.agent_request(ctx.db, ctx.clock, agent_id, "presence", off, wait_s=wait_s)
    )
    return AgentActionOut(agent=agent_id, action="off_queue")

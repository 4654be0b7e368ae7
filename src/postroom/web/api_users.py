"""User endpoints: who exists, presence and routing status of agents.

Presence changes go to the router (web/actions.py); an agent may change and
read only their own, supervisors and admins anyone's (the permission table).
No user administration here: creating, editing and disabling users is in
web/admin/users.py.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from postroom.domain import permissions
from postroom.domain.errors import NotFoundError
from postroom.domain.permissions import Permission
from postroom.services import agents as agent_svc
from postroom.services import users as user_svc
from postroom.services.users import Forbidden
from postroom.web.actions import ask_router
from postroom.web.deps import Ctx, CurrentUser, allowed_for_agent

router = APIRouter(prefix="/api/v1/users", tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=200, description="a user name")]


class PresenceIn(BaseModel):
    presence: str = Field(
        max_length=40, description="on_queue, available, away, break, meal, ... or offline"
    )


def _agent_row(db: Any, agent_id: str) -> dict[str, Any]:
    for row in agent_svc.list_agents(db):
        if row["id"] == agent_id:
            return row
    raise NotFoundError(
        f"{agent_id!r} is not an agent; add one with `postroom user add --role agent`"
    )


def _not_disabled(db: Any, user_id: str) -> None:
    with contextlib.suppress(NotFoundError):  # an agent without a user row
        if user_svc.get_user(db, user_id).disabled:
            raise Forbidden(f"{user_id} is disabled; enable them with `postroom user enable`")


@router.get("")
async def list_users(ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """Everyone (supervisors and admins), or just yourself (agents)."""
    if not permissions.allows(user.role, Permission.SEE_ALL_WORK):
        return {"users": [user.to_json()]}
    rows = await anyio.to_thread.run_sync(user_svc.list_users, ctx.db)
    return {"users": [u.to_json() for u in rows]}


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, Any]:
    """The user you are logged in as."""
    return user.to_json()


@router.get("/{user_id}/routing-status")
async def routing_status(user_id: UserId, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """Presence, routing status, queues and the conversations an agent holds."""
    allowed_for_agent(
        user, user_id, ("read the routing status",), permission=Permission.SEE_ALL_WORK
    )
    return await anyio.to_thread.run_sync(_agent_row, ctx.db, user_id)


@router.put("/{user_id}/presence")
async def set_presence(
    user_id: UserId, body: PresenceIn, ctx: Ctx, user: CurrentUser
) -> dict[str, Any]:
    """Set presence; `on_queue` takes work, anything else stops new offers."""
    allowed_for_agent(user, user_id, ("set presence",))
    if body.presence != "offline":
        await anyio.to_thread.run_sync(_not_disabled, ctx.db, user_id)
    await ask_router(ctx, "presence", agent_id=user_id, data={"presence": body.presence})
    return await anyio.to_thread.run_sync(_agent_row, ctx.db, user_id)

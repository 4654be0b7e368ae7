"""Agent actions over HTTP: send a request to the router and wait for its answer.

Checks that the conversation is visible and held by the one asking; the router
decides whether the action is allowed in the conversation's state. A refusal
becomes RequestRefused (409), silence RouterUnavailable (503).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from postroom.services import agents as agent_svc
from postroom.services import conversations as conv_svc
from postroom.services.users import Forbidden, User
from postroom.web.deps import AppContext
from postroom.web.errors import RouterUnavailable


async def ask_router(
    ctx: AppContext,
    kind: str,
    *,
    agent_id: str | None,
    conversation_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    rid = await anyio.to_thread.run_sync(
        lambda: agent_svc.request(
            ctx.db,
            ctx.clock,
            kind,
            agent_id=agent_id,
            conversation_id=conversation_id,
            data=data,
        )
    )
    result = await anyio.to_thread.run_sync(
        agent_svc.wait_result, ctx.db, rid, ctx.config.request_wait_s
    )
    if result is None:
        raise RouterUnavailable(
            f"no router answered within {ctx.config.request_wait_s:g} s; the request stays "
            "queued and runs when a router starts: check that `postroom serve` runs the "
            "router role"
        )
    if result != "ok":
        reason = result.removeprefix("refused:").strip()
        raise agent_svc.RequestRefused(
            f"the router refused {kind}: {reason}; reload the conversation to see its state"
        )


async def conversation_action(
    ctx: AppContext,
    user: User,
    conversation_id: int,
    kind: str,
    data: dict[str, Any] | None = None,
) -> str:
    """Run `kind` for the agent holding the conversation; returns that agent's id."""
    holder = await anyio.to_thread.run_sync(conv_svc.holder, ctx.db, user, conversation_id)
    agent = holder.agent_id
    if kind == "wrapup" and agent is None and holder.state == "closed":
        agent = holder.last_agent  # optional wrap-up: the code may follow the end
    if user.sees_everything:
        if agent is None:
            raise agent_svc.RequestRefused(
                f"conversation {conversation_id} is {holder.state} and has no agent to act for"
            )
    elif agent != user.id:
        raise Forbidden(
            f"conversation {conversation_id} is not offered to or held by you; only its "
            "agent or a supervisor can do this"
        )
    await ask_router(ctx, kind, agent_id=agent, conversation_id=conversation_id, data=data)
    return str(agent)

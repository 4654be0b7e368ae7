"""The access rule, here and only here: an agent sees the conversations offered or
assigned to them and every conversation of a thread they took part in (were
connected to); supervisors and admins see everything. Anything an agent may not
see is reported as not found, so its existence does not leak. It reads; it
changes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError
from postroom.services.users import User
from postroom.store.schema import conversations, thread_agents


def _took_part_threads(user_id: str) -> sa.Select[Any]:
    # thread_agents is kept by the router (an index lookup, not a scan of events).
    return sa.select(thread_agents.c.thread_id).where(thread_agents.c.agent_id == user_id)


def visible_clause(user: User) -> sa.ColumnElement[bool]:
    """Which conversation rows `user` may read."""
    if user.sees_everything:
        return sa.true()
    return sa.or_(
        conversations.c.agent_id == user.id,
        conversations.c.thread_id.in_(_took_part_threads(user.id)),
    )


def visible_ids(db: sa.Engine, user: User, ids: Iterable[int]) -> set[int]:
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    if user.sees_everything:
        return set(wanted)
    with db.connect() as conn:
        return {
            int(i)
            for (i,) in conn.execute(
                sa.select(conversations.c.id).where(
                    conversations.c.id.in_(wanted), visible_clause(user)
                )
            )
        }


def ensure_visible(db: sa.Engine, user: User, conversation_id: int) -> None:
    if conversation_id not in visible_ids(db, user, [conversation_id]):
        raise NotFoundError(f"no conversation {conversation_id} that you can see")
    with db.connect() as conn:
        found = conn.execute(
            sa.select(conversations.c.id).where(conversations.c.id == conversation_id)
        ).first()
    if found is None:
        raise NotFoundError(f"no conversation {conversation_id} that you can see")



def audiences(db: sa.Engine, conversation_ids: Iterable[int]) -> dict[int, frozenset[str]]:
    """For each conversation, the agents who may see it (holder and thread participants).

    One query for a whole batch of events, shared by every stream of a process;
    the same rule as `visible_clause` for agents (supervisors and admins see all)."""
    wanted = sorted(set(conversation_ids))
    if not wanted:
        return {}
    out: dict[int, set[str]] = {cid: set() for cid in wanted}
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(conversations.c.id, conversations.c.agent_id, thread_agents.c.agent_id)
            .select_from(
                conversations.outerjoin(
                    thread_agents, thread_agents.c.thread_id == conversations.c.thread_id
                )
            )
            .where(conversations.c.id.in_(wanted))
        )
        for cid, holder, participant in rows:
            out[int(cid)].update(a for a in (holder, participant) if a)
    return {cid: frozenset(agents_) for cid, agents_ in out.items()}


@dataclass(frozen=True, slots=True)
class Holder:
    state: str
    agent_id: str | None
    last_agent: str | None
    queue: str


def holder(db: sa.Engine, user: User, conversation_id: int) -> Holder:
    """State and agent of a conversation the user can see."""
    ensure_visible(db, user, conversation_id)
    with db.connect() as conn:
        row = conn.execute(
            sa.select(
                conversations.c.state,
                conversations.c.agent_id,
                conversations.c.last_agent,
                conversations.c.queue,
            ).where(conversations.c.id == conversation_id)
        ).one()
    return Holder(row.state, row.agent_id, row.last_agent, row.queue)

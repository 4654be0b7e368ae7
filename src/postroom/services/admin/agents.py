"""Agents' routing settings and queue memberships as an administrator changes them.

An agent (a user with the agent role) has an `agents` row: queues, skills with
a proficiency 1–5, languages, email capacity 1–25. Every change is checked
against the queues and the catalogs, written with its audit entry and one
`agent_configured` routing request per agent in one transaction; the router
sends the engine `AgentConfigured` with the new queues, skills, languages and
capacity (an agent removed from a queue has their alerting offer of it
withdrawn by the engine). No HTTP here and no routing decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from postroom.domain.errors import NotFoundError
from postroom.routing.model import MAX_CAPACITY
from postroom.services.admin import audit, catalog
from postroom.services.admin.schema import Language, Name, SkillName
from postroom.services.users import InvalidField
from postroom.store.schema import agents, queues, routing_inbox

MAX_MEMBERS_PER_CALL = 100

AgentId = Annotated[str, Field(min_length=1, max_length=200)]


class AgentRouting(BaseModel):
    """An agent's routing settings (PUT replaces all of them)."""

    model_config = ConfigDict(extra="forbid")

    queues: list[Name] = Field(default_factory=list, max_length=500)
    skills: dict[SkillName, Annotated[int, Field(ge=1, le=5)]] = Field(
        default_factory=dict, max_length=100, description="skill name to proficiency 1–5"
    )
    languages: list[Language] = Field(default_factory=list, max_length=50)
    capacity: int = Field(default=1, ge=1, le=MAX_CAPACITY, description="emails at once, 1–25")


class Members(BaseModel):
    """Agents to add to or remove from a queue (at most 100 per call)."""

    model_config = ConfigDict(extra="forbid")

    agents: list[AgentId] = Field(min_length=1, max_length=MAX_MEMBERS_PER_CALL)


def _json(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "queues": list(row.queues),
        "skills": {str(n): round(float(p)) for n, p in row.skills},
        "languages": list(row.languages),
        "capacity": int(row.capacity),
        "presence": row.presence,
        "routing_status": row.routing_status,
    }


def list_agents(conn: sa.Connection) -> list[dict[str, Any]]:
    return [_json(r) for r in conn.execute(sa.select(agents).order_by(agents.c.id))]


def get_agent(conn: sa.Connection, agent_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(agents).where(agents.c.id == agent_id)).first()
    if row is None:
        raise NotFoundError(
            f"no agent {agent_id!r}; only users with the agent role have routing settings"
        )
    return _json(row)


def _queue_names(conn: sa.Connection) -> set[str]:
    return {str(n) for (n,) in conn.execute(sa.select(queues.c.name))}


def _announce(conn: sa.Connection, at: datetime, agent_id: str) -> None:
    conn.execute(
        routing_inbox.insert().values(at=at, kind="agent_configured", agent_id=agent_id, data={})
    )


def configure(
    db: sa.Engine, at: datetime, actor: audit.Actor, agent_id: str, settings: AgentRouting
) -> dict[str, Any]:
    """Replace the agent's queues, skills, languages and capacity."""
    with db.begin() as conn:
        before = get_agent(conn, agent_id)
        known = _queue_names(conn)
        for name in settings.queues:
            if name not in known:
                raise InvalidField("queues", f"no queue {name!r}; create it first")
        catalog.require(conn, "skill", settings.skills, "skills")
        catalog.require(conn, "language", settings.languages, "languages")
        conn.execute(
            agents.update()
            .where(agents.c.id == agent_id)
            .values(
                queues=list(dict.fromkeys(settings.queues)),
                skills=[[n, float(p)] for n, p in sorted(settings.skills.items())],
                languages=list(dict.fromkeys(settings.languages)),
                capacity=settings.capacity,
                updated_at=at,
            )
        )
        after = get_agent(conn, agent_id)
        audit.record(conn, at, actor, "agent.update", "agent", agent_id, before, after)
        _announce(conn, at, agent_id)
    return after


def members(conn: sa.Connection, queue: str) -> list[dict[str, Any]]:
    if queue not in _queue_names(conn):
        raise NotFoundError(f"no queue {queue!r}")
    return [a for a in list_agents(conn) if queue in a["queues"]]


def change_members(
    db: sa.Engine,
    at: datetime,
    actor: audit.Actor,
    queue: str,
    agent_ids: Sequence[str],
    *,
    member: bool,
) -> dict[str, Any]:
    """Add (`member`) or remove agents; one `agent_configured` request per agent whose
    memberships changed, one audit entry for the call. Unknown agents are refused
    before anything changes."""
    if len(agent_ids) > MAX_MEMBERS_PER_CALL:
        raise InvalidField("agents", f"at most {MAX_MEMBERS_PER_CALL} agents per call")
    wanted = list(dict.fromkeys(agent_ids))
    changed: list[str] = []
    with db.begin() as conn:
        if queue not in _queue_names(conn):
            raise NotFoundError(f"no queue {queue!r}")
        rows = {
            r.id: r for r in conn.execute(sa.select(agents).where(agents.c.id.in_(wanted)))
        }
        for agent_id in wanted:
            if agent_id not in rows:
                raise InvalidField("agents", f"no agent {agent_id!r}")
        for agent_id in wanted:
            current = list(rows[agent_id].queues)
            if member == (queue in current):
                continue
            new = [*current, queue] if member else [q for q in current if q != queue]
            conn.execute(
                agents.update().where(agents.c.id == agent_id).values(queues=new, updated_at=at)
            )
            _announce(conn, at, agent_id)
            changed.append(agent_id)
        if changed:
            audit.record(
                conn,
                at,
                actor,
                "queue.members_add" if member else "queue.members_remove",
                "queue",
                queue,
                None,
                {"agents": changed},
            )
    return {"queue": queue, "added" if member else "removed": changed}


def save_matrix(
    db: sa.Engine,
    at: datetime,
    actor: audit.Actor,
    wanted: dict[str, set[str]],
) -> list[str]:
    """The members page: each listed agent's queues become exactly `wanted[agent]`;
    the agents whose memberships changed (each announced and audited)."""
    changed = []
    with db.begin() as conn:
        known = _queue_names(conn)
        for agent_id, new in sorted(wanted.items()):
            row = conn.execute(sa.select(agents).where(agents.c.id == agent_id)).first()
            if row is None:
                raise InvalidField("agents", f"no agent {agent_id!r}")
            unknown = sorted(new - known)
            if unknown:
                raise InvalidField("queues", f"no queue {unknown[0]!r}")
            # Queues the page does not show (none today) are kept as they are.
            current = list(row.queues)
            kept = [q for q in current if q in new or q not in known]
            added = sorted(q for q in new if q not in current)
            if set(kept + added) == set(current):
                continue
            before = _json(row)
            conn.execute(
                agents.update()
                .where(agents.c.id == agent_id)
                .values(queues=kept + added, updated_at=at)
            )
            after = get_agent(conn, agent_id)
            audit.record(conn, at, actor, "agent.update", "agent", agent_id, before, after)
            _announce(conn, at, agent_id)
            changed.append(agent_id)
    return changed

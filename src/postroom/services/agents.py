"""Agent and queue use cases for the command line (the web API will share them).

Writes agents and routing requests; the router (services/routing.py) acts on
the requests. Reading queue figures is here too. No engine logic here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

import sqlalchemy as sa

from postroom.analytics.metrics import SHORT_ABANDON_S, Observation, ServiceTarget
from postroom.domain.calendars import BusinessCalendar
from postroom.domain.errors import NotFoundError, PostroomError
from postroom.domain.routes import QueueConfig
from postroom.routing.model import PRESENCES, AgentConfig, RoutingConfigError
from postroom.routing.service_level import achieved_percent
from postroom.services.analytics import service_level_waits, targets_of
from postroom.store.db import as_utc
from postroom.store.schema import agents, conversations, routing_inbox


class RequestRefused(PostroomError):
    """The router refused a request (e.g. accepting an offer that is not yours)."""


def add_agent(
    db: sa.Engine,
    clock: Callable[[], datetime],
    agent_id: str,
    *,
    name: str | None = None,
    queues: Sequence[str] | None = None,
    skills: Sequence[tuple[str, float]] | None = None,
    languages: Sequence[str] | None = None,
    capacity: int | None = None,
    known_queues: Sequence[str] = (),
    add_to_catalog: bool = False,
) -> None:
    """Create or update an agent; the router learns of it through the inbox.

    A field given as None keeps the agent's current value (a new agent gets the
    defaults: its id as name, no queues, skills or languages, capacity 1).
    `add_to_catalog` (the command line) adds skills and languages missing from
    the catalogs instead of leaving them unknown to the admin pages.
    """
    with db.connect() as conn:
        current = conn.execute(sa.select(agents).where(agents.c.id == agent_id)).first()
    if queues is None:
        queues = list(current.queues) if current is not None else []
    if skills is None:
        skills = [(str(n), float(p)) for n, p in (current.skills if current is not None else [])]
    if languages is None:
        languages = list(current.languages) if current is not None else []
    if capacity is None:
        capacity = int(current.capacity) if current is not None else 1
    if name is None:
        name = current.name if current is not None else agent_id
    unknown = [q for q in queues if q not in known_queues]
    if unknown:
        raise PostroomError(
            f"queue {unknown[0]!r} is not configured; known queues: {', '.join(known_queues)}"
        )
    try:
        AgentConfig(agent_id, frozenset(queues), tuple(skills), frozenset(languages), capacity)
    except RoutingConfigError as exc:
        raise PostroomError(str(exc)) from exc
    now = clock()
    values = {
        "name": name or agent_id,
        "queues": list(queues),
        "skills": [[n, p] for n, p in skills],
        "languages": list(languages),
        "capacity": capacity,
        "updated_at": now,
    }
    with db.begin() as conn:
        exists = conn.execute(sa.select(agents.c.id).where(agents.c.id == agent_id)).first()
        if exists:
            conn.execute(agents.update().where(agents.c.id == agent_id).values(**values))
        else:
            conn.execute(
                agents.insert().values(
                    id=agent_id, presence="offline", routing_status="off_queue", **values
                )
            )
        conn.execute(
            routing_inbox.insert().values(
                at=now, kind="agent_configured", agent_id=agent_id, data={}
            )
        )
        if add_to_catalog:
            from postroom.services.admin import catalog

            catalog.ensure(conn, now, "skill", [n for n, _ in skills])
            catalog.ensure(conn, now, "language", languages)


def request(
    db: sa.Engine,
    clock: Callable[[], datetime],
    kind: str,
    *,
    agent_id: str | None = None,
    conversation_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Queue a request for the router; returns its id (see `wait_result`)."""
    with db.begin() as conn:
        if agent_id is not None:
            row = conn.execute(sa.select(agents.c.id).where(agents.c.id == agent_id)).first()
            if row is None:
                raise NotFoundError(f"no agent {agent_id!r}; add one with `postroom agent add`")
        if conversation_id is not None:
            found = conn.execute(
                sa.select(conversations.c.id).where(conversations.c.id == conversation_id)
            ).first()
            if found is None:
                raise NotFoundError(f"no conversation {conversation_id}")
        if kind == "presence":
            presence = (data or {}).get("presence")
            if presence not in PRESENCES:
                raise PostroomError(f"presence must be one of {', '.join(PRESENCES)}")
            conn.execute(agents.update().where(agents.c.id == agent_id).values(presence=presence))
        return int(
            conn.execute(
                routing_inbox.insert()
                .values(
                    at=clock(),
                    kind=kind,
                    agent_id=agent_id,
                    conversation_id=conversation_id,
                    data=data or {},
                )
                .returning(routing_inbox.c.id)
            ).scalar_one()
        )


def wait_result(db: sa.Engine, request_id: int, timeout_s: float = 10.0) -> str | None:
    """The router's answer to a request, or None if no router answered in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.connect() as conn:
            result = conn.execute(
                sa.select(routing_inbox.c.result).where(routing_inbox.c.id == request_id)
            ).scalar()
        if result is not None:
            return str(result)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class QueueFigures:
    name: str
    waiting: int
    alerting: int
    interacting: int
    parked: int
    wrapup: int
    longest_waiting_s: float | None
    agents_on_queue: int
    service_level: AchievedServiceLevel | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "waiting": self.waiting,
            "alerting": self.alerting,
            "interacting": self.interacting,
            "parked": self.parked,
            "wrapup": self.wrapup,
            "longest_waiting_s": self.longest_waiting_s,
            "agents_on_queue": self.agents_on_queue,
        }
        if self.service_level is not None:
            out["service_level"] = self.service_level.to_json()
        return out


@dataclass(frozen=True, slots=True)
class TargetLevel:
    """Today's achieved service level against one of a queue's targets."""

    name: str
    answered_within: int
    target_percent: float
    threshold_s: float
    calendar: str | None


@dataclass(frozen=True, slots=True)
class AchievedServiceLevel:
    """Today's service level of one queue (since 00:00 UTC of the service clock's day),
    against its first target; `targets` holds every target's (the first first)."""

    answered: int
    answered_within: int
    abandoned: int
    target_percent: float
    threshold_s: float
    since: datetime
    targets: tuple[TargetLevel, ...] = ()

    def achieved(self, t: TargetLevel) -> float | None:
        return achieved_percent(t.answered_within, self.answered, self.abandoned)

    @property
    def percent(self) -> float | None:
        return achieved_percent(self.answered_within, self.answered, self.abandoned)

    def to_json(self) -> dict[str, Any]:
        pct = self.percent
        return {
            "percent": None if pct is None else round(pct, 1),
            "answered": self.answered,
            "answered_within": self.answered_within,
            "abandoned": self.abandoned,
            "target_percent": self.target_percent,
            "threshold_s": self.threshold_s,
            "since": self.since.isoformat(),
            "targets": [
                {
                    "name": t.name,
                    "percent": None if (p := self.achieved(t)) is None else round(p, 1),
                    "answered_within": t.answered_within,
                    "target_percent": t.target_percent,
                    "threshold_s": t.threshold_s,
                    "calendar": t.calendar,
                }
                for t in self.targets
            ],
        }


def service_level_targets(
    queues: Iterable[QueueConfig], calendars: Iterable[BusinessCalendar] = ()
) -> dict[str, tuple[ServiceTarget, ...]]:
    """Each queue's service-level targets, the first first, with their calendars
    (services/analytics/queries.py `targets_of`)."""
    return targets_of(queues, calendars)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _service_levels(
    conn: sa.Connection, targets: Mapping[str, Sequence[ServiceTarget]], since: datetime
) -> dict[str, AchievedServiceLevel]:
    """Answered and abandoned conversations per queue since `since`, as analytics counts
    them (services/analytics/queries.py `service_level_waits`, docs/analytics.md).

    Answered: a wait in the queue ended with an agent's answer; its wait is that
    queue segment's, from entering the queue to the answer, so a later transfer
    out neither moves nor restarts it; each target counts it in calendar time or
    in its calendar's business hours. Abandoned: closed while waiting in the
    queue, after more than the queue's short-abandon threshold (calendar seconds).
    """
    answered_obs, abandoned_obs = service_level_waits(conn, since)
    first_answer: dict[tuple[str, str], Observation] = {}
    for o in answered_obs:
        first_answer.setdefault((o.queue or "", o.conversation), o)
    out = {}
    for name, queue_targets in targets.items():
        if not queue_targets:
            continue
        first = queue_targets[0]
        threshold = SHORT_ABANDON_S if first.short_abandon_s is None else first.short_abandon_s
        waits = [o for (q, _), o in first_answer.items() if q == name]
        levels = tuple(
            TargetLevel(
                t.name,
                sum(1 for o in waits if t.wait(o) <= t.seconds),
                t.percent,
                t.seconds,
                t.calendar.name if t.calendar is not None else None,
            )
            for t in queue_targets
        )
        out[name] = AchievedServiceLevel(
            answered=len(waits),
            answered_within=levels[0].answered_within,
            abandoned=sum(1 for o in abandoned_obs if o.queue == name and o.value > threshold),
            target_percent=first.percent,
            threshold_s=first.seconds,
            since=since,
            targets=levels,
        )
    return out


def queue_figures(
    db: sa.Engine,
    names: Sequence[str],
    now: datetime,
    targets: Mapping[str, Sequence[ServiceTarget]] | None = None,
) -> list[QueueFigures]:
    """Live figures of the named queues. With `targets` (queue name to its service
    level targets, `service_level_targets`), also each queue's achieved service level
    today against each target."""
    since = datetime.combine(_utc(now).date(), dtime(0), tzinfo=UTC)
    with db.connect() as conn:
        levels = _service_levels(conn, targets, since) if targets is not None else {}
        counts: dict[tuple[str, str], int] = {
            (q, st): int(n)
            for q, st, n in conn.execute(
                sa.select(conversations.c.queue, conversations.c.state, sa.func.count())
                .where(conversations.c.state != "closed")
                .group_by(conversations.c.queue, conversations.c.state)
            )
        }
        oldest = {
            q: as_utc(t)
            for q, t in conn.execute(
                sa.select(conversations.c.queue, sa.func.min(conversations.c.enqueued_at))
                .where(conversations.c.state == "queued")
                .group_by(conversations.c.queue)
            )
        }
        agent_rows = conn.execute(
            sa.select(agents.c.queues).where(agents.c.routing_status != "off_queue")
        ).all()
    out = []
    for name in names:
        first = oldest.get(name)
        out.append(
            QueueFigures(
                name=name,
                waiting=counts.get((name, "queued"), 0),
                alerting=counts.get((name, "alerting"), 0),
                interacting=counts.get((name, "connected"), 0),
                parked=counts.get((name, "parked"), 0),
                wrapup=counts.get((name, "wrapup"), 0),
                longest_waiting_s=round((now - first).total_seconds(), 1) if first else None,
                agents_on_queue=sum(1 for (qs,) in agent_rows if name in qs),
                service_level=levels.get(name),
            )
        )
    return out


def list_agents(db: sa.Engine) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(agents).order_by(agents.c.id)).all()
        held: dict[str, list[dict[str, Any]]] = {}
        for cid, aid, state in conn.execute(
            sa.select(conversations.c.id, conversations.c.agent_id, conversations.c.state).where(
                conversations.c.agent_id.is_not(None), conversations.c.state != "closed"
            )
        ):
            held.setdefault(aid, []).append({"conversation": cid, "state": state})
    return [
        {
            "id": r.id,
            "name": r.name,
            "presence": r.presence,
            "routing_status": r.routing_status,
            "queues": r.queues,
            "capacity": r.capacity,
            "conversations": held.get(r.id, []),
        }
        for r in rows
    ]

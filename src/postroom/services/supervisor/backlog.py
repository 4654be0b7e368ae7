"""Supervisors' actions on waiting conversations and on agents' work.

Writes `routing_inbox` requests (one per conversation, all of a bulk action in one
transaction) and waits for the router's answers; the router decides and writes
every change with its event (services/routing.py `_supervisor_request`). Checks the
parameters before asking; never changes a conversation row itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError, PostroomError
from postroom.services.agents import RequestRefused
from postroom.store.schema import agents, conversations, routing_inbox

Action = Literal["assign", "move", "priority", "close"]
ACTIONS: tuple[Action, ...] = ("assign", "move", "priority", "close")
KINDS: dict[Action, str] = {
    "assign": "sv_assign",
    "move": "sv_move",
    "priority": "sv_priority",
    "close": "sv_close",
}
CLOSE_REASONS = ("spam", "duplicate", "other")
MAX_BULK = 1000
MAX_PRIORITY = 1_000_000
NOTE_MAX = 2000
MAX_SKILLS = 50


class BacklogActionRefused(RequestRefused):
    """The router refused a supervisor's action (the conversation is no longer
    waiting, the agent is at capacity, ...); the message says why."""


class InvalidBacklogAction(PostroomError):
    """The action's parameters are wrong (unknown queue or agent, no reason, ...)."""


class RouterSilent(PostroomError):
    """No router answered in time; the requests stay queued."""


@dataclass(frozen=True, slots=True)
class Outcome:
    id: int
    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "ok": self.ok, "error": self.error}


def check_params(
    action: Action,
    params: dict[str, Any],
    *,
    queues: Sequence[str],
    agent_ids: Sequence[str],
) -> dict[str, Any]:
    """The request data for `action`, or InvalidBacklogAction saying what to fix."""
    if action == "assign":
        agent = params.get("agent")
        if not isinstance(agent, str) or agent not in agent_ids:
            raise InvalidBacklogAction(
                f"assign needs `agent`, one of the agents ({', '.join(agent_ids[:20])})"
            )
        mode = params.get("mode") or "offer"
        if mode not in ("offer", "connect"):
            raise InvalidBacklogAction("assign `mode` must be offer or connect")
        override = bool(params.get("override_capacity"))
        return {"agent": agent, "mode": mode, "override_capacity": override}
    if action == "move":
        queue = params.get("queue")
        if not isinstance(queue, str) or queue not in queues:
            raise InvalidBacklogAction(f"move needs `queue`, one of {', '.join(queues)}")
        return {"queue": queue}
    if action == "priority":
        priority, skills = params.get("priority"), params.get("skills")
        if priority is None and skills is None:
            raise InvalidBacklogAction("priority needs `priority` or `skills` (or both)")
        out: dict[str, Any] = {}
        if priority is not None:
            if isinstance(priority, bool) or not isinstance(priority, int) or not (
                -MAX_PRIORITY <= priority <= MAX_PRIORITY
            ):
                raise InvalidBacklogAction(
                    f"`priority` must be a whole number from {-MAX_PRIORITY} to {MAX_PRIORITY}"
                )
            out["priority"] = priority
        if skills is not None:
            out["skills"] = _skills(skills)
        return out
    reason = params.get("reason")
    if reason not in CLOSE_REASONS:
        raise InvalidBacklogAction(f"close needs `reason`, one of {', '.join(CLOSE_REASONS)}")
    note = str(params.get("note") or "")
    if reason == "other" and not note.strip():
        raise InvalidBacklogAction("close with reason other needs a `note` saying why")
    if len(note) > NOTE_MAX:
        raise InvalidBacklogAction(f"the note is longer than {NOTE_MAX} characters")
    return {"reason": reason, "note": note}


def _skills(raw: Any) -> list[list[Any]]:
    problem = InvalidBacklogAction(
        f"`skills` must be a list of at most {MAX_SKILLS} [name, proficiency 0-5] pairs"
    )
    if not isinstance(raw, list) or len(raw) > MAX_SKILLS:
        raise problem
    out: list[list[Any]] = []
    for item in raw:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise problem
        name, level = item
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            raise problem
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 <= level <= 5:
            raise problem
        out.append([name, float(level)])
    return out


def submit(
    db: sa.Engine,
    clock: Callable[[], datetime],
    action: Action,
    ids: Sequence[int],
    data: dict[str, Any],
    *,
    by: str,
    wait_s: float = 10.0,
) -> list[Outcome]:
    """One router request per conversation (in one transaction), then the answers,
    in the order of `ids` (an id given twice is acted on once)."""
    wanted = list(dict.fromkeys(ids))
    if len(wanted) > MAX_BULK:
        raise InvalidBacklogAction(f"at most {MAX_BULK} conversations at once")
    now = clock()
    requests: dict[int, int] = {}
    with db.begin() as conn:
        known: set[int] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            known.update(
                int(i)
                for (i,) in conn.execute(
                    sa.select(conversations.c.id).where(conversations.c.id.in_(chunk))
                )
            )
        rows: list[dict[str, Any]] = [
            {
                "at": now,
                "kind": KINDS[action],
                "agent_id": None,
                "conversation_id": cid,
                "data": {**data, "by": by},
            }
            for cid in wanted
            if cid in known
        ]
        for row in rows:
            rid = conn.execute(
                routing_inbox.insert().values(**row).returning(routing_inbox.c.id)
            ).scalar_one()
            requests[int(row["conversation_id"])] = int(rid)
    answers = _wait(db, list(requests.values()), wait_s)
    out = []
    for cid in wanted:
        rid = requests.get(cid)
        if rid is None:
            out.append(Outcome(cid, False, f"no conversation {cid}"))
            continue
        result = answers.get(rid)
        if result is None:
            out.append(Outcome(cid, False, "no router answered in time; the request stays queued"))
        elif result == "ok":
            out.append(Outcome(cid, True))
        else:
            out.append(Outcome(cid, False, result.removeprefix("refused:").strip()))
    return out


def one(
    db: sa.Engine,
    clock: Callable[[], datetime],
    action: Action,
    conversation_id: int,
    data: dict[str, Any],
    *,
    by: str,
    wait_s: float = 10.0,
) -> None:
    """One action on one conversation; raises the error a person reads."""
    (result,) = submit(db, clock, action, [conversation_id], data, by=by, wait_s=wait_s)
    if result.ok:
        return
    error = result.error or ""
    if error.startswith("no conversation"):
        raise NotFoundError(error)
    if error.startswith("no router answered"):
        raise RouterSilent(
            f"no router answered within {wait_s:g} s; the request stays queued and runs "
            "when a router starts: check that `postroom serve` runs the router role"
        )
    raise BacklogActionRefused(
        f"the router refused to {action} conversation {conversation_id}: {error}; "
        "reload to see its state"
    )


def agent_request(
    db: sa.Engine,
    clock: Callable[[], datetime],
    agent_id: str,
    kind: Literal["requeue_agent", "presence"],
    data: dict[str, Any],
    *,
    wait_s: float = 10.0,
) -> None:
    """Requeue all of an agent's work, or set their presence (off queue)."""
    with db.begin() as conn:
        if conn.execute(sa.select(agents.c.id).where(agents.c.id == agent_id)).first() is None:
            raise NotFoundError(f"no agent {agent_id!r}")
        if kind == "presence":
            conn.execute(
                agents.update().where(agents.c.id == agent_id).values(presence=data["presence"])
            )
        rid = int(
            conn.execute(
                routing_inbox.insert()
                .values(at=clock(), kind=kind, agent_id=agent_id, data=data)
                .returning(routing_inbox.c.id)
            ).scalar_one()
        )
    result = _wait(db, [rid], wait_s).get(rid)
    if result is None:
        raise RouterSilent(
            f"no router answered within {wait_s:g} s; the request stays queued and runs "
            "when a router starts"
        )
    if result != "ok":
        raise BacklogActionRefused(
            f"the router refused it for agent {agent_id!r}: "
            f"{result.removeprefix('refused:').strip()}"
        )


def _wait(db: sa.Engine, request_ids: Sequence[int], timeout_s: float) -> dict[int, str]:
    """The answers the router gave to these requests within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    pending = set(request_ids)
    found: dict[int, str] = {}
    while pending:
        with db.connect() as conn:
            ids = sorted(pending)
            for start in range(0, len(ids), 500):
                for rid, result in conn.execute(
                    sa.select(routing_inbox.c.id, routing_inbox.c.result).where(
                        routing_inbox.c.id.in_(ids[start : start + 500]),
                        routing_inbox.c.result.is_not(None),
                    )
                ):
                    found[int(rid)] = str(result)
                    pending.discard(int(rid))
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return found

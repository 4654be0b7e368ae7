"""Random but valid event histories, as the services write them: conversations that are
offered, declined, time out, are answered, parked, transferred, wrapped up, abandoned;
agents' new emails; messages a rule discarded. Shared by the property tests and the
projector's integration tests (and bench/analytics.py later)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from postroom.analytics.details import EventRecord

QUEUES = ("support", "billing")
AGENTS = ("ann", "bob", "carl")
CODES = ("resolved", "spam", None)
T0 = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)


TAGS = ("vip", "refund", "billing-question")
PRESENCES = (("on_queue", "IDLE"), ("on_queue", "INTERACTING"), ("on_queue", "NOT_RESPONDING"),
             ("away", "OFF_QUEUE"), ("break", "OFF_QUEUE"), ("offline", "OFF_QUEUE"))  # fmt: skip


def _tags(cid: int) -> list[str]:
    # From the conversation id alone, so the other draws (and older histories) stay as they were.
    rnd = random.Random(cid * 7919)
    return sorted(t for t in TAGS if rnd.random() < 0.3)


def _conversation(
    rnd: random.Random, cid: int, start: datetime
) -> list[tuple[datetime, str, int | None, int | None, dict[str, Any]]]:
    out: list[tuple[datetime, str, int | None, int | None, dict[str, Any]]] = []
    t = start
    queue = rnd.choice(QUEUES)

    def ev(kind: str, message_id: int | None = None, **data: Any) -> None:
        out.append((t, kind, cid, message_id, data))

    def later(max_s: int) -> None:
        nonlocal t
        t += timedelta(seconds=rnd.randint(0, max_s))

    def state(frm: str, to: str, agent: str | None) -> None:
        ev("conversation_state_changed", **{"from": frm, "to": to, "agent": agent, "queue": queue})

    if rnd.random() < 0.1:  # an agent's new email
        agent = rnd.choice(AGENTS)
        ev("conversation_created", state="connected", queue=queue, agent=agent, origin="agent",
           route="help@example.com")  # fmt: skip
        later(300)
        ev("message_queued", source="agent")
        later(600)
        state("connected", "wrapup", agent)
        later(120)
        ev("conversation_closed", agent=agent, code=rnd.choice(CODES), **{"from": "wrapup"})
        return out
    ev("conversation_created", state="queued", queue=queue, enqueued_at=t.isoformat(),
       route_address=rnd.choice(("help@example.com", "sales@example.com")),
       tags=_tags(cid))  # fmt: skip
    ev("message_received", source="smtp", auto_kind=None)
    st = "queued"
    agent: str | None = None
    for _ in range(rnd.randint(1, 6)):
        later(900)
        if st in ("queued", "alerting"):
            r = rnd.random()
            if r < 0.1:
                ev("conversation_closed", agent=None, code=None, **{"from": st})  # abandoned
                return out
            if r < 0.2:  # a supervisor moves it to another queue
                queue = next(q for q in QUEUES if q != queue)
                state(st, "queued", None)
                st = "queued"
                continue
            agent = rnd.choice(AGENTS)
            ev("offer_created", agent=agent, queue=queue, rule="longest_idle",
               deadline=t.isoformat(), auto_answered=False)  # fmt: skip
            state(st, "alerting", agent)
            later(120)
            r = rnd.random()
            if r < 0.2:
                state("alerting", "queued", None)  # declined
                st = "queued"
            elif r < 0.35:
                ev("offer_timed_out", agent=agent)
                state("alerting", "queued", None)
                st = "queued"
            else:
                state("alerting", "connected", agent)
                st = "connected"
        elif st == "connected":
            r = rnd.random()
            if r < 0.3:
                ev("message_queued", source="agent")
            elif r < 0.45:
                state("connected", "parked", agent)
                st = "parked"
            elif r < 0.6:
                queue = rnd.choice(QUEUES)
                state("connected", "queued", None)  # transferred to a queue
                st, agent = "queued", None
            else:
                ev("message_received", source="smtp", auto_kind=None)
        elif st == "parked":
            ev("message_received", source="smtp", auto_kind=None)
            ev("park_returned", agent=agent, cause="reply", to_queue=False)
            state("parked", "connected", agent)
            st = "connected"
    later(600)
    if st == "connected":
        state("connected", "wrapup", agent)
        later(120)
        ev("conversation_closed", agent=agent, code=rnd.choice(CODES), **{"from": "wrapup"})
    elif st in ("queued", "alerting") and rnd.random() < 0.5:
        ev("conversation_closed", agent=None, code=None, **{"from": st})
    return out  # parked or still waiting: open at the end of the history


def history(
    seed: int,
    conversations: int = 30,
    span_h: float = 30.0,
    *,
    first_cid: int = 1,
    first_id: int = 1,
    t0: datetime = T0,
    agent_status: bool = True,
) -> list[EventRecord]:
    """Events of `conversations` conversations (and a few discarded messages), in id order."""
    rnd = random.Random(seed)
    raw: list[tuple[datetime, int, str, int | None, int | None, dict[str, Any]]] = []
    seq = 0
    for cid in range(first_cid, first_cid + conversations):
        start = t0 + timedelta(seconds=rnd.uniform(0, span_h * 3600))
        for at, kind, c, mid, data in _conversation(rnd, cid, start):
            seq += 1
            raw.append((at, seq, kind, c, mid, data))
        if rnd.random() < 0.1:
            seq += 1
            raw.append((start, seq, "message_discarded", None, 10_000 + cid,
                        {"stage": "rules", "reason": "spam"}))  # fmt: skip
    if agent_status:  # agents' presence changes, from a draw of their own
        prnd = random.Random(seed * 31 + 1)
        for _ in range(max(2, conversations // 2)):
            seq += 1
            at = t0 + timedelta(seconds=prnd.uniform(0, span_h * 3600))
            presence, status = prnd.choice(PRESENCES)
            raw.append((at, seq, "presence_changed", None, None,
                        {"agent": prnd.choice(AGENTS), "presence": presence, "routing_status": status}))  # fmt: skip
    raw.sort(key=lambda r: (r[0], r[1]))
    return [
        EventRecord(i, at, kind, c, data, message_id=mid)
        for i, (at, _, kind, c, mid, data) in enumerate(raw, start=first_id)
    ]

"""Routing use case: run the pure engine against the database.

The one active router reads requests from the `routing_inbox` table (written by
the pipeline, the CLI and later the web app, in any process), feeds them to the
engine with the time from an injected clock, and persists every decision with
its event in one transaction per batch, marking the requests done in it. On
start it rebuilds the engine from the database: connected, wrap-up and parked
work returns to its agent, each alerting offer stays with its agent until the
same deadline, agents who were not responding stay so, queued work is enqueued
again.

The engine decides; this module only translates rows to events and decisions
to rows. It opens no sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

import sqlalchemy as sa

from postroom.domain.calendars import BusinessCalendar
from postroom.domain.routes import QueueConfig
from postroom.routing import model as rm
from postroom.routing import views as rm_views
from postroom.routing.engine import Engine
from postroom.routing.explain import explain_offer
from postroom.services.configuration import ConfigSource
from postroom.store.db import as_utc
from postroom.store.schema import agents, conversations, events, routing_inbox, thread_agents

log = logging.getLogger("postroom.router")

# Requests a supervisor sends (services/supervisor/backlog.py): on one waiting
# conversation, or (`requeue_agent`) on all of one agent's work.
SUPERVISOR_REQUESTS = frozenset(
    {"sv_assign", "sv_move", "sv_priority", "sv_close", "requeue_agent"}
)

EventListener = Callable[[Sequence[dict[str, Any]]], None]

# Our routing statuses by their Genesys names, as `presence_changed` events carry them
# (Genesys' COMMUNICATING, non-ACD work, has no counterpart: an agent's own new email
# counts toward their load, so they are INTERACTING).
GENESYS_ROUTING_STATUS: dict[str, str] = {
    "off_queue": "OFF_QUEUE",
    "idle": "IDLE",
    "interacting": "INTERACTING",
    "not_responding": "NOT_RESPONDING",
}
# How far back a rebuild looks for each agent's last `presence_changed` event.
PRESENCE_LOOKBACK = 100_000


def service_level(
    q: QueueConfig, calendars: Mapping[str, BusinessCalendar] | None = None
) -> rm.ServiceLevel:
    """The engine's target for a queue: its first service-level target, counted in the
    business hours of that target's calendar (looked up in `calendars`; one that is not
    there counts in calendar time)."""
    first = q.targets[0]
    calendar = (calendars or {}).get(first.calendar) if first.calendar else None
    if first.calendar and calendar is None:
        log.warning(
            "queue %r: calendar %r of target %r is not configured; counting calendar time",
            q.name, first.calendar, first.name,
        )  # fmt: skip
    return rm.ServiceLevel(first.percent, first.seconds, calendar)


def engine_queue(
    q: QueueConfig, calendars: Mapping[str, BusinessCalendar] | None = None
) -> rm.QueueConfig:
    """The engine's view of a configured queue (raises RoutingConfigError when invalid);
    `calendars` by name, for the first target's business hours."""
    return rm.QueueConfig(
        queue_id=q.name,
        alert_timeout_s=float(q.alert_timeout_s),
        evaluation=q.evaluation,  # type: ignore[arg-type]
        scoring_method=q.scoring_method,  # type: ignore[arg-type]
        service_level=service_level(q, calendars),
        rings=tuple(
            rm.Ring(r.expansion_timeout_s, frozenset(r.skills_to_remove), r.remove_language)
            for r in q.rings
        ),
        wrapup_prompt=q.wrapup_prompt,  # type: ignore[arg-type]
        wrapup_timeout_s=float(q.wrapup_timeout_s),
        auto_answer=q.auto_answer,
        last_agent_routing_mode=q.last_agent_routing_mode,  # type: ignore[arg-type]
        last_agent_window_s=float(q.last_agent_window_s),
        park_timeout_s=float(q.park_timeout_s),
    )


def _ts(value: datetime | None) -> float | None:
    v = as_utc(value)
    return v.timestamp() if v is not None else None


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _agent_config(row: sa.Row[Any]) -> rm.AgentConfig:
    return rm.AgentConfig(
        agent_id=row.id,
        queues=frozenset(row.queues),
        skills=tuple((str(n), float(p)) for n, p in row.skills),
        languages=frozenset(row.languages),
        capacity=int(row.capacity),
    )


def _skills(raw: list[list[Any]] | None) -> tuple[rm.SkillRequirement, ...]:
    return tuple(rm.SkillRequirement(str(n), float(p)) for n, p in (raw or []))


_OFFER_RULES = frozenset(get_args(rm.OfferRule))


def _offer_rules(
    conn: sa.Connection, conversation_ids: Sequence[int]
) -> dict[tuple[int, str], str]:
    """The rule of the latest offer of each conversation to each agent (from its
    `offer_created` events), for restoring alerting offers."""
    found: dict[tuple[int, str], str] = {}
    ids = sorted(set(conversation_ids))
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(events.c.conversation_id, events.c.data)
            .where(
                events.c.kind == "offer_created",
                events.c.conversation_id.in_(ids[start : start + 500]),
            )
            .order_by(events.c.id)
        )
        for cid, data in rows:
            agent, rule = (data or {}).get("agent"), (data or {}).get("rule")
            if isinstance(agent, str) and isinstance(rule, str):
                found[(int(cid), agent)] = rule
    return found


def _logged_presences(conn: sa.Connection, wanted: set[str]) -> dict[str, tuple[str, str]]:
    """Each agent's last `presence_changed` (presence, routing status), newest first and
    no further back than PRESENCE_LOOKBACK events of that kind: an agent not found gets
    a new event on the first batch (a repeated state is harmless to analytics)."""
    found: dict[str, tuple[str, str]] = {}
    rows = conn.execute(
        sa.select(events.c.data)
        .where(events.c.kind == "presence_changed")
        .order_by(events.c.id.desc())
        .limit(PRESENCE_LOOKBACK)
        .execution_options(yield_per=2000)
    )
    for (data,) in rows:
        agent = (data or {}).get("agent")
        if isinstance(agent, str) and agent in wanted and agent not in found:
            found[agent] = (str(data.get("presence")), str(data.get("routing_status")))
            if len(found) == len(wanted):
                break
    rows.close()
    return found


class RoutingService:
    def __init__(
        self,
        db: sa.Engine,
        queues: Sequence[QueueConfig],
        clock: Callable[[], datetime],
        listeners: Sequence[EventListener] = (),
        *,
        live: ConfigSource | None = None,
        calendars: Sequence[BusinessCalendar] = (),
    ) -> None:
        self.db = db
        self.queues = {q.name: q for q in queues}
        # The business-hours calendars the queues' first targets name, by name.
        self.calendars = {c.name: c for c in calendars}
        # The stored configuration: a rebuild takes its queues from it (then
        # `queues` is only the start), and configuration requests re-read it.
        self.live = live
        self.clock = clock
        self.listeners = list(listeners)
        self.engine = Engine()
        # Raises when this process may no longer route (the router lock is lost),
        # inside the transaction that would commit decisions; set by the worker.
        self.fence: Callable[[sa.Connection], None] | None = None
        # Each agent's (presence, Genesys routing status) as the last `presence_changed`
        # event says; a batch that changes either writes a new one.
        self._logged: dict[str, tuple[str, str]] = {}
        # Conversations a request changed that it does not name (an agent's requeue).
        self._also_touched: set[str] = set()
        # Why each offer of the batch being handled went to its agent, by the Offer
        # decision's identity: computed right after the engine decided (later events
        # of the batch change its state), stored with the `offer_created` event.
        self._why: dict[int, dict[str, Any]] = {}

    # -- start ----------------------------------------------------------------

    def rebuild(self) -> None:
        """A fresh engine from the database, holding what agents were doing: held
        work with its agent, each alerting offer with its agent and deadline, agents
        who were not responding still not responding; queued work queued again."""
        now = self.clock().timestamp()
        if self.live is not None:
            snapshot = self.live.refresh()
            self.queues = {q.name: q for q in snapshot.queues}
            self.calendars = snapshot.calendars_by_name
        eng = Engine(
            queues=tuple(engine_queue(q, self.calendars) for q in self.queues.values())
        )
        with self.db.connect() as conn:
            agent_rows = conn.execute(sa.select(agents).order_by(agents.c.id)).all()
            open_convs = conn.execute(
                sa.select(conversations)
                .where(conversations.c.state != "closed")
                .order_by(conversations.c.enqueued_at, conversations.c.id)
            ).all()
            rules = _offer_rules(conn, [c.id for c in open_convs if c.state == "alerting"])
            self._logged = _logged_presences(conn, {row.id for row in agent_rows})
        for row in agent_rows:
            eng.handle(rm.AgentConfigured(now, _agent_config(row)))
        # Work an agent holds goes back to that agent as it was, whatever their
        # capacity: assigned (connected), then parked or ended into wrap-up.
        held = [
            c for c in open_convs if c.state in ("connected", "wrapup", "parked") and c.agent_id
        ]
        for c in held:
            if c.queue not in self.queues or eng.agent(c.agent_id) is None:
                continue
            cid = str(c.id)
            eng.handle(self._assigned(now, c, c.agent_id))
            if c.state == "parked":
                eng.handle(rm.Parked(now, cid))
            elif c.state == "wrapup":
                eng.handle(rm.ConversationEnded(now, cid))
        for row in agent_rows:
            eng.handle(rm.AgentPresenceChanged(now, row.id, row.presence))
            if row.routing_status == "not_responding":
                # They missed or declined an offer: still no work until they go on queue.
                eng.handle(rm.AgentNotResponding(now, row.id))
        self.engine = eng
        decisions: list[rm.Decision] = []
        # Each alerting offer stays with its agent until the same deadline (a request
        # the agent sent meanwhile is answered against it; a deadline that passed
        # while no router ran times out on the first tick). Only when its agent is
        # gone is it queued again, and that agent told the offer is withdrawn.
        def restorable(c: sa.Row[Any]) -> bool:
            # Its agent is still there and still a member of the offer's queue (an
            # agent removed from it while no router ran loses the offer, as they
            # would have live); a direct transfer or park return is theirs anyway.
            view = eng.agent(c.agent_id) if c.agent_id else None
            if view is None:
                return False
            rule = rules.get((int(c.id), c.agent_id))
            return c.queue in view.queues or rule in ("direct_transfer", "park_return")

        for c in open_convs:
            if c.state == "alerting" and c.queue in self.queues and restorable(c):
                restored = self._restored(now, c, rules.get((int(c.id), c.agent_id)))
                decisions.extend(self._handle(restored))
        # Then the waiting ones, oldest first (an offer is made as each one enters).
        for c in open_convs:
            if c.state not in ("queued", "alerting") or c.queue not in self.queues:
                continue
            if c.state == "alerting":
                if restorable(c):
                    continue
                if c.agent_id:
                    gone = eng.agent(c.agent_id) is None
                    reason: Literal["agent_unknown", "left_queue"] = (
                        "agent_unknown" if gone else "left_queue"
                    )
                    decisions.append(rm.OfferWithdrawn(now, str(c.id), c.agent_id, reason))
            decisions.extend(self._handle(self._enqueued(now, c)))
        # The agents' stored routing status is made to say what the engine now
        # derives (one change each at most): a presence set while no router ran is
        # already in the agent's row, so its request changes nothing in the engine.
        decisions = [d for d in decisions if not isinstance(d, rm.RoutingStatusChanged)]
        for row in agent_rows:
            view = eng.agent(row.id)
            if view is not None and view.status != row.routing_status:
                old = cast(rm.RoutingStatus, row.routing_status)
                decisions.append(rm.RoutingStatusChanged(now, row.id, old, view.status))
        self._persist(decisions, [], {str(c.id) for c in open_convs}, {})

    def _restored(self, now: float, c: sa.Row[Any], rule: str | None) -> rm.OfferRestored:
        deadline = _ts(c.offer_deadline)
        if deadline is None:  # (not written by this router) a fresh alert time
            deadline = now + float(self.queues[c.queue].alert_timeout_s)
        known = cast(rm.OfferRule, rule) if rule in _OFFER_RULES else None
        return rm.OfferRestored(
            now,
            str(c.id),
            c.queue,
            c.agent_id,
            deadline,
            priority=int(c.priority),
            skills=_skills(c.skills),
            language=c.language,
            enqueued_at=_ts(c.enqueued_at),
            rule=known,
            # A transfer to the agent (or an earlier park return) falls back to the
            # queue if missed, as it would have before the restart.
            direct=known in ("direct_transfer", "park_return"),
            last_agent_id=c.last_agent,
            last_agent_at=_ts(c.last_agent_at),
        )

    def _enqueued(self, now: float, c: sa.Row[Any]) -> rm.Enqueued:
        # The route's preferred window and deadline are stored as instants: what is
        # left of the window is handed over, so a restart does not renew it. The
        # engine drops both when it restarts the wait (a transfer), which moves
        # enqueued_at past created_at; a rebuild then must not bring them back.
        entered, created = _ts(c.enqueued_at), _ts(c.created_at)
        original = entered is None or created is None or entered <= created
        preferred = tuple(str(a) for a in (c.preferred_agents or ())) if original else ()
        until = _ts(c.preferred_until)
        window = max(0.0, until - now) if preferred and until is not None else 0.0
        deadline = _ts(c.deadline_at) if original else None
        return rm.Enqueued(
            now,
            str(c.id),
            c.queue,
            priority=int(c.priority),
            skills=_skills(c.skills),
            language=c.language,
            preferred_agents=preferred,
            preferred_window_s=window,
            last_agent_id=c.last_agent,
            last_agent_at=_ts(c.last_agent_at),
            deadline=deadline,
            enqueued_at=entered,  # waiting counts from arrival, across restarts
        )

    @staticmethod
    def _assigned(now: float, c: sa.Row[Any], agent: str) -> rm.ConversationAssigned:
        return rm.ConversationAssigned(
            now,
            str(c.id),
            c.queue,
            agent,
            priority=int(c.priority),
            skills=_skills(c.skills),
            language=c.language,
        )

    # -- steady state ------------------------------------------------------------

    def poll(self, limit: int = 500) -> int:
        """Handle new inbox requests and due timers; return how many requests."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(routing_inbox)
                # Not "id > last seen": on PostgreSQL a lower id can commit after a
                # higher one was read, and would be skipped for ever.
                .where(routing_inbox.c.done_at.is_(None))
                .order_by(routing_inbox.c.id)
                .limit(limit)
            ).all()
        decisions: list[rm.Decision] = []
        results: list[tuple[int, str]] = []
        touched: set[str] = set()
        codes: dict[str, str] = {}
        late: dict[str, str] = {}  # codes for conversations closed before this batch
        for row in rows:
            now = self.clock().timestamp()
            if row.kind == "wrapup" and row.conversation_id is not None:
                key = str(row.conversation_id)
                gone = self.engine.conversation(key) is None
                if gone and key in touched:  # ended earlier in this same batch
                    codes[key] = str((row.data or {}).get("code") or "")
                    results.append((row.id, "ok"))
                    continue
                if gone and self._late_wrapup_code(row):
                    late[key] = str((row.data or {}).get("code") or "")
                    results.append((row.id, "ok"))
                    continue
            out: list[rm.Decision] = []
            try:
                event = self._event_for(row, now)
            except (ValueError, rm.RoutingConfigError) as exc:
                results.append((row.id, f"refused: {exc}"))
                continue
            for ev in event:
                out.extend(self._handle(ev))
                moved = getattr(ev, "conversation_id", None)
                if row.kind == "queue_moved" and moved:  # many conversations, none on the request
                    touched.add(str(moved))
            touched.update(self._also_touched)
            self._also_touched.clear()
            rejected = [d for d in out if isinstance(d, rm.Rejected)]
            results.append((row.id, f"refused: {rejected[0].reason}" if rejected else "ok"))
            known = row.conversation_id is not None and (
                not rejected or self.engine.conversation(str(row.conversation_id)) is not None
            )
            if known:  # see _persist: refusals about unknown conversations mirror nothing
                touched.add(str(row.conversation_id))
                if row.kind == "wrapup" and not rejected:
                    codes[str(row.conversation_id)] = str((row.data or {}).get("code") or "")
            decisions.extend(out)
        wake = self.engine.next_wakeup()
        if wake is not None and wake <= self.clock().timestamp():
            decisions.extend(self._handle(rm.Tick(self.clock().timestamp())))
        if rows or decisions:
            self._persist(decisions, results, touched, codes, late)
        return len(rows)

    def _handle(self, event: rm.Event) -> list[rm.Decision]:
        """The engine's decisions for `event`, each offer's explanation kept for
        `_persist` (computed now, while the engine's state is the decision's)."""
        out = self.engine.handle(event)
        offers = [d for d in out if isinstance(d, rm.Offer)]
        if offers:
            agents_now = self.engine.agents()
            after: dict[str, int] = {}
            for offer in reversed(offers):  # offers later in the event, per agent
                why = explain_offer(self.engine, offer, agents_now, after)
                if why is not None:
                    self._why[id(offer)] = why.to_data()
                after[offer.agent_id] = after.get(offer.agent_id, 0) + 1
        return out

    def _late_wrapup_code(self, row: sa.Row[Any]) -> bool:
        """With optional wrap-up the conversation closes when the agent ends it; can
        the code the agent gives afterwards still be recorded? (Written in `_persist`,
        in the transaction that answers the request.)"""
        with self.db.connect() as conn:
            found = conn.execute(
                sa.select(conversations.c.id).where(
                    conversations.c.id == row.conversation_id,
                    conversations.c.state == "closed",
                    conversations.c.last_agent == row.agent_id,
                    conversations.c.wrapup_code.is_(None),
                )
            ).first()
        return found is not None

    def next_wakeup(self) -> datetime | None:
        wake = self.engine.next_wakeup()
        return _dt(wake) if wake is not None else None

    def _event_for(self, row: sa.Row[Any], now: float) -> list[rm.Event]:
        cid = str(row.conversation_id) if row.conversation_id is not None else ""
        data = row.data or {}
        kind = row.kind
        if kind == "enqueued":
            with self.db.connect() as conn:
                c = conn.execute(
                    sa.select(conversations).where(conversations.c.id == row.conversation_id)
                ).first()
            if c is None or c.state != "queued":
                raise ValueError("the conversation is not waiting")
            if c.queue not in self.queues:
                raise ValueError(f"queue {c.queue!r} is not configured")
            return [self._enqueued(now, c)]
        if kind == "agent_configured":
            with self.db.connect() as conn:
                a = conn.execute(sa.select(agents).where(agents.c.id == row.agent_id)).first()
            if a is None:
                raise ValueError(f"no agent {row.agent_id!r}")
            return [rm.AgentConfigured(now, _agent_config(a))]
        if kind == "presence":
            presence = str(data.get("presence"))
            if presence not in rm.PRESENCES:
                raise ValueError(f"presence must be one of {', '.join(rm.PRESENCES)}")
            return [rm.AgentPresenceChanged(now, row.agent_id, presence)]
        if kind == "accept":
            return [rm.OfferAccepted(now, cid, row.agent_id)]
        if kind == "decline":
            return [rm.OfferDeclined(now, cid, row.agent_id)]
        if kind == "end":
            return [rm.ConversationEnded(now, cid)]
        if kind == "wrapup":
            return [rm.WrapupCompleted(now, cid, str(data.get("code") or ""))]
        if kind == "park":
            return [rm.Parked(now, cid)]
        if kind == "unparked":  # the customer replied (intake)
            return [rm.Unparked(now, cid)]
        if kind == "take_back":  # the agent resumes it
            return [rm.TakenBack(now, cid, str(row.agent_id))]
        if kind == "transfer_queue":
            return [rm.Requeued(now, cid, str(data["queue"]))]
        if kind == "transfer_agent":
            return [rm.TransferredToAgent(now, cid, str(data["agent"]))]
        if kind == "adopt":
            return self._adopt(row, now)
        if kind in SUPERVISOR_REQUESTS:  # a supervisor acts on the backlog or on an agent
            return self._supervisor_request(row, now)
        if kind == "config_changed":  # an admin changed queues (services/configuration.py)
            return self._queues_changed(now)
        if kind == "merged":  # merged into another (services/supervisor/threads.py)
            return self._merged(now, cid)
        if kind == "queue_moved":  # a queue was deleted with a target (services/admin/queues.py)
            return self._queue_moved(now, str(data.get("from")), str(data.get("to")))
        raise ValueError(f"unknown request {kind!r}")

    def _queues_changed(self, now: float) -> list[rm.Event]:
        """The stored configuration moved on: every queue that is new or changed is
        configured in the engine again (`QueueConfigured`); waiting work keeps its
        place. A queue that is gone stops taking new work here (its conversations
        were moved before it could be deleted)."""
        if self.live is None:
            return []
        snapshot = self.live.refresh()
        calendars = snapshot.calendars_by_name
        out: list[rm.Event] = []
        for q in snapshot.queues:
            old = self.queues.get(q.name)
            # A queue changes for the engine when its settings do, or when the
            # calendar its first target counts in was edited.
            if (
                old is None
                or old != q
                or engine_queue(old, self.calendars) != engine_queue(q, calendars)
            ):
                out.append(rm.QueueConfigured(now, engine_queue(q, calendars)))
        self.queues = {q.name: q for q in snapshot.queues}
        self.calendars = calendars
        return out

    def _queue_moved(self, now: float, old: str, new: str) -> list[rm.Event]:
        """Queue `old` was deleted with `new` as the target: waiting work (queued or
        alerting, its offer withdrawn) is queued again in `new` as after a transfer;
        held work (connected, wrap-up, parked) keeps its agent and gets `new` as its
        queue. A queued row the engine never took in is enqueued into `new`."""
        if self.engine.queue(new) is None:
            raise ValueError(f"queue {new!r} is not configured")
        out: list[rm.Event] = []
        held = set()
        for c in self.engine.conversations():
            if c.queue_id != old:
                continue
            held.add(c.conversation_id)
            if c.state in ("queued", "alerting"):
                out.append(rm.Requeued(now, c.conversation_id, new))
            elif c.state in ("connected", "wrapup", "parked"):
                out.append(rm.QueueReassigned(now, c.conversation_id, new))
        with self.db.connect() as conn:
            stray = conn.execute(
                sa.select(conversations).where(
                    conversations.c.queue == old, conversations.c.state == "queued"
                )
            ).all()
        for row in stray:
            if str(row.id) not in held:
                out.append(replace(self._enqueued(now, row), queue_id=new))
        return out

    def _merged(self, now: float, cid: str) -> list[rm.Event]:
        """A waiting conversation was merged into another (its messages moved there):
        it leaves its queue, its offer withdrawn (`ConversationEnded`). One the engine
        does not hold, or holds closed, needs nothing; one an agent took meanwhile
        ends as the agent's End would (into wrap-up)."""
        view = self.engine.conversation(cid)
        if view is None or view.state == "closed":
            return []
        return [rm.ConversationEnded(now, cid)]

    # -- supervisors' requests (services/supervisor/backlog.py writes them) ---------

    def _supervisor_request(self, row: sa.Row[Any], now: float) -> list[rm.Event]:
        """One supervisor action as engine events; ValueError refuses it (the
        message is the answer the supervisor reads)."""
        cid = str(row.conversation_id) if row.conversation_id is not None else ""
        data = row.data or {}
        kind = row.kind
        if kind == "requeue_agent":
            return self._requeue_agent(row, now)
        view = self.engine.conversation(cid)
        if view is None:
            raise ValueError(f"conversation {cid} is not waiting (it is not being routed)")
        if kind == "sv_assign":
            mode: Literal["offer", "connect"] = (
                "connect" if data.get("mode") == "connect" else "offer"
            )
            return [
                rm.SupervisorAssigned(
                    now, cid, str(data.get("agent")), mode, bool(data.get("override_capacity"))
                )
            ]
        if kind == "sv_move":
            queue = str(data.get("queue"))
            if view.state not in ("queued", "alerting"):
                raise ValueError(f"conversation is {view.state}; only waiting work can be moved")
            if queue == view.queue_id:
                raise ValueError(f"conversation is already in queue {queue!r}")
            return [rm.Requeued(now, cid, queue)]
        if kind == "sv_priority":
            priority = data.get("priority")
            raw = data.get("skills")
            return [
                rm.Reprioritized(
                    now,
                    cid,
                    int(priority) if priority is not None else None,
                    _skills(raw) if raw is not None else None,
                )
            ]
        reason, note = str(data.get("reason")), str(data.get("note", ""))
        return [rm.SupervisorDiscarded(now, cid, reason, note)]

    def _requeue_agent(self, row: sa.Row[Any], now: float) -> list[rm.Event]:
        """All of an agent's work back to its queues; those conversations are mirrored
        even when the engine makes no decision about them."""
        view = self.engine.agent(str(row.agent_id))
        if view is None:
            raise ValueError(f"no agent {row.agent_id!r}")
        self._also_touched.update((*view.load, *view.parked))
        return [rm.AgentWorkRequeued(now, view.agent_id)]

    # -- agent-initiated conversations ---------------------------------------------

    def _adopt(self, row: sa.Row[Any], now: float) -> list[rm.Event]:
        """A conversation an agent started (a new email, already `connected` to them
        in the database) becomes that agent's work: one `ConversationAssigned`. It
        counts toward their capacity at once, even past it; nobody is offered
        anything; their presence is left as it is. The held-conversation limit is
        the API's to enforce (a rebuild assigns held work whatever its count).
        Raises ValueError (the request is refused) when the database does not say
        it is theirs, or the queue or agent is unknown here."""
        cid, agent = str(row.conversation_id), str(row.agent_id)
        if self.engine.conversation(cid) is not None:
            return []  # a rebuild after a restart took it in as held work already
        with self.db.connect() as conn:
            c = conn.execute(
                sa.select(conversations).where(conversations.c.id == row.conversation_id)
            ).first()
        if c is None or c.state != "connected" or c.agent_id != agent:
            raise ValueError(f"conversation {cid} is not connected to {agent!r}")
        if c.queue not in self.queues:
            raise ValueError(f"queue {c.queue!r} is not configured")
        a = self.engine.agent(agent)
        if a is None:
            raise ValueError(f"no agent {agent!r}")
        return [self._assigned(now, c, agent)]

    # -- persistence ---------------------------------------------------------------

    def _persist(
        self,
        decisions: Sequence[rm.Decision],
        results: Sequence[tuple[int, str]],
        touched: set[str],
        codes: dict[str, str],
        late_codes: dict[str, str] | None = None,
    ) -> None:
        published: list[dict[str, Any]] = []
        now = self.clock()
        for d in decisions:
            cid = getattr(d, "conversation_id", None)
            # A refusal about a conversation the engine does not hold (one it could
            # not take in) must not close the database's row through the mirror.
            if cid is not None and (
                not isinstance(d, rm.Rejected) or self.engine.conversation(cid) is not None
            ):
                touched.add(cid)
            if isinstance(d, rm.WrapupTimedOut):
                codes[d.conversation_id] = d.code
        try:
            self._write(decisions, results, touched, codes, late_codes, published, now)
        finally:
            self._why.clear()  # keyed by identity: never kept past its batch
        # Listeners hear of changes only once they are committed.
        for listener in self.listeners:
            try:
                listener(published)
            except Exception:
                log.exception("event listener failed")

    def _write(
        self,
        decisions: Sequence[rm.Decision],
        results: Sequence[tuple[int, str]],
        touched: set[str],
        codes: dict[str, str],
        late_codes: dict[str, str] | None,
        published: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """The batch's transaction (see `_persist`)."""
        with self.db.begin() as conn:
            if self.fence is not None:
                self.fence(conn)
            for inbox_id, result in results:
                conn.execute(
                    routing_inbox.update()
                    .where(routing_inbox.c.id == inbox_id)
                    .values(done_at=now, result=result)
                )
            for d in decisions:
                published.extend(self._apply(conn, d, now))
            for cid in sorted(touched, key=int):
                published.extend(self._mirror(conn, cid, now, codes.get(cid)))
            presence_events, logged = self._presence_events(conn, now)
            published.extend(presence_events)
            for cid, code in (late_codes or {}).items():
                changed = conn.execute(
                    conversations.update()
                    .where(conversations.c.id == int(cid), conversations.c.wrapup_code.is_(None))
                    .values(wrapup_code=code)
                ).rowcount
                if changed:  # in the event log too: analytics reads the code from there
                    published.append(
                        self._event(conn, now, "wrapup_code_recorded", cid, {"code": code})
                    )
        self._logged.update(logged)  # only once committed

    def _presence_events(
        self, conn: sa.Connection, now: datetime
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
        """A `presence_changed` event for every agent whose presence or routing status
        differs from their last one (the engine is the truth once a batch is handled),
        and the states they record."""
        out, logged = [], {}
        for view in self.engine.agents():
            state = (str(view.presence), GENESYS_ROUTING_STATUS[view.status])
            if self._logged.get(view.agent_id) == state:
                continue
            logged[view.agent_id] = state
            data = {"agent": view.agent_id, "presence": state[0], "routing_status": state[1]}
            out.append(self._event(conn, now, "presence_changed", None, data))
        return out, logged

    def _event(
        self, conn: sa.Connection, now: datetime, kind: str, cid: str | None, data: dict[str, Any]
    ) -> dict[str, Any]:
        conv_id = int(cid) if cid else None
        eid = conn.execute(
            events.insert()
            .values(at=now, kind=kind, conversation_id=conv_id, data=data)
            .returning(events.c.id)
        ).scalar_one()
        return {
            "id": eid,
            "at": now.isoformat(),
            "kind": kind,
            "conversation_id": conv_id,
            "data": data,
        }

    def _mirror(
        self, conn: sa.Connection, cid: str, now: datetime, code: str | None
    ) -> list[dict[str, Any]]:
        """Make the conversation's row say what the engine now holds about it."""
        row = conn.execute(sa.select(conversations).where(conversations.c.id == int(cid))).first()
        if row is None:
            return []
        view = self.engine.conversation(cid)
        if view is None or view.state == "closed":
            if row.state == "closed":
                return []
            agent = row.agent_id or (view.agent_id if view else None)
            conn.execute(
                conversations.update()
                .where(conversations.c.id == row.id)
                .values(
                    state="closed",
                    closed_at=now,
                    agent_id=None,
                    offer_deadline=None,
                    wrapup_code=code or row.wrapup_code,
                    last_agent=agent or row.last_agent,
                    last_agent_at=now if agent else row.last_agent_at,
                )
            )
            return [
                self._event(
                    conn,
                    now,
                    "conversation_closed",
                    cid,
                    {"agent": agent, "code": code, "from": row.state},
                )
            ]
        deadline = _dt(view.offer_deadline) if view.offer_deadline is not None else None
        published = self._requirements(conn, row, view, now)
        if (row.state, row.agent_id, row.queue) == (view.state, view.agent_id, view.queue_id):
            # Same state, agent and queue (e.g. offered again to the same agent, or
            # restored): the row still carries the current offer deadline.
            if as_utc(row.offer_deadline) != deadline:
                conn.execute(
                    conversations.update()
                    .where(conversations.c.id == row.id)
                    .values(offer_deadline=deadline)
                )
            return published
        if view.state == "connected" and view.agent_id:
            took_part = sa.select(thread_agents.c.thread_id).where(
                thread_agents.c.thread_id == row.thread_id,
                thread_agents.c.agent_id == view.agent_id,
            )
            if conn.execute(took_part).first() is None:
                conn.execute(
                    thread_agents.insert().values(thread_id=row.thread_id, agent_id=view.agent_id)
                )
        values: dict[str, Any] = {
            "state": view.state,
            "agent_id": view.agent_id,
            "queue": view.queue_id,
            "offer_deadline": deadline,
        }
        if view.state in ("queued", "alerting"):
            # A transfer into a queue restarts the wait; reports and restarts read it here.
            values["enqueued_at"] = _dt(view.enqueued_at)
        conn.execute(conversations.update().where(conversations.c.id == row.id).values(**values))
        return [
            *published,
            self._event(
                conn,
                now,
                "conversation_state_changed",
                cid,
                {
                    "from": row.state,
                    "to": view.state,
                    "agent": view.agent_id,
                    "queue": view.queue_id,
                },
            )
        ]

    def _requirements(
        self, conn: sa.Connection, row: sa.Row[Any], view: rm_views.ConversationView, now: datetime
    ) -> list[dict[str, Any]]:
        """A priority or required skills a supervisor changed, written to the row with
        a `requirements_changed` event."""
        if int(row.priority) == view.priority and _skills(row.skills) == view.skills:
            return []
        skills = [[s.name, s.min_proficiency] for s in view.skills]
        conn.execute(
            conversations.update()
            .where(conversations.c.id == row.id)
            .values(priority=view.priority, skills=skills)
        )
        data = {"priority": view.priority, "skills": skills, "old_priority": int(row.priority)}
        return [self._event(conn, now, "requirements_changed", str(row.id), data)]

    def _apply(self, conn: sa.Connection, d: rm.Decision, now: datetime) -> list[dict[str, Any]]:
        """Events for the decisions; the conversation rows follow in `_mirror`."""
        if isinstance(d, rm.Offer):
            log.info(
                "offer",
                extra={"conversation_id": d.conversation_id, "agent": d.agent_id, "rule": d.rule},
            )
            data: dict[str, Any] = {
                "agent": d.agent_id,
                "deadline": _dt(d.deadline).isoformat(),
                "rule": d.rule,
                "queue": d.queue_id,
                "auto_answered": d.auto_answered,
            }
            why = self._why.pop(id(d), None)
            if why is not None:
                data["why"] = why  # routing/explain.py OfferExplanation.to_data
            return [self._event(conn, now, "offer_created", d.conversation_id, data)]
        if isinstance(d, rm.OfferExpired):
            return [
                self._event(conn, now, "offer_timed_out", d.conversation_id, {"agent": d.agent_id})
            ]
        if isinstance(d, rm.OfferWithdrawn):
            data = {"agent": d.agent_id, "reason": d.reason}
            return [self._event(conn, now, "offer_withdrawn", d.conversation_id, data)]
        if isinstance(d, rm.Discarded):
            data = {"reason": d.reason, "note": d.note}
            conn.execute(
                conversations.update()
                .where(conversations.c.id == int(d.conversation_id))
                .values(close_reason=f"{d.reason}: {d.note}" if d.note else d.reason)
            )
            return [self._event(conn, now, "conversation_discarded", d.conversation_id, data)]
        if isinstance(d, rm.SupervisorConnected):
            connected = {"agent": d.agent_id, "over_capacity": d.over_capacity}
            return [self._event(conn, now, "supervisor_connected", d.conversation_id, connected)]
        if isinstance(d, rm.FellBackToQueue):
            return [
                self._event(
                    conn, now, "fell_back_to_queue", d.conversation_id, {"queue": d.queue_id}
                )
            ]
        if isinstance(d, rm.RoutingStatusChanged):
            conn.execute(
                agents.update()
                .where(agents.c.id == d.agent_id)
                .values(routing_status=d.new, updated_at=now)
            )
            return [
                self._event(
                    conn,
                    now,
                    "routing_status_changed",
                    None,
                    {"agent": d.agent_id, "old": d.old, "new": d.new},
                )
            ]
        if isinstance(d, rm.WrapupRequired):
            return [
                self._event(
                    conn,
                    now,
                    "wrapup_required",
                    d.conversation_id,
                    {"agent": d.agent_id, "prompt": d.prompt},
                )
            ]
        if isinstance(d, rm.WrapupTimedOut):
            return [
                self._event(
                    conn,
                    now,
                    "wrapup_timed_out",
                    d.conversation_id,
                    {"agent": d.agent_id, "code": d.code},
                )
            ]
        if isinstance(d, rm.ParkReturned):
            return [
                self._event(
                    conn,
                    now,
                    "park_returned",
                    d.conversation_id,
                    {"agent": d.agent_id, "cause": d.cause, "to_queue": d.to_queue},
                )
            ]
        if isinstance(d, rm.RingExpanded):
            return [self._event(conn, now, "ring_expanded", d.conversation_id, {"ring": d.ring})]
        return []

"""The routing engine: events in, decisions out, deterministic.

`Engine.handle(event)` applies one event, then matches waiting conversations
with free agents until no eligible pair is left, and returns what it decided.
It has no clock (time comes in every event; timers fire only on `Tick`), does
no I/O and keeps no hidden randomness: the same events give the same decisions.

Matching, after every event: among waiting conversations that have at least one
eligible agent, take each queue's first one in the queue's order, pick the
head with the oldest effective time across queues, offer it to its best agent;
repeat. Only conversations and agents touched by the event can form a new pair
(the previous event left none), so the search starts from those ("dirty") and
uses the indexes in `index.py` instead of scanning everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple, TypeVar

from postroom.routing.index import FreeAgents, FreeKey, QueueWork, Timers, WaitingWork
from postroom.routing.model import (
    REQUEUED_WRAPUP_CODE,
    AgentCapacityChanged,
    AgentConfig,
    AgentConfigured,
    AgentNotResponding,
    AgentPresenceChanged,
    AgentWorkRequeued,
    ConversationAssigned,
    ConversationEnded,
    Decision,
    Discarded,
    Enqueued,
    Event,
    FellBackToQueue,
    MembershipChanged,
    NextWakeup,
    Offer,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    OfferRestored,
    OfferRule,
    OfferTimedOut,
    OfferWithdrawn,
    Parked,
    ParkReturned,
    QueueConfig,
    QueueConfigured,
    QueueReassigned,
    Rejected,
    Reprioritized,
    Requeued,
    RingExpanded,
    RoutingStatusChanged,
    SkillRequirement,
    SupervisorAssigned,
    SupervisorConnected,
    SupervisorDiscarded,
    TakenBack,
    Tick,
    TransferredToAgent,
    Unparked,
    WrapupCompleted,
    WrapupRequired,
    WrapupTimedOut,
)
from postroom.routing.policy import (
    ConversationKey,
    Profile,
    active_profile,
    agent_key,
    conversation_key,
    cross_queue_key,
    deciding_rule,
    ring_expiry,
    satisfies,
)
from postroom.routing.service_level import ServiceLevelReport, ServiceLevelStats
from postroom.routing.state import AgentState, ConversationRecord
from postroom.routing.views import AgentView, ConversationView


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Match(NamedTuple):
    # A named tuple rather than a frozen dataclass: built once per offer, cheaply.
    conversation: ConversationRecord
    agent: AgentState
    rule: OfferRule
    preferred: bool
    declined_before: bool


class Engine:
    def __init__(
        self, queues: Iterable[QueueConfig] = (), agents: Iterable[AgentConfig] = ()
    ) -> None:
        self._now = 0.0
        self._queues: dict[str, QueueConfig] = {}
        self._stats: dict[str, ServiceLevelStats] = {}
        self._agents: dict[str, AgentState] = {}
        self._convs: dict[str, ConversationRecord] = {}
        # One shared tuple per distinct requirement profile: many waiting
        # conversations have equal requirements, and a tuple each would cost memory.
        self._profiles: dict[Profile, Profile] = {}
        # Likewise the requested skills: callers build a new tuple of new
        # SkillRequirement objects per conversation, mostly equal to earlier ones.
        self._skill_sets: dict[tuple[SkillRequirement, ...], tuple[SkillRequirement, ...]] = {}
        self._free = FreeAgents()
        # Agents whose entry in `_free` may be out of date. The free-agent index is
        # brought up to date when it is read and at the end of every event, not on
        # every change: a freed agent who takes the next conversation in the same
        # event would otherwise be added to, and removed again from, the free list
        # of every one of its queues.
        self._free_stale: set[str] = set()
        # Queues whose order key does not start with the effective time: their heads
        # are compared across queues through the conversation record.
        self._cross_by_record: set[str] = set()
        # Queues ordered by deadline: between only such heads the deadline decides.
        self._deadline_queues: set[str] = set()
        self._waiting = WaitingWork()
        # Per agent, the waiting work of each of its queues (rebuilt when its
        # memberships change): a freed agent's search reads it directly.
        self._member_work: dict[str, tuple[QueueWork, ...]] = {}
        self._timers = Timers()
        self._dirty_convs: set[str] = set()
        self._dirty_agents: set[str] = set()
        self._touched: set[str] = set()
        self._out: list[Decision] = []
        self._announced_wakeup: float | None = None
        self._handlers = self._event_handlers()
        for queue in queues:
            self._configure_queue(queue)
        for agent in agents:
            self._configure_agent(agent)

    # ------------------------------------------------------------------ API

    @property
    def now(self) -> float:
        return self._now

    def handle(self, event: Event) -> list[Decision]:
        # Time never runs backwards inside the engine: a late event is applied now.
        if event.now > self._now:
            self._now = event.now
        self._out = []
        try:
            self._apply(event)
        except _Reject as rejected:
            self._out.append(
                Rejected(
                    at=self._now,
                    event=type(event).__name__,
                    reason=rejected.reason,
                    conversation_id=getattr(event, "conversation_id", None),
                    agent_id=getattr(event, "agent_id", None),
                )
            )
        self._dispatch()
        self._announce_statuses()
        wakeup = self._timers.peek()
        if wakeup != self._announced_wakeup:
            self._announced_wakeup = wakeup
            self._out.append(NextWakeup(wakeup))
        out, self._out = self._out, []
        return out

    def next_wakeup(self) -> float | None:
        """When the caller must send `Tick` next (None: nothing pending)."""
        return self._timers.peek()

    def queue(self, queue_id: str) -> QueueConfig | None:
        return self._queues.get(queue_id)

    def queues(self) -> tuple[QueueConfig, ...]:
        return tuple(self._queues[q] for q in sorted(self._queues))

    def agent(self, agent_id: str) -> AgentView | None:
        a = self._agents.get(agent_id)
        return None if a is None else _agent_view(a)

    def agents(self) -> tuple[AgentView, ...]:
        return tuple(_agent_view(self._agents[a]) for a in sorted(self._agents))

    def conversation(self, conversation_id: str) -> ConversationView | None:
        c = self._convs.get(conversation_id)
        return None if c is None else self._conversation_view(c)

    def conversations(self) -> tuple[ConversationView, ...]:
        return tuple(self._conversation_view(self._convs[c]) for c in sorted(self._convs))

    def service_level(self, queue_id: str) -> ServiceLevelReport | None:
        stats = self._stats.get(queue_id)
        return None if stats is None else stats.report()

    def last_agent_applies(self, conversation_id: str) -> str | None:
        """The last agent who would get this conversation right now, if any."""
        c = self._convs.get(conversation_id)
        if c is None:
            return None
        a = self._last_agent_ok(c)
        return None if a is None else a.agent_id

    # ---------------------------------------------------------------- events

    def _apply(self, event: Event) -> None:
        # One table lookup on the exact type instead of a chain of isinstance checks;
        # a subclass of an event type (never sent by Postroom itself) is looked up once.
        handler = self._handlers.get(type(event))
        if handler is None:
            handler = next((h for t, h in self._handlers.items() if isinstance(event, t)), None)
            if handler is None:
                return
        handler(event)

    def _event_handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            Enqueued: self._on_enqueued,
            ConversationEnded: self._on_conversation_ended,
            OfferAccepted: self._on_accepted,
            Tick: self._on_tick,
            QueueConfigured: self._on_queue_configured,
            AgentConfigured: self._on_agent_configured,
            AgentPresenceChanged: self._on_presence,
            AgentCapacityChanged: self._on_capacity,
            MembershipChanged: self._on_membership,
            ConversationAssigned: self._on_assigned,
            OfferRestored: self._on_offer_restored,
            AgentNotResponding: self._on_not_responding,
            Requeued: self._on_requeued,
            QueueReassigned: self._on_queue_reassigned,
            TransferredToAgent: self._on_transferred_to_agent,
            OfferDeclined: self._on_missed,
            OfferTimedOut: self._on_missed,
            WrapupCompleted: self._on_wrapup_completed,
            Parked: self._on_parked,
            Unparked: self._on_unparked,
            TakenBack: self._on_taken_back,
            SupervisorAssigned: self._on_supervisor_assigned,
            Reprioritized: self._on_reprioritized,
            SupervisorDiscarded: self._on_supervisor_discarded,
            AgentWorkRequeued: self._on_agent_work_requeued,
        }

    def _on_conversation_ended(self, e: ConversationEnded) -> None:
        self._on_ended(self._conv_or_reject(e.conversation_id))

    def _on_accepted(self, e: OfferAccepted) -> None:
        c = self._alerting_or_reject(e.conversation_id, e.agent_id)
        c.state = "connected"
        c.offer_deadline = None
        self._answered(c)
        self._schedule(c)

    def _on_tick(self, e: Tick) -> None:
        for conversation_id in self._timers.pop_due(self._now):
            due = self._convs.get(conversation_id)
            if due is not None:
                self._fire(due)

    def _on_queue_configured(self, e: QueueConfigured) -> None:
        self._configure_queue(e.queue)

    def _on_agent_configured(self, e: AgentConfigured) -> None:
        self._configure_agent(e.agent)

    def _on_presence(self, e: AgentPresenceChanged) -> None:
        a = self._agent_or_reject(e.agent_id)
        was_routable = a.routable
        if e.presence == "on_queue":
            a.not_responding = False
        a.presence = e.presence
        if a.routable and not was_routable:
            a.idle_since = self._now
        self._agent_changed(a)

    def _on_capacity(self, e: AgentCapacityChanged) -> None:
        a = self._agent_or_reject(e.agent_id)
        a.capacity = e.capacity
        self._agent_changed(a)

    def _on_membership(self, e: MembershipChanged) -> None:
        a = self._agent_or_reject(e.agent_id)
        if e.member:
            a.queues.add(e.queue_id)
        else:
            a.queues.discard(e.queue_id)
            self._withdraw_left(a, {e.queue_id})
        self._member_work.pop(a.agent_id, None)
        self._agent_changed(a)

    def _withdraw_left(self, a: AgentState, left: set[str]) -> None:
        """The agent left these queues: their alerting offers of those queues are
        withdrawn and the conversations wait again (offered to the next agent when
        the dispatch after this event finds one). Direct offers (a transfer to the
        agent, a park return) never needed the membership and stay."""
        if not left:
            return
        for conversation_id in list(a.load):
            c = self._convs.get(conversation_id)
            if c is None or c.state != "alerting" or c.queue_id not in left or c.offer_direct:
                continue
            self._out.append(OfferWithdrawn(self._now, conversation_id, a.agent_id, "left_queue"))
            self._release(c)
            c.offer_deadline = None
            c.offer_rule = None
            c.state = "queued"
            self._place(c)
            self._schedule(c)

    def _on_missed(self, e: OfferDeclined | OfferTimedOut) -> None:
        c = self._alerting_or_reject(e.conversation_id, e.agent_id)
        self._missed(c)

    def _on_wrapup_completed(self, e: WrapupCompleted) -> None:
        c = self._conv_or_reject(e.conversation_id)
        if c.state != "wrapup":
            raise _Reject(f"conversation is {c.state}, not in wrap-up")
        self._release(c)
        self._close(c)

    def _on_unparked(self, e: Unparked) -> None:
        c = self._conv_or_reject(e.conversation_id)
        if c.state != "parked":
            raise _Reject(f"conversation is {c.state}, not parked")
        self._park_return(c, "reply")

    def _on_taken_back(self, e: TakenBack) -> None:
        c = self._conv_or_reject(e.conversation_id)
        if c.state != "parked":
            raise _Reject(f"conversation is {c.state}, not parked")
        if c.agent_id != e.agent_id:
            raise _Reject(f"conversation is parked by {c.agent_id!r}, not {e.agent_id!r}")
        self._reconnect(c, "taken_back")

    # ------------------------------------------------- supervisors' actions

    def _waiting_or_reject(self, conversation_id: str, action: str) -> ConversationRecord:
        c = self._conv_or_reject(conversation_id)
        if c.state not in ("queued", "alerting"):
            raise _Reject(f"conversation is {c.state}; only waiting work can be {action}")
        return c

    def _take_from_waiting(self, c: ConversationRecord, reason: _WithdrawReason) -> None:
        """Out of the waiting index, or its offer withdrawn (the agent told)."""
        if c.state == "alerting":
            assert c.agent_id is not None
            self._out.append(OfferWithdrawn(self._now, c.conversation_id, c.agent_id, reason))
            self._release(c)
        else:
            self._unplace(c)
        c.offer_deadline = None
        c.offer_rule = None
        self._timers.clear(c.conversation_id)

    def _on_supervisor_assigned(self, e: SupervisorAssigned) -> None:
        c = self._waiting_or_reject(e.conversation_id, "assigned")
        a = self._agent_or_reject(e.agent_id)
        same = c.state == "alerting" and c.agent_id == a.agent_id
        if same and e.mode == "offer":
            raise _Reject(f"conversation is already offered to {a.agent_id!r}")
        if e.mode == "offer" and not a.routable:
            raise _Reject(
                f"agent {a.agent_id!r} is not on queue and responding; "
                "connect the conversation to them directly instead"
            )
        held = len(a.load) - (1 if same else 0)
        if not e.override_capacity and held >= a.capacity:
            raise _Reject(
                f"agent {a.agent_id!r} holds {held} of their capacity {a.capacity}; "
                "override the capacity to assign it anyway"
            )
        if same:  # connect what alerts them: no withdrawal, just answered
            self._release(c)
            c.offer_deadline = None
            self._timers.clear(c.conversation_id)
        else:
            self._take_from_waiting(c, "reassigned")
        if e.mode == "offer":
            c.state = "queued"  # (out of the index already: `_offer` takes it from there)
            self._offer(c, a, "supervisor")
            return
        c.state = "connected"
        c.agent_id = a.agent_id
        c.offer_rule = "supervisor"
        c.offer_direct = False
        self._answered(c)
        self._hold(a, c)
        self._out.append(
            SupervisorConnected(
                self._now, c.conversation_id, a.agent_id, len(a.load) > a.capacity
            )
        )

    def _on_reprioritized(self, e: Reprioritized) -> None:
        c = self._waiting_or_reject(e.conversation_id, "changed")
        if e.priority is None and e.skills is None:
            raise _Reject("nothing to change: give a priority or skills")
        queued = c.state == "queued"
        if queued:
            self._unplace(c)
        if e.priority is not None:
            c.priority = e.priority
        if e.skills is not None:
            c.skills = self._shared_skills(e.skills)
        if queued:
            self._place(c)
            self._schedule(c)

    def _on_supervisor_discarded(self, e: SupervisorDiscarded) -> None:
        c = self._waiting_or_reject(e.conversation_id, "discarded")
        self._take_from_waiting(c, "discarded")
        c.sl_pending = False  # a supervisor's decision, not a customer abandoning
        self._out.append(Discarded(self._now, c.conversation_id, e.reason, e.note))
        self._close(c)

    def _on_agent_work_requeued(self, e: AgentWorkRequeued) -> None:
        a = self._agent_or_reject(e.agent_id)
        now = self._now
        for conversation_id in sorted(a.load, key=_numeric_first):
            c = self._convs[conversation_id]
            if c.state == "alerting":
                self._out.append(OfferWithdrawn(now, conversation_id, a.agent_id, "requeued"))
                self._release(c)
                c.offer_deadline = None
                c.offer_rule = None
                c.offer_direct = False
                if a.agent_id not in c.declined_by:  # not straight back to them
                    c.declined_by = (*c.declined_by, a.agent_id)
                c.state = "queued"
                self._place(c)
                self._schedule(c)
            elif c.state == "connected":
                self._detach(c, "requeued")
                self._reset_routing(c)
                c.declined_by = (a.agent_id,)
                self._enter_queue(c)
            elif c.state == "wrapup":
                self._out.append(
                    WrapupTimedOut(now, conversation_id, a.agent_id, REQUEUED_WRAPUP_CODE)
                )
                self._release(c)
                self._close(c)
        for conversation_id in sorted(a.parked, key=_numeric_first):
            c = self._convs[conversation_id]
            self._detach(c, "requeued")
            self._reset_routing(c)
            c.declined_by = (a.agent_id,)
            self._enter_queue(c)

    def _configure_queue(self, queue: QueueConfig) -> None:
        known = queue.queue_id in self._queues
        self._queues[queue.queue_id] = queue
        if queue.scoring_method == "timestamp_and_priority":
            self._cross_by_record.discard(queue.queue_id)
        else:
            self._cross_by_record.add(queue.queue_id)
        if queue.scoring_method == "deadline":
            self._deadline_queues.add(queue.queue_id)
        else:
            self._deadline_queues.discard(queue.queue_id)
        if not known:
            self._stats[queue.queue_id] = ServiceLevelStats(queue.queue_id, queue.service_level)
            return
        self._stats[queue.queue_id].target = queue.service_level
        for conversation_id in sorted(self._waiting.conversation_ids(queue.queue_id)):
            c = self._convs[conversation_id]
            c.ring = min(c.ring, len(queue.rings))
            if c.explicit_deadline is None:
                c.deadline = queue.service_level.due(c.enqueued_at)
            self._place(c)
            self._schedule(c)

    def _configure_agent(self, config: AgentConfig) -> None:
        a = self._agents.get(config.agent_id)
        if a is None:
            a = AgentState.from_config(config, self._now)
            self._agents[config.agent_id] = a
        else:
            left = a.queues - config.queues
            a.apply(config)
            self._withdraw_left(a, left)
        self._member_work.pop(a.agent_id, None)
        self._agent_changed(a)

    def _on_enqueued(self, e: Enqueued) -> None:
        if e.conversation_id in self._convs:
            raise _Reject("conversation is already being routed")
        queue = self._queue_or_reject(e.queue_id)
        now = self._now
        entered = now if e.enqueued_at is None else min(e.enqueued_at, now)
        c = ConversationRecord(
            e.conversation_id,
            queue.queue_id,  # the configuration's string, not one more copy per conversation
            e.priority,
            self._shared_skills(e.skills),
            e.language,
            entered,
            e.deadline if e.deadline is not None else queue.service_level.due(entered),
            e.deadline,
        )
        if e.preferred_agents:
            c.preferred_agents = tuple(dict.fromkeys(e.preferred_agents))
            c.preferred_open = e.preferred_window_s > 0
        # Without a window this is `now` itself: no float object of its own per conversation.
        c.preferred_until = now + e.preferred_window_s if e.preferred_window_s else now
        c.last_agent_id = e.last_agent_id
        c.last_agent_at = e.last_agent_at
        self._convs[c.conversation_id] = c
        self._enter_queue(c)

    def _on_assigned(self, e: ConversationAssigned) -> None:
        if e.conversation_id in self._convs:
            raise _Reject("conversation is already being routed")
        queue = self._queue_or_reject(e.queue_id)
        a = self._agent_or_reject(e.agent_id)
        now = self._now
        c = ConversationRecord(
            e.conversation_id,
            queue.queue_id,
            e.priority,
            self._shared_skills(e.skills),
            e.language,
            now,
            queue.service_level.due(now),
        )
        c.preferred_until = now
        c.state = "connected"
        c.agent_id = a.agent_id
        c.offer_rule = "assigned"
        c.sl_pending = False  # it never waited: not counted in the service level
        self._convs[c.conversation_id] = c
        self._hold(a, c)

    def _on_offer_restored(self, e: OfferRestored) -> None:
        if e.conversation_id in self._convs:
            raise _Reject("conversation is already being routed")
        queue = self._queue_or_reject(e.queue_id)
        a = self._agent_or_reject(e.agent_id)
        now = self._now
        entered = now if e.enqueued_at is None else min(e.enqueued_at, now)
        c = ConversationRecord(
            e.conversation_id,
            queue.queue_id,
            e.priority,
            self._shared_skills(e.skills),
            e.language,
            entered,
            queue.service_level.due(entered),
        )
        c.preferred_until = now
        c.last_agent_id = e.last_agent_id
        c.last_agent_at = e.last_agent_at
        c.state = "alerting"
        c.agent_id = a.agent_id
        c.offer_deadline = e.deadline
        c.offer_direct = e.direct
        c.offer_rule = e.rule
        self._convs[c.conversation_id] = c
        self._stats[c.queue_id].record_entered()  # it waits for an answer (sl_pending)
        self._hold(a, c)
        self._timers.set(c.conversation_id, e.deadline)

    def _on_not_responding(self, e: AgentNotResponding) -> None:
        a = self._agent_or_reject(e.agent_id)
        a.not_responding = True
        self._agent_changed(a)

    def _on_requeued(self, e: Requeued) -> None:
        c = self._conv_or_reject(e.conversation_id)
        self._queue_or_reject(e.queue_id)
        if c.state in ("wrapup", "closed"):
            raise _Reject(f"conversation is {c.state}; it cannot be transferred")
        self._detach(c, "transferred")
        if e.priority is not None:
            c.priority = e.priority
        if e.skills is not None:
            c.skills = self._shared_skills(e.skills)
        if e.language is not None or not e.keep_language:
            c.language = e.language
        c.queue_id = e.queue_id
        self._reset_routing(c)
        self._enter_queue(c)

    def _on_queue_reassigned(self, e: QueueReassigned) -> None:
        c = self._conv_or_reject(e.conversation_id)
        self._queue_or_reject(e.queue_id)
        if c.state not in ("connected", "wrapup", "parked"):
            raise _Reject(f"conversation is {c.state}; only held work changes queue this way")
        c.queue_id = e.queue_id

    def _on_transferred_to_agent(self, e: TransferredToAgent) -> None:
        c = self._conv_or_reject(e.conversation_id)
        target = self._agent_or_reject(e.agent_id)
        queue_id = e.queue_id if e.queue_id is not None else c.queue_id
        self._queue_or_reject(queue_id)
        if c.state in ("wrapup", "closed"):
            raise _Reject(f"conversation is {c.state}; it cannot be transferred")
        if c.agent_id == target.agent_id and c.state in ("alerting", "connected"):
            raise _Reject("conversation is already with that agent")
        self._detach(c, "transferred")
        c.queue_id = queue_id
        if target.free > 0:
            self._offer(c, target, "direct_transfer", direct=True)
        else:
            self._out.append(
                FellBackToQueue(self._now, c.conversation_id, queue_id, target.agent_id)
            )
            self._reset_routing(c)
            self._enter_queue(c)

    def _on_ended(self, c: ConversationRecord) -> None:
        if c.state in ("queued", "alerting"):
            if c.state == "queued":
                self._unplace(c)
            else:
                assert c.agent_id is not None
                self._out.append(
                    OfferWithdrawn(self._now, c.conversation_id, c.agent_id, "conversation_ended")
                )
                self._release(c)
            if c.sl_pending:
                self._stats[c.queue_id].record_abandoned()
            self._close(c)
        elif c.state == "connected":
            queue = self._queues[c.queue_id]
            if queue.wrapup_prompt == "optional":
                self._release(c)
                self._close(c)
                return
            assert c.agent_id is not None
            c.state = "wrapup"
            if queue.wrapup_prompt == "mandatory_timeout":
                c.wrapup_deadline = self._now + queue.wrapup_timeout_s
            self._out.append(
                WrapupRequired(
                    self._now, c.conversation_id, c.agent_id, queue.wrapup_prompt, c.wrapup_deadline
                )
            )
            self._schedule(c)
        elif c.state == "parked":
            self._unpark_slot(c)
            self._close(c)
        else:
            raise _Reject(f"conversation is {c.state}; it has already ended")

    def _on_parked(self, e: Parked) -> None:
        c = self._conv_or_reject(e.conversation_id)
        if c.state != "connected":
            raise _Reject(f"only a connected conversation can be parked (it is {c.state})")
        assert c.agent_id is not None
        a = self._agents[c.agent_id]
        if len(a.parked) >= a.max_parked:
            raise _Reject(f"agent already has {a.max_parked} parked conversations")
        self._release(c, keep_agent=True)
        a.parked[c.conversation_id] = None
        c.state = "parked"
        queue = self._queues[c.queue_id]
        c.park_until = e.until if e.until is not None else self._now + queue.park_timeout_s
        self._schedule(c)

    def _fire(self, c: ConversationRecord) -> None:
        """A timer of this conversation is due: do whatever its state has waiting."""
        now = self._now
        if c.state == "queued":
            queue = self._queues[c.queue_id]
            while True:
                expiry = ring_expiry(queue, c.enqueued_at, c.ring)
                if expiry is None or expiry > now:
                    break
                c.ring += 1
                self._out.append(RingExpanded(now, c.conversation_id, c.queue_id, c.ring))
            if c.preferred_open and c.preferred_until <= now:
                c.preferred_open = False
            self._place(c)
            self._schedule(c)
        elif c.state == "alerting" and c.offer_deadline is not None and c.offer_deadline <= now:
            assert c.agent_id is not None
            self._out.append(OfferExpired(now, c.conversation_id, c.agent_id))
            self._missed(c)
        elif c.state == "wrapup" and c.wrapup_deadline is not None and c.wrapup_deadline <= now:
            assert c.agent_id is not None
            self._out.append(WrapupTimedOut(now, c.conversation_id, c.agent_id))
            self._release(c)
            self._close(c)
        elif c.state == "parked" and c.park_until is not None and c.park_until <= now:
            self._park_return(c, "timeout")
        else:
            self._schedule(c)

    # ------------------------------------------------------ state transitions

    def _enter_queue(self, c: ConversationRecord) -> None:
        c.state = "queued"
        c.agent_id = None
        c.sl_pending = True
        self._stats[c.queue_id].record_entered()
        self._place(c)
        self._schedule(c)

    def _reset_routing(self, c: ConversationRecord) -> None:
        """A transfer or fallback starts routing afresh: new enqueue time, ring and declines."""
        queue = self._queues[c.queue_id]
        c.enqueued_at = self._now
        c.explicit_deadline = None
        c.deadline = queue.service_level.due(self._now)
        c.ring = 0
        c.declined_by = ()
        c.preferred_agents = ()
        c.preferred_open = False
        c.last_agent_id = None
        c.last_agent_at = None
        c.offer_direct = False
        c.offer_rule = None
        c.offer_deadline = None

    def _detach(self, c: ConversationRecord, reason: str) -> None:
        """Take the conversation away from wherever it is now (queue, offer, agent, park)."""
        if c.state == "queued":
            self._unplace(c)
        elif c.state == "alerting":
            assert c.agent_id is not None
            self._out.append(
                OfferWithdrawn(self._now, c.conversation_id, c.agent_id, "transferred")
            )
            self._release(c)
        elif c.state in ("connected", "wrapup"):
            self._release(c)
        elif c.state == "parked":
            self._unpark_slot(c)
        c.agent_id = None
        c.park_until = None
        c.offer_deadline = None
        self._timers.clear(c.conversation_id)

    def _offer(
        self,
        c: ConversationRecord,
        a: AgentState,
        rule: OfferRule,
        *,
        direct: bool = False,
        preferred: bool = False,
        declined_before: bool = False,
    ) -> None:
        conversation_id = c.conversation_id
        if c.state == "queued":
            self._waiting.remove(c)
        queue = self._queues[c.queue_id]
        c.agent_id = a.agent_id
        c.offer_direct = direct
        c.offer_rule = rule
        a.load[conversation_id] = None
        self._agent_changed(a)
        if a.capacity <= len(a.load):
            self._dirty_agents.discard(a.agent_id)  # full: it can take nothing more now
        deadline = self._now + queue.alert_timeout_s
        # (What `_schedule` does for the two states, written out.)
        if queue.auto_answer:
            c.state = "connected"
            c.offer_deadline = None
            self._answered(c)
            self._timers.clear(conversation_id)
        else:
            c.state = "alerting"
            c.offer_deadline = deadline
            self._timers.set(conversation_id, deadline)
        # Positional: one Offer per decision, and keywords cost a frozen dataclass more.
        offer = Offer(
            self._now, conversation_id, a.agent_id, c.queue_id, deadline, rule,
            preferred, declined_before, queue.auto_answer,
        )  # fmt: skip
        self._out.append(offer)
        self._dirty_convs.discard(conversation_id)

    def _missed(self, c: ConversationRecord) -> None:
        """Declined or timed out: the agent stops getting work, the conversation moves on."""
        assert c.agent_id is not None
        a = self._agents[c.agent_id]
        a.not_responding = True
        self._release(c)
        c.offer_deadline = None
        if c.offer_direct:
            self._out.append(FellBackToQueue(self._now, c.conversation_id, c.queue_id, a.agent_id))
            self._reset_routing(c)
            self._enter_queue(c)
            return
        if a.agent_id not in c.declined_by:
            c.declined_by = (*c.declined_by, a.agent_id)
        c.state = "queued"
        self._place(c)
        self._schedule(c)

    def _park_return(self, c: ConversationRecord, cause: Literal["reply", "timeout"]) -> None:
        """A customer reply or the park time: back to the agent, connected, when they
        are on queue and responding (even past their capacity: it is their own work);
        otherwise to the queue, naming them as its last agent."""
        assert c.agent_id is not None
        a = self._agents[c.agent_id]
        if a.routable:
            self._reconnect(c, cause)
            return
        self._unpark_slot(c)
        c.park_until = None
        self._out.append(ParkReturned(self._now, c.conversation_id, a.agent_id, cause, True))
        self._reset_routing(c)
        # The agent is unavailable now; last-agent routing may still bring it back.
        c.last_agent_id = a.agent_id
        c.last_agent_at = self._now
        self._enter_queue(c)

    def _reconnect(
        self, c: ConversationRecord, cause: Literal["reply", "timeout", "taken_back"]
    ) -> None:
        """The parked conversation is connected to its agent again, held at once (past
        the capacity if need be: free capacity is then 0, as after an assignment)."""
        assert c.agent_id is not None
        a = self._agents[c.agent_id]
        self._unpark_slot(c)
        c.park_until = None
        c.state = "connected"
        self._hold(a, c)
        self._timers.clear(c.conversation_id)
        self._out.append(ParkReturned(self._now, c.conversation_id, a.agent_id, cause, False))

    def _hold(self, a: AgentState, c: ConversationRecord) -> None:
        """The agent holds `c` at once, past the capacity if need be (`free` is then 0,
        so nothing more is offered until they are below capacity again): an assignment,
        a restored offer, a park return. Presence and not_responding stay as they are;
        the status follows from the load."""
        a.load[c.conversation_id] = None
        self._agent_changed(a)
        if a.capacity <= len(a.load):
            self._dirty_agents.discard(a.agent_id)  # full: it can take nothing more now

    def _answered(self, c: ConversationRecord) -> None:
        if c.sl_pending:
            c.sl_pending = False
            stats = self._stats[c.queue_id]
            stats.record_answered(self._now - c.enqueued_at, c.enqueued_at, self._now)

    def _release(self, c: ConversationRecord, *, keep_agent: bool = False) -> None:
        """The agent lets go of this conversation's capacity."""
        if c.agent_id is None:
            return
        a = self._agents[c.agent_id]
        if c.conversation_id in a.load:
            del a.load[c.conversation_id]
            a.idle_since = self._now
            self._agent_changed(a)
        if not keep_agent:
            c.agent_id = None

    def _unpark_slot(self, c: ConversationRecord) -> None:
        if c.agent_id is not None:
            self._agents[c.agent_id].parked.pop(c.conversation_id, None)

    def _close(self, c: ConversationRecord) -> None:
        c.state = "closed"
        self._timers.clear(c.conversation_id)
        self._dirty_convs.discard(c.conversation_id)
        del self._convs[c.conversation_id]

    # ------------------------------------------------------- index upkeep

    def _agent_changed(self, a: AgentState) -> None:
        self._free_stale.add(a.agent_id)
        self._dirty_agents.add(a.agent_id)
        self._touched.add(a.agent_id)

    def _flush_free(self) -> None:
        """Bring the free-agent index up to date for every agent changed since."""
        agents = self._agents
        update = self._free.update
        for agent_id in self._free_stale:
            a = agents[agent_id]
            update(agent_id, a.free, a.idle_since, a.queues)
        self._free_stale.clear()

    def _profile(self, c: ConversationRecord) -> Profile:
        profile = active_profile(self._queues[c.queue_id], c.skills, c.language, c.ring)
        return _shared(self._profiles, profile)

    def _shared_skills(self, skills: tuple[SkillRequirement, ...]) -> tuple[SkillRequirement, ...]:
        return _shared(self._skill_sets, skills) if skills else ()

    def _place(self, c: ConversationRecord) -> None:
        queue = self._queues[c.queue_id]
        key = conversation_key(
            queue, c.priority, c.enqueued_at, c.deadline, c.conversation_id, self._profile(c)
        )
        last = c.last_agent_id if self._last_agent_window_open(c) else None
        preferred = c.preferred_agents if c.preferred_open else ()
        self._waiting.add(c, key, preferred, last)
        self._dirty_convs.add(c.conversation_id)

    def _unplace(self, c: ConversationRecord) -> None:
        self._waiting.remove(c)

    def _schedule(self, c: ConversationRecord) -> None:
        due: float | None = None
        if c.state == "queued":
            queue = self._queues[c.queue_id]
            if not queue.rings and not c.preferred_open:
                # The common case: nothing can happen to it but an offer.
                self._timers.clear(c.conversation_id)
                return
            candidates = [ring_expiry(self._queues[c.queue_id], c.enqueued_at, c.ring)]
            if c.preferred_open:
                candidates.append(c.preferred_until)
            times = [t for t in candidates if t is not None]
            due = min(times) if times else None
        elif c.state == "alerting":
            due = c.offer_deadline
        elif c.state == "wrapup":
            due = c.wrapup_deadline
        elif c.state == "parked":
            due = c.park_until
        self._timers.set(c.conversation_id, due)

    def _announce_statuses(self) -> None:
        touched = self._touched
        for agent_id in sorted(touched) if len(touched) > 1 else touched:
            a = self._agents[agent_id]
            new = a.derived_status()
            if new != a.status:
                self._out.append(RoutingStatusChanged(self._now, agent_id, a.status, new))
                a.status = new
        self._touched.clear()

    # --------------------------------------------------------------- matching

    def _dispatch(self) -> None:
        while True:
            match = self._next_match()
            if match is None:
                break
            c, a, rule, preferred, declined_before = match
            self._offer(c, a, rule, preferred=preferred, declined_before=declined_before)
        self._dirty_convs.clear()
        self._dirty_agents.clear()
        if self._free_stale:
            self._flush_free()

    def _next_match(self) -> Match | None:
        # Per queue, the key of the best candidate head. Iteration order does not
        # matter: heads are compared on total keys.
        dirty_convs = self._dirty_convs
        dirty_agents = self._dirty_agents
        if not dirty_convs and not dirty_agents:
            return None
        heads: dict[str, ConversationKey] = {}
        if dirty_convs:
            convs = self._convs
            for conversation_id in tuple(dirty_convs):
                c = convs.get(conversation_id)
                if c is not None and c.state == "queued" and self._has_eligible_agent(c):
                    key = c.key
                    assert key is not None
                    best = heads.get(c.queue_id)
                    if best is None or key < best:
                        heads[c.queue_id] = key
                else:
                    # Later offers in this round only take capacity away: it stays unmatched.
                    dirty_convs.discard(conversation_id)
        if dirty_agents:
            agents = self._agents
            for agent_id in tuple(dirty_agents):
                a = agents[agent_id]
                if a.free <= 0 or not self._heads_for_agent(a, heads):
                    dirty_agents.discard(agent_id)
        if not heads:
            return None
        if len(heads) == 1:
            (winner,) = heads.values()
        elif self._deadline_queues.issuperset(heads):
            # Every head orders by deadline: the one closest to breaching its queue's
            # target goes first, whatever the targets (docs/routing.md).
            winner = min(heads.items(), key=lambda qk: (qk[1][0], qk[0], qk[1][2]))[1]
        else:
            # The cross-queue key is (effective time, queue id, conversation id). With
            # timestamp_and_priority the order key starts with that same effective
            # time, so no record is needed; the rest is compared only on a tie.
            by_record = self._cross_by_record
            convs = self._convs
            winner_cross: tuple[float, str, str] | None = None
            for queue_id, key in heads.items():
                if queue_id in by_record:
                    c = convs[key[2]]
                    cross = cross_queue_key(c.priority, c.enqueued_at, queue_id, key[2])
                    effective = cross[0]
                else:
                    effective = key[0]
                if winner_cross is not None and effective > winner_cross[0]:
                    continue
                cross = (effective, queue_id, key[2])
                if winner_cross is None or cross < winner_cross:
                    winner_cross, winner = cross, key
        return self._choose_agent(self._convs[winner[2]])

    def _last_agent_window_open(self, c: ConversationRecord) -> bool:
        if c.last_agent_id is None or c.last_agent_at is None:
            return False  # the common case, decided without looking up the queue
        queue = self._queues[c.queue_id]
        return (
            queue.last_agent_routing_mode != "disabled"
            and self._now - c.last_agent_at <= queue.last_agent_window_s
        )

    def _last_agent_ok(self, c: ConversationRecord) -> AgentState | None:
        if not self._last_agent_window_open(c):
            return None
        assert c.last_agent_id is not None
        a = self._agents.get(c.last_agent_id)
        if a is None or a.free <= 0 or a.agent_id in c.declined_by:
            return None
        mode = self._queues[c.queue_id].last_agent_routing_mode
        if mode == "queue_members_only" and c.queue_id not in a.queues:
            return None
        return a

    def _eligible_by_profile(self, a: AgentState, c: ConversationRecord, profile: Profile) -> bool:
        return a.free > 0 and c.queue_id in a.queues and satisfies(a.skills, a.languages, profile)

    def _has_eligible_agent(self, c: ConversationRecord) -> bool:
        if c.last_agent_id is not None and self._last_agent_ok(c) is not None:
            return True
        assert c.key is not None
        profile = c.key[3]
        if c.preferred_open:
            return any(
                p in self._agents and self._eligible_by_profile(self._agents[p], c, profile)
                for p in c.preferred_agents
            )
        if self._free_stale:
            self._flush_free()
        free = self._free.in_queue(c.queue_id)
        if not free:
            return False
        if not profile[0] and profile[1] is None:
            return True  # any free member will do
        agents = self._agents
        for _, _, agent_id in free:
            a = agents[agent_id]
            if satisfies(a.skills, a.languages, profile):
                return True
        return False

    def _heads_for_agent(self, a: AgentState, heads: dict[str, ConversationKey]) -> bool:
        """Per queue, the first waiting conversation this free agent is eligible for.

        Merged into `heads` (where a queue's entry is replaced only by an earlier
        key); False when the agent is eligible for nothing waiting.
        """
        found = False
        waiting = self._waiting
        skills, languages, agent_id = a.skills, a.languages, a.agent_id
        works = self._member_work.get(agent_id)
        if works is None:
            works = tuple(waiting.work(queue_id) for queue_id in sorted(a.queues))
            self._member_work[agent_id] = works
        for work in works:
            # Heads are in queue order, so the first covered profile holds the
            # agent's first conversation; the profiles before it are the ones
            # the agent cannot take. (`satisfies`, written out: this loop is the
            # hottest of a freed agent's search. The profile is the key's last item.)
            best: ConversationKey | None = None
            for key in work.heads:
                needs, language = key[3]
                if language is not None and language not in languages:
                    continue
                for name, minimum in needs:
                    level = skills.get(name)
                    if level is None or level < minimum:
                        break
                else:
                    best = key
                    break
            if work.preferred:
                preferring = work.preferred.get(agent_id)
                if preferring:
                    for key in preferring:
                        if satisfies(skills, languages, key[3]):
                            if best is None or key < best:
                                best = key
                            break
            if best is not None:
                found = True
                queue_id = work.queue_id
                known = heads.get(queue_id)
                if known is None or best < known:
                    heads[queue_id] = best
        if agent_id in waiting.by_last_agent and self._last_agent_heads(a, heads):
            found = True
        return found

    def _last_agent_heads(self, a: AgentState, heads: dict[str, ConversationKey]) -> bool:
        """Per queue, the first conversation naming this free agent as its last agent."""
        found = False
        convs = self._convs
        waiting = self._waiting
        agent_id = a.agent_id
        for queue_id in waiting.last_agent_queues(agent_id):
            mode = self._queues[queue_id].last_agent_routing_mode
            for key in waiting.naming_last_agent(agent_id, queue_id):
                c = convs[key[2]]
                if not self._last_agent_window_open(c):
                    # The window only closes with time, never reopens: drop the entry.
                    waiting.forget_last_agent(c)
                    continue
                if agent_id in c.declined_by:
                    continue
                if mode == "queue_members_only" and queue_id not in a.queues:
                    break
                found = True
                known = heads.get(queue_id)
                if known is None or key < known:
                    heads[queue_id] = key
                break
        return found

    def _choose_agent(self, c: ConversationRecord) -> Match:
        if c.last_agent_id is not None:
            last = self._last_agent_ok(c)
            if last is not None:
                return Match(c, last, "last_agent", False, False)
        queue = self._queues[c.queue_id]
        assert c.key is not None
        profile = c.key[3]
        anyone = not profile[0] and profile[1] is None
        agents = self._agents
        # Entries of agents changed during this event may be out of date in the
        # free-agent index: they are skipped there and ranked from their record
        # (usually one: the agent just freed). Many are brought up to date first.
        if len(self._free_stale) > _STALE_MAX:
            self._flush_free()
        stale = self._free_stale
        if queue.evaluation != "best_skills" and not c.preferred_open and not c.declined_by:
            # The common case, without building keys: the free-agent order is the
            # agent order, so the first two eligible agents are winner and runner-up.
            first: AgentState | None = None
            first_key: FreeKey | None = None
            second_key: FreeKey | None = None
            for free_key in self._free.in_queue(c.queue_id):
                if stale and free_key[2] in stale:
                    continue
                candidate = agents[free_key[2]]
                if anyone or satisfies(candidate.skills, candidate.languages, profile):
                    if first is None:
                        first, first_key = candidate, free_key
                        continue
                    second_key = free_key
                    break
            queue_id = c.queue_id
            for agent_id in stale:
                candidate = agents[agent_id]
                free = candidate.free
                if free <= 0 or queue_id not in candidate.queues:
                    continue
                if anyone or satisfies(candidate.skills, candidate.languages, profile):
                    free_key = (-free, candidate.idle_since, agent_id)
                    if first_key is None or free_key < first_key:
                        first, first_key, second_key = candidate, free_key, first_key
                    elif second_key is None or free_key < second_key:
                        second_key = free_key
            assert first is not None and first_key is not None  # it has an eligible agent
            if second_key is None:
                return Match(c, first, "only_eligible_agent", False, False)
            rule = deciding_rule((0.0, *first_key), (0.0, *second_key))
            return Match(c, first, rule, False, False)
        # Everyone eligible (who has not declined it, if any), ranked by the full key.
        eligible: list[AgentState] = []
        if c.preferred_open:
            for agent_id in c.preferred_agents:
                a = agents.get(agent_id)
                if a is not None and self._eligible_by_profile(a, c, profile):
                    eligible.append(a)
        else:
            # Free-agent order equals the key order unless skill scores come first.
            stop_early = queue.evaluation != "best_skills"
            declines = c.declined_by
            fresh_seen = 0
            for _, _, agent_id in self._free.in_queue(c.queue_id):
                if agent_id in stale:
                    continue
                a = agents[agent_id]
                if satisfies(a.skills, a.languages, profile):
                    eligible.append(a)
                    if stop_early and agent_id not in declines:
                        fresh_seen += 1
                        if fresh_seen >= 2:
                            break
            for agent_id in stale:
                a = agents[agent_id]
                if self._eligible_by_profile(a, c, profile):
                    eligible.append(a)
        fresh = [a for a in eligible if a.agent_id not in c.declined_by]
        pool = fresh or eligible
        if len(pool) == 1:  # (the usual case here: no key to build)
            return Match(c, pool[0], "only_eligible_agent", c.preferred_open, not fresh)
        ranked = sorted(
            (agent_key(queue, a.free, a.idle_since, a.agent_id, a.skills, c.skills), a)
            for a in pool
        )  # keys end with the agent id: the states themselves are never compared
        return Match(
            c,
            ranked[0][1],
            deciding_rule(ranked[0][0], ranked[1][0]),
            c.preferred_open,
            not fresh,
        )

    # ---------------------------------------------------------------- helpers

    def _agent_or_reject(self, agent_id: str) -> AgentState:
        a = self._agents.get(agent_id)
        if a is None:
            raise _Reject(f"unknown agent {agent_id!r}")
        return a

    def _queue_or_reject(self, queue_id: str) -> QueueConfig:
        queue = self._queues.get(queue_id)
        if queue is None:
            raise _Reject(f"unknown queue {queue_id!r}")
        return queue

    def _conv_or_reject(self, conversation_id: str) -> ConversationRecord:
        c = self._convs.get(conversation_id)
        if c is None:
            raise _Reject(f"unknown or closed conversation {conversation_id!r}")
        return c

    def _alerting_or_reject(self, conversation_id: str, agent_id: str) -> ConversationRecord:
        c = self._conv_or_reject(conversation_id)
        if c.state != "alerting" or c.agent_id != agent_id:
            raise _Reject(f"conversation is not alerting agent {agent_id!r}")
        return c

    def _conversation_view(self, c: ConversationRecord) -> ConversationView:
        return ConversationView(
            conversation_id=c.conversation_id,
            queue_id=c.queue_id,
            state=c.state,
            priority=c.priority,
            skills=c.skills,
            language=c.language,
            enqueued_at=c.enqueued_at,
            deadline=c.deadline,
            ring=c.ring,
            profile=self._profile(c),
            preferred_agents=c.preferred_agents,
            preferred_open=c.preferred_open,
            preferred_until=c.preferred_until,
            last_agent_id=c.last_agent_id,
            last_agent_at=c.last_agent_at,
            declined_by=tuple(c.declined_by),
            agent_id=c.agent_id,
            offer_deadline=c.offer_deadline,
            offer_direct=c.offer_direct,
            offer_rule=c.offer_rule,
            wrapup_deadline=c.wrapup_deadline,
            park_until=c.park_until,
        )


_STALE_MAX = 8  # past this many out-of-date agents, choosing one updates the index first
_SHARED_MAX = 10_000  # distinct values kept for sharing; past it the table starts afresh

T = TypeVar("T")


_WithdrawReason = Literal["reassigned", "discarded"]


def _numeric_first(conversation_id: str) -> tuple[int, str]:
    """Order conversation ids as numbers when they are (the service's are)."""
    return (int(conversation_id), "") if conversation_id.isdigit() else (0, conversation_id)


def _shared(table: dict[T, T], value: T) -> T:
    """An equal value seen before, so that equal values are one object in memory."""
    found = table.get(value)
    if found is not None:
        return found
    if len(table) >= _SHARED_MAX:
        table.clear()  # only sharing is lost; nothing depends on identity
    table[value] = value
    return value


def _agent_view(a: AgentState) -> AgentView:
    return AgentView(
        agent_id=a.agent_id,
        presence=a.presence,
        status=a.derived_status(),
        not_responding=a.not_responding,
        capacity=a.capacity,
        free=a.free,
        load=tuple(a.load),
        parked=tuple(a.parked),
        idle_since=a.idle_since,
        queues=frozenset(a.queues),
        skills=tuple(sorted(a.skills.items())),
        languages=a.languages,
        max_parked=a.max_parked,
    )

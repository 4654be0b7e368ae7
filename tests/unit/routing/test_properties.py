"""Random event streams: invariants hold, the indexed engine equals the reference, replays agree."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from postroom.routing import engine as engine_module
from postroom.routing import index as index_module
from postroom.routing.engine import Engine
from postroom.routing.model import (
    AgentCapacityChanged,
    AgentConfig,
    AgentConfigured,
    AgentNotResponding,
    AgentPresenceChanged,
    AgentWorkRequeued,
    ConversationAssigned,
    ConversationEnded,
    Decision,
    Enqueued,
    Event,
    MembershipChanged,
    Offer,
    OfferAccepted,
    OfferDeclined,
    OfferRestored,
    OfferTimedOut,
    OfferWithdrawn,
    Parked,
    ParkReturned,
    QueueConfig,
    QueueConfigured,
    Rejected,
    Reprioritized,
    Requeued,
    Ring,
    SkillRequirement,
    SupervisorAssigned,
    SupervisorDiscarded,
    TakenBack,
    Tick,
    TransferredToAgent,
    Unparked,
    WrapupCompleted,
)
from tests.unit.routing.reference import ReferenceEngine, unmatched_pairs

AGENTS = ("a0", "a1", "a2", "a3")
QUEUES = ("q0", "q1")
CONVS = tuple(f"c{i}" for i in range(6))
SKILLS = ("billing", "tech")
LANGS = ("en", "de")

agent_ids = st.sampled_from(AGENTS)
queue_ids = st.sampled_from(QUEUES)
conv_ids = st.sampled_from(CONVS)

queue_configs = st.builds(
    QueueConfig,
    queue_id=queue_ids,
    alert_timeout_s=st.sampled_from([7.0, 30.0, 60.0]),
    evaluation=st.sampled_from(["all_skills", "best_skills", "any_agent"]),
    scoring_method=st.sampled_from(["timestamp_and_priority", "priority_only", "deadline"]),
    rings=st.sampled_from(
        [
            (),
            (Ring(20.0, frozenset({"tech"})),),
            (Ring(15.0, frozenset({"billing"}), remove_language=True), Ring(30.0)),
        ]
    ),
    wrapup_prompt=st.sampled_from(["optional", "mandatory", "mandatory_timeout"]),
    wrapup_timeout_s=st.sampled_from([10.0, 40.0]),
    auto_answer=st.booleans(),
    last_agent_routing_mode=st.sampled_from(["disabled", "queue_members_only", "any_agent"]),
    last_agent_window_s=st.sampled_from([0.0, 50.0, 500.0]),
    park_timeout_s=st.sampled_from([20.0, 100.0]),
)

agent_configs = st.builds(
    AgentConfig,
    agent_id=agent_ids,
    queues=st.frozensets(queue_ids),
    skills=st.dictionaries(st.sampled_from(SKILLS), st.sampled_from([0.0, 1.0, 3.0, 5.0])).map(
        lambda d: tuple(sorted(d.items()))
    ),
    languages=st.frozensets(st.sampled_from(LANGS)),
    capacity=st.integers(1, 3),
    max_parked=st.integers(0, 2),
)

requirements = st.lists(
    st.builds(SkillRequirement, st.sampled_from(SKILLS), st.sampled_from([0.0, 2.0, 4.0])),
    max_size=2,
).map(tuple) | st.just(())


class RoutingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self.reference = ReferenceEngine()
        self.now = 0.0
        self.events: list[Event] = []
        self.decisions: list[Decision] = []
        self.last_offers: list[Offer] = []
        # Agents holding more than their capacity, and how they got there
        # (an assignment, or their capacity lowered under what they held).
        self.over: set[str] = set()

    def send(self, event: Event) -> None:
        self.events.append(event)
        before = {a.agent_id: (len(a.load), a.capacity) for a in self.engine.agents()}
        leaving = self.offers_leaving(event)
        got = self.engine.handle(event)
        expected = self.reference.handle(event)
        assert got == expected, f"indexed {got} != reference {expected} after {event}"
        self.decisions.extend(got)
        self.last_offers = [d for d in got if isinstance(d, Offer)]
        self.check_load(event, got, before)
        withdrawn = {d.conversation_id for d in got if isinstance(d, OfferWithdrawn)}
        assert leaving <= withdrawn, f"offers of a queue the agent left stayed: {leaving}"

    def offers_leaving(self, event: Event) -> set[str]:
        """The alerting, non-direct offers of queues the event takes the agent out of."""
        if isinstance(event, MembershipChanged) and not event.member:
            agent_id, left = event.agent_id, {event.queue_id}
        elif isinstance(event, AgentConfigured):
            agent_id = event.agent.agent_id
            view = self.engine.agent(agent_id)
            left = set(view.queues - event.agent.queues) if view is not None else set()
        else:
            return set()
        if self.engine.agent(agent_id) is None:
            return set()
        return {
            c.conversation_id
            for c in self.engine.conversations()
            if c.state == "alerting"
            and c.agent_id == agent_id
            and c.queue_id in left
            and not c.offer_direct
        }

    def check_load(
        self, event: Event, got: list[Decision], before: dict[str, tuple[int, int]]
    ) -> None:
        """Load grows past capacity only through work the agent holds already or
        started: an assignment, a restored offer, or a parked conversation connected
        to them again (taken back, or on a reply or the park time). Over capacity,
        free capacity is 0."""
        allowed: dict[str, int] = {}  # agent -> how much their load may grow past capacity
        refused = any(isinstance(d, Rejected) for d in got)
        if isinstance(event, SupervisorAssigned) and event.override_capacity and not refused:
            allowed[event.agent_id] = 1  # deliberately past the capacity
        if isinstance(event, ConversationAssigned | OfferRestored) and not refused:
            allowed[event.agent_id] = 1
            assert not any(
                isinstance(d, Offer) and d.conversation_id == event.conversation_id for d in got
            )
            view = self.engine.conversation(event.conversation_id)
            assert view is not None
            expected = "connected" if isinstance(event, ConversationAssigned) else "alerting"
            assert (view.state, view.agent_id) == (expected, event.agent_id)
        for d in got:
            if isinstance(d, ParkReturned) and not d.to_queue:
                allowed[d.agent_id] = allowed.get(d.agent_id, 0) + 1
                view = self.engine.conversation(d.conversation_id)
                assert view is not None
                assert (view.state, view.agent_id) == ("connected", d.agent_id)
        for a in self.engine.agents():
            load = len(a.load)
            assert 0 <= a.free <= max(0, a.capacity - load)
            if load <= a.capacity:
                self.over.discard(a.agent_id)
                continue
            assert a.free == 0
            old_load, old_capacity = before.get(a.agent_id, (0, a.capacity))
            grew = allowed.get(a.agent_id, 0)
            if grew:
                assert load <= old_load + grew, f"{a.agent_id} got more than its own work"
            else:
                assert load <= old_load, f"{a.agent_id} above capacity without its own work"
                assert a.agent_id in self.over or a.capacity < old_capacity
            self.over.add(a.agent_id)

    def step(self, dt: float) -> float:
        self.now += dt
        return self.now

    @initialize(
        q0=queue_configs,
        q1=queue_configs,
        agents=st.lists(agent_configs, min_size=4, max_size=4),
        on_queue=st.lists(st.integers(0, 3).map(bool), min_size=4, max_size=4),
    )
    def setup(
        self, q0: QueueConfig, q1: QueueConfig, agents: list[AgentConfig], on_queue: list[bool]
    ) -> None:
        self.send(QueueConfigured(0.0, replace(q0, queue_id="q0")))
        self.send(QueueConfigured(0.0, replace(q1, queue_id="q1")))
        for agent_id, agent, present in zip(AGENTS, agents, on_queue, strict=True):
            self.send(AgentConfigured(0.0, replace(agent, agent_id=agent_id)))
            if present:
                self.send(AgentPresenceChanged(0.0, agent_id, "on_queue"))

    def live(self, index: int, *states: str) -> str:
        """A conversation in one of `states` when there is one, else any id (may be unknown)."""
        found = [c.conversation_id for c in self.engine.conversations() if c.state in states]
        return found[index % len(found)] if found else CONVS[index % len(CONVS)]

    @rule(config=queue_configs, dt=st.sampled_from([0.0, 1.0]))
    def reconfigure_queue(self, config: QueueConfig, dt: float) -> None:
        self.send(QueueConfigured(self.step(dt), config))

    @rule(config=agent_configs, dt=st.sampled_from([0.0, 1.0]))
    def configure_agent(self, config: AgentConfig, dt: float) -> None:
        self.send(AgentConfigured(self.step(dt), config))

    @rule(
        agent=agent_ids,
        presence=st.sampled_from(["on_queue", "on_queue", "on_queue", "away", "offline"]),
        dt=st.sampled_from([0.0, 1.0, 5.0]),
    )
    def presence(self, agent: str, presence: str, dt: float) -> None:
        self.send(AgentPresenceChanged(self.step(dt), agent, presence))  # type: ignore[arg-type]

    @rule(agent=agent_ids, capacity=st.integers(1, 3))
    def capacity(self, agent: str, capacity: int) -> None:
        self.send(AgentCapacityChanged(self.step(1.0), agent, capacity))

    @rule(agent=agent_ids, queue=queue_ids, member=st.booleans())
    def membership(self, agent: str, queue: str, member: bool) -> None:
        self.send(MembershipChanged(self.step(1.0), agent, queue, member))

    @rule(
        conv=conv_ids,
        queue=queue_ids,
        priority=st.integers(0, 3),
        skills=requirements,
        language=st.none() | st.sampled_from(LANGS),
        preferred=st.lists(agent_ids, max_size=2).map(tuple),
        window=st.sampled_from([0.0, 25.0]),
        last=st.none() | agent_ids,
        last_age=st.sampled_from([0.0, 100.0]),
        deadline=st.none() | st.sampled_from([30.0, 300.0]),
        dt=st.sampled_from([0.0, 1.0, 3.0]),
    )
    def enqueue(
        self,
        conv: str,
        queue: str,
        priority: int,
        skills: tuple[SkillRequirement, ...],
        language: str | None,
        preferred: tuple[str, ...],
        window: float,
        last: str | None,
        last_age: float,
        deadline: float | None,
        dt: float,
    ) -> None:
        now = self.step(dt)
        self.send(
            Enqueued(
                now,
                conv,
                queue,
                priority=priority,
                skills=skills,
                language=language,
                preferred_agents=preferred,
                preferred_window_s=window,
                last_agent_id=last,
                last_agent_at=None if last is None else now - last_age,
                deadline=None if deadline is None else now + deadline,
            )
        )

    # Arrivals drive everything else; give them more weight among the rules.
    enqueue_more = enqueue
    enqueue_again = enqueue

    def _agent_of(self, conv: str, fallback: str) -> str:
        view = self.engine.conversation(conv)
        if view is not None and view.agent_id is not None:
            return view.agent_id
        return fallback

    @rule(
        # Mostly ids of its own (an agent's new email), sometimes one in use already.
        conv=st.sampled_from(("n0", "n1", "n2", "n3", *CONVS)),
        queue=st.sampled_from((*QUEUES, *QUEUES, "q-unknown")),
        agent=st.sampled_from((*AGENTS, "a-unknown")),
        priority=st.integers(0, 3),
        skills=requirements,
        language=st.none() | st.sampled_from(LANGS),
        dt=st.sampled_from([0.0, 1.0, 3.0]),
    )
    def assign(
        self,
        conv: str,
        queue: str,
        agent: str,
        priority: int,
        skills: tuple[SkillRequirement, ...],
        language: str | None,
        dt: float,
    ) -> None:
        now = self.step(dt)
        self.send(
            ConversationAssigned(
                now, conv, queue, agent, priority=priority, skills=skills, language=language
            )
        )

    assign_more = assign

    @rule(i=st.integers(0, 7), agent=agent_ids, dt=st.sampled_from([0.0, 2.0]))
    def accept(self, i: int, agent: str, dt: float) -> None:
        conv = self.live(i, "alerting")
        self.send(OfferAccepted(self.step(dt), conv, self._agent_of(conv, agent)))

    @rule(i=st.integers(0, 7), agent=agent_ids)
    def decline(self, i: int, agent: str) -> None:
        conv = self.live(i, "alerting")
        self.send(OfferDeclined(self.step(1.0), conv, self._agent_of(conv, agent)))

    @rule(i=st.integers(0, 7), agent=agent_ids)
    def time_out(self, i: int, agent: str) -> None:
        conv = self.live(i, "alerting")
        self.send(OfferTimedOut(self.step(1.0), conv, self._agent_of(conv, agent)))

    @rule(i=st.integers(0, 7), dt=st.sampled_from([0.0, 4.0]))
    def end(self, i: int, dt: float) -> None:
        conv = self.live(i, "connected", "connected", "queued", "alerting", "parked")
        self.send(ConversationEnded(self.step(dt), conv))

    @rule(i=st.integers(0, 7))
    def wrap_up(self, i: int) -> None:
        self.send(WrapupCompleted(self.step(1.0), self.live(i, "wrapup"), "resolved"))

    @rule(i=st.integers(0, 7), until=st.none() | st.sampled_from([5.0, 50.0]))
    def park(self, i: int, until: float | None) -> None:
        now = self.step(1.0)
        self.send(Parked(now, self.live(i, "connected"), None if until is None else now + until))

    @rule(i=st.integers(0, 7))
    def unpark(self, i: int) -> None:
        self.send(Unparked(self.step(1.0), self.live(i, "parked")))

    @rule(i=st.integers(0, 7), agent=agent_ids)
    def take_back(self, i: int, agent: str) -> None:
        conv = self.live(i, "parked")
        self.send(TakenBack(self.step(1.0), conv, self._agent_of(conv, agent)))

    @rule(
        # Mostly ids of its own (a rebuild restoring an offer), sometimes one in use.
        conv=st.sampled_from(("r0", "r1", "r2", *CONVS)),
        queue=st.sampled_from((*QUEUES, "q-unknown")),
        agent=st.sampled_from((*AGENTS, "a-unknown")),
        deadline=st.sampled_from([-5.0, 0.0, 10.0, 60.0]),
        waited=st.sampled_from([0.0, 30.0]),
        direct=st.booleans(),
        priority=st.integers(0, 3),
        skills=requirements,
        dt=st.sampled_from([0.0, 1.0]),
    )
    def restore_offer(
        self,
        conv: str,
        queue: str,
        agent: str,
        deadline: float,
        waited: float,
        direct: bool,
        priority: int,
        skills: tuple[SkillRequirement, ...],
        dt: float,
    ) -> None:
        now = self.step(dt)
        self.send(
            OfferRestored(
                now,
                conv,
                queue,
                agent,
                now + deadline,
                priority=priority,
                skills=skills,
                enqueued_at=now - waited,
                direct=direct,
            )
        )

    @rule(agent=st.sampled_from((*AGENTS, "a-unknown")))
    def restore_not_responding(self, agent: str) -> None:
        self.send(AgentNotResponding(self.step(1.0), agent))

    @rule(i=st.integers(0, 7), queue=queue_ids, priority=st.none() | st.integers(0, 3))
    def requeue(self, i: int, queue: str, priority: int | None) -> None:
        conv = self.live(i, "connected", "queued", "alerting", "parked")
        self.send(Requeued(self.step(1.0), conv, queue, priority=priority))

    @rule(i=st.integers(0, 7), agent=agent_ids, queue=st.none() | queue_ids)
    def transfer_to_agent(self, i: int, agent: str, queue: str | None) -> None:
        conv = self.live(i, "connected", "queued", "parked")
        self.send(TransferredToAgent(self.step(1.0), conv, agent, queue))

    @rule(
        i=st.integers(0, 7),
        agent=agent_ids,
        mode=st.sampled_from(["offer", "connect"]),
        override=st.booleans(),
    )
    def supervisor_assign(self, i: int, agent: str, mode: str, override: bool) -> None:
        conv = self.live(i, "queued", "alerting", "connected")
        self.send(SupervisorAssigned(self.step(1.0), conv, agent, mode, override))  # type: ignore[arg-type]
        if override:  # a supervisor may deliberately offer past capacity (not the router)
            self.last_offers = [o for o in self.last_offers if o.conversation_id != conv]

    @rule(i=st.integers(0, 7), priority=st.integers(0, 3), skills=requirements)
    def reprioritize(self, i: int, priority: int, skills: tuple[SkillRequirement, ...]) -> None:
        conv = self.live(i, "queued", "alerting")
        self.send(Reprioritized(self.step(1.0), conv, priority, skills))

    @rule(i=st.integers(0, 7))
    def discard(self, i: int) -> None:
        self.send(SupervisorDiscarded(self.step(1.0), self.live(i, "queued", "alerting"), "spam"))

    @rule(agent=agent_ids)
    def requeue_agent_work(self, agent: str) -> None:
        self.send(AgentWorkRequeued(self.step(1.0), agent))

    @rule(dt=st.sampled_from([1.0, 10.0, 30.0, 100.0]))
    def tick(self, dt: float) -> None:
        self.send(Tick(self.step(dt)))

    @precondition(lambda self: self.engine.next_wakeup() is not None)
    @rule()
    def tick_on_time(self) -> None:
        wakeup = self.engine.next_wakeup()
        assert wakeup is not None
        self.now = max(self.now, wakeup)
        self.send(Tick(self.now))

    @invariant()
    def offered_to_one_agent_at_a_time(self) -> None:
        holders: dict[str, str] = {}
        for agent in self.engine.agents():
            for conv in agent.load:
                assert conv not in holders, f"{conv} held by {holders.get(conv)} and {agent}"
                holders[conv] = agent.agent_id
        for conv in self.engine.conversations():
            if conv.state in ("alerting", "connected"):
                assert holders.get(conv.conversation_id) == conv.agent_id
            if conv.state in ("queued", "parked", "closed"):
                assert conv.conversation_id not in holders

    @invariant()
    def offers_respect_capacity(self) -> None:
        for offer in self.last_offers:
            agent = self.engine.agent(offer.agent_id)
            assert agent is not None
            assert len(agent.load) <= agent.capacity

    @invariant()
    def nothing_eligible_waits(self) -> None:
        assert unmatched_pairs(self.engine) == []

    @invariant()
    def the_reference_holds_the_same(self) -> None:
        assert self.engine.agents() == self.reference.agents()
        assert self.engine.conversations() == self.reference.conversations()

    def teardown(self) -> None:
        replay = Engine()
        replayed: list[Decision] = []
        for event in self.events:
            replayed.extend(replay.handle(event))
        assert replayed == self.decisions


RoutingMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRoutingMachine = RoutingMachine.TestCase


def test_large_buckets_and_an_eagerly_updated_free_index_agree_with_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same machine on the code paths the small streams above never reach.

    Every sorted sequence of two or more keys becomes a `SortedList` (normally past
    2 048 entries), and the free-agent index is brought up to date before every
    choice of agent instead of skipping the agents changed during the event.
    """
    monkeypatch.setattr(index_module, "_LARGE", 1)
    monkeypatch.setattr(engine_module, "_STALE_MAX", 0)
    run_state_machine_as_test(
        RoutingMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

"""What-if staffing: a discrete-event simulation driving the real routing engine.

`run_scenario(scenario)` generates Poisson arrivals per stream, lets agents
accept every offer at once, holds each conversation for a sampled handle time
(no wrap-up), and reports per-queue waits and service level and per-agent
occupancy. Randomness comes only from `random.Random(seed)`, so a scenario
always gives the same result. No I/O: reading scenario files and printing are
the command line's job.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from postroom.routing.engine import Engine
from postroom.routing.model import (
    AgentConfig,
    AgentPresenceChanged,
    ConversationEnded,
    Decision,
    Enqueued,
    Event,
    NextWakeup,
    Offer,
    OfferAccepted,
    QueueConfig,
    ServiceLevel,
    SkillRequirement,
    Tick,
)


class ScenarioError(ValueError):
    """The scenario is malformed; the message names the key to fix."""


@dataclass(frozen=True, slots=True)
class QueueResult:
    queue: str
    offered: int  # arrivals after the warm-up
    answered: int
    waiting_at_end: int
    abandoned: int  # always 0: the simulation has no abandonment
    service_level_target: float
    service_level_seconds: float
    service_level_achieved: float | None  # percent of answered within the threshold
    average_wait_s: float | None
    p90_wait_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "offered": self.offered,
            "answered": self.answered,
            "waiting_at_end": self.waiting_at_end,
            "abandoned": self.abandoned,
            "service_level": {
                "target_percent": self.service_level_target,
                "seconds": self.service_level_seconds,
                "achieved_percent": self.service_level_achieved,
            },
            "average_wait_s": self.average_wait_s,
            "p90_wait_s": self.p90_wait_s,
        }


@dataclass(frozen=True, slots=True)
class AgentResult:
    agent: str
    handled: int
    occupancy: float  # time-averaged share of capacity in use after the warm-up

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "handled": self.handled, "occupancy": self.occupancy}


@dataclass(frozen=True, slots=True)
class SimulationResult:
    duration_s: float
    warmup_s: float
    seed: int
    queues: tuple[QueueResult, ...]
    agents: tuple[AgentResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "seed": self.seed,
            "queues": [q.to_json() for q in self.queues],
            "agents": [a.to_json() for a in self.agents],
        }


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ScenarioError(f"{where}: missing key {key!r}")
    return mapping[key]


def _handle_time_sampler(spec: Mapping[str, Any], rng: random.Random) -> Callable[[], float]:
    kind = spec.get("distribution", "exponential")
    mean = float(_require(spec, "mean_s", "handle_time"))
    if mean <= 0:
        raise ScenarioError("handle_time.mean_s must be greater than 0")
    if kind == "exponential":
        return lambda: rng.expovariate(1.0 / mean)
    if kind == "fixed":
        return lambda: mean
    if kind == "lognormal":
        sigma = float(_require(spec, "sigma", "handle_time"))
        mu = math.log(mean) - sigma * sigma / 2  # so that the mean is `mean`
        return lambda: rng.lognormvariate(mu, sigma)
    raise ScenarioError(f"handle_time.distribution: unknown {kind!r}")


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


class _Simulation:
    def __init__(self, scenario: Mapping[str, Any]) -> None:
        self.duration = float(_require(scenario, "duration_s", "scenario"))
        self.warmup = float(scenario.get("warmup_s", 0.0))
        self.seed = int(scenario.get("seed", 0))
        self.rng = random.Random(self.seed)
        self.sample_handle = _handle_time_sampler(
            _require(scenario, "handle_time", "scenario"), self.rng
        )
        self.queues: list[QueueConfig] = []
        for i, q in enumerate(_require(scenario, "queues", "scenario")):
            sl = q.get("service_level", {})
            self.queues.append(
                QueueConfig(
                    queue_id=str(_require(q, "name", f"queues[{i}]")),
                    evaluation=q.get("evaluation", "all_skills"),
                    service_level=ServiceLevel(
                        float(sl.get("percent", 80.0)), float(sl.get("seconds", 86_400.0))
                    ),
                )
            )
        names = {q.queue_id for q in self.queues}
        self.agents: list[AgentConfig] = []
        for g, group in enumerate(_require(scenario, "agents", "scenario")):
            queues = frozenset(str(n) for n in _require(group, "queues", f"agents[{g}]"))
            if not queues <= names:
                raise ScenarioError(f"agents[{g}].queues: unknown {sorted(queues - names)}")
            skills = tuple(sorted((str(k), float(v)) for k, v in group.get("skills", {}).items()))
            for i in range(int(group.get("count", 1))):
                self.agents.append(
                    AgentConfig(
                        f"g{g}-a{i}", queues, skills, capacity=int(group.get("capacity", 1))
                    )
                )
        self.arrivals: list[Mapping[str, Any]] = list(_require(scenario, "arrivals", "scenario"))
        for a, stream in enumerate(self.arrivals):
            if _require(stream, "queue", f"arrivals[{a}]") not in names:
                raise ScenarioError(f"arrivals[{a}].queue: unknown queue {stream['queue']!r}")
            if float(_require(stream, "rate_per_hour", f"arrivals[{a}]")) <= 0:
                raise ScenarioError(f"arrivals[{a}].rate_per_hour must be greater than 0")

        self.engine = Engine(self.queues, self.agents)
        self.heap: list[tuple[float, int, str, str]] = []
        self.seq = 0
        self.arrived_at: dict[str, float] = {}
        self.waits: dict[str, list[float]] = {q.queue_id: [] for q in self.queues}
        self.offered: dict[str, int] = {q.queue_id: 0 for q in self.queues}
        self.load: dict[str, int] = {a.agent_id: 0 for a in self.agents}
        self.load_since: dict[str, float] = {a.agent_id: 0.0 for a in self.agents}
        self.busy_area: dict[str, float] = {a.agent_id: 0.0 for a in self.agents}
        self.handled: dict[str, int] = {a.agent_id: 0 for a in self.agents}

    def push(self, at: float, kind: str, ref: str) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, ref))

    def schedule_arrival(self, stream: int, after: float) -> None:
        rate = float(self.arrivals[stream]["rate_per_hour"]) / 3600.0
        at = after + self.rng.expovariate(rate)
        if at < self.duration:
            self.push(at, "arrival", str(stream))

    def account(self, agent_id: str, now: float, delta: int) -> None:
        start = max(self.load_since[agent_id], self.warmup)
        if now > start:
            self.busy_area[agent_id] += self.load[agent_id] * (now - start)
        self.load_since[agent_id] = now
        self.load[agent_id] += delta

    def send(self, event: Event) -> None:
        pending: list[Decision] = list(self.engine.handle(event))
        while pending:
            decision = pending.pop(0)
            if isinstance(decision, NextWakeup) and decision.at is not None:
                self.push(decision.at, "tick", "")
            elif isinstance(decision, Offer):
                self.on_offer(decision, pending)

    def on_offer(self, offer: Offer, pending: list[Decision]) -> None:
        now = offer.at
        conv = offer.conversation_id
        if not offer.auto_answered:
            pending.extend(self.engine.handle(OfferAccepted(now, conv, offer.agent_id)))
        arrived = self.arrived_at.pop(conv)
        if arrived >= self.warmup:
            self.waits[offer.queue_id].append(now - arrived)
        self.account(offer.agent_id, now, +1)
        self.handled[offer.agent_id] += now >= self.warmup
        self.push(now + self.sample_handle(), "end", f"{conv}|{offer.agent_id}")

    def run(self) -> SimulationResult:
        for agent in self.agents:
            self.send(AgentPresenceChanged(0.0, agent.agent_id, "on_queue"))
        for stream in range(len(self.arrivals)):
            self.schedule_arrival(stream, 0.0)
        number = 0
        while self.heap and self.heap[0][0] <= self.duration:
            at, _, kind, ref = heapq.heappop(self.heap)
            if kind == "arrival":
                stream = int(ref)
                spec = self.arrivals[stream]
                number += 1
                conv = f"s{stream}-{number}"
                queue = str(spec["queue"])
                self.arrived_at[conv] = at
                if at >= self.warmup:
                    self.offered[queue] += 1
                skills = tuple(
                    SkillRequirement(str(k), float(v)) for k, v in spec.get("skills", {}).items()
                )
                self.send(Enqueued(at, conv, queue, int(spec.get("priority", 0)), skills))
                self.schedule_arrival(stream, at)
            elif kind == "end":
                conv, agent_id = ref.split("|")
                self.account(agent_id, at, -1)
                self.send(ConversationEnded(at, conv))
            elif self.engine.next_wakeup() is not None:
                self.send(Tick(at))
        return self.result()

    def result(self) -> SimulationResult:
        window = max(self.duration - self.warmup, 1e-9)
        for agent_id in self.load:
            self.account(agent_id, self.duration, 0)
        queues = []
        for q in self.queues:
            waits = self.waits[q.queue_id]
            within = sum(1 for w in waits if w <= q.service_level.seconds)
            waiting = sum(
                1
                for conv in self.engine.conversations()
                if conv.queue_id == q.queue_id and conv.state == "queued"
            )
            queues.append(
                QueueResult(
                    queue=q.queue_id,
                    offered=self.offered[q.queue_id],
                    answered=len(waits),
                    waiting_at_end=waiting,
                    abandoned=0,
                    service_level_target=q.service_level.percent,
                    service_level_seconds=q.service_level.seconds,
                    service_level_achieved=100.0 * within / len(waits) if waits else None,
                    average_wait_s=sum(waits) / len(waits) if waits else None,
                    p90_wait_s=_percentile(waits, 0.9),
                )
            )
        agents = tuple(
            AgentResult(a.agent_id, self.handled[a.agent_id],
                        self.busy_area[a.agent_id] / (a.capacity * window))
            for a in self.agents
        )  # fmt: skip
        return SimulationResult(self.duration, self.warmup, self.seed, tuple(queues), agents)


def run_scenario(scenario: Mapping[str, Any]) -> SimulationResult:
    """Simulate `scenario` (see docs/routing.md, "Simulator") and return its statistics."""
    return _Simulation(scenario).run()

"""What-if staffing: a discrete-event simulation driving the real routing engine.

`run_scenario(scenario)` generates Poisson arrivals per stream, lets agents
accept every offer at once (unless the scenario says otherwise), holds each
conversation for a sampled handle time (no wrap-up), and reports per-queue
waits and service level and per-agent occupancy. Waits run from arrival to
acceptance, so a one-queue, one-skill scenario is an M/M/c queue.

Randomness comes only from `random.Random(seed)`, so a scenario always gives
the same result. No I/O: reading scenario files and printing are the command
line's job. The simulator never decides routing itself; every offer comes from
`Engine`.
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
    Enqueued,
    Event,
    NextWakeup,
    Offer,
    OfferAccepted,
    QueueConfig,
    Ring,
    RoutingConfigError,
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
    answered: int  # of those, accepted before the end
    waiting_at_end: int
    service_level_percent: float  # the queue's target
    service_level_seconds: float
    service_level: float | None  # fraction of answered accepted within the seconds
    mean_wait_s: float | None
    p_wait: float | None  # fraction of answered that waited more than 0 s
    p90_wait_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "answered": self.answered,
            "waiting_at_end": self.waiting_at_end,
            "mean_wait_s": self.mean_wait_s,
            "p_wait": self.p_wait,
            "service_level": self.service_level,
            "service_level_target": {
                "percent": self.service_level_percent,
                "seconds": self.service_level_seconds,
            },
            "p90_wait_s": self.p90_wait_s,
        }


@dataclass(frozen=True, slots=True)
class AgentResult:
    agent: str
    handled: int
    occupancy: float  # time-averaged share of capacity in use after the warm-up

    def to_json(self) -> dict[str, Any]:
        return {"occupancy": self.occupancy, "handled": self.handled}


def occupancy_dispersion(occupancies: list[float]) -> float:
    """Coefficient of variation of agent occupancy: population std ÷ mean (0: even load)."""
    if not occupancies:
        return 0.0
    mean = sum(occupancies) / len(occupancies)
    if mean <= 0:
        return 0.0
    variance = sum((x - mean) ** 2 for x in occupancies) / len(occupancies)
    return math.sqrt(variance) / mean


@dataclass(frozen=True, slots=True)
class SimulationResult:
    duration_s: float
    warmup_s: float
    seed: int
    queues: tuple[QueueResult, ...]
    agents: tuple[AgentResult, ...]

    @property
    def occupancy_dispersion(self) -> float:
        return occupancy_dispersion([a.occupancy for a in self.agents])

    def queue(self, name: str) -> QueueResult:
        return next(q for q in self.queues if q.queue == name)

    def to_json(self) -> dict[str, Any]:
        occupancies = [a.occupancy for a in self.agents]
        return {
            "queues": {q.queue: q.to_json() for q in self.queues},
            "agents": {a.agent: a.to_json() for a in self.agents},
            "occupancy_dispersion": self.occupancy_dispersion,
            "occupancy_mean": sum(occupancies) / len(occupancies) if occupancies else 0.0,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "seed": self.seed,
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
        rate = 1.0 / mean
        expovariate = rng.expovariate
        return lambda: expovariate(rate)
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


def _rings(spec: Any, where: str) -> tuple[Ring, ...]:
    rings = []
    for r, ring in enumerate(spec or ()):
        rings.append(
            Ring(
                float(_require(ring, "expansion_timeout_s", f"{where}.rings[{r}]")),
                frozenset(str(s) for s in ring.get("skills_to_remove", ())),
                bool(ring.get("remove_language", False)),
            )
        )
    return tuple(rings)


def _queue(q: Mapping[str, Any], i: int) -> QueueConfig:
    where = f"queues[{i}]"
    sl = q.get("service_level", {})
    try:
        return QueueConfig(
            queue_id=str(_require(q, "name", where)),
            evaluation=q.get("evaluation", "all_skills"),
            scoring_method=q.get("scoring_method", "timestamp_and_priority"),
            service_level=ServiceLevel(
                float(sl.get("percent", 80.0)), float(sl.get("seconds", 86_400.0))
            ),
            rings=_rings(q.get("rings"), where),
            # Simulated agents accept at once: the same as the engine connecting the offer.
            auto_answer=bool(q.get("auto_answer", True)),
        )
    except RoutingConfigError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


# Simulation event kinds, in the order they run when they fall at the same time.
_END, _ARRIVAL, _TICK = 0, 1, 2


class _Simulation:
    def __init__(self, scenario: Mapping[str, Any]) -> None:
        self.duration = float(_require(scenario, "duration_s", "scenario"))
        self.warmup = float(scenario.get("warmup_s", 0.0))
        self.seed = int(scenario.get("seed", 0))
        self.rng = random.Random(self.seed)
        self.sample_handle = _handle_time_sampler(
            _require(scenario, "handle_time", "scenario"), self.rng
        )
        self.queues = [_queue(q, i) for i, q in enumerate(_require(scenario, "queues", "scenario"))]
        for q in self.queues:
            if q.evaluation not in ("all_skills", "best_skills", "any_agent"):
                raise ScenarioError(f"queue {q.queue_id!r}: unknown evaluation {q.evaluation!r}")
        names = {q.queue_id for q in self.queues}
        self.agents: list[AgentConfig] = []
        for g, group in enumerate(_require(scenario, "agents", "scenario")):
            queues = frozenset(str(n) for n in _require(group, "queues", f"agents[{g}]"))
            if not queues <= names:
                raise ScenarioError(f"agents[{g}].queues: unknown {sorted(queues - names)}")
            skills = tuple(sorted((str(k), float(v)) for k, v in group.get("skills", {}).items()))
            prefix = str(group.get("name", f"g{g}"))
            try:
                for i in range(int(group.get("count", 1))):
                    self.agents.append(
                        AgentConfig(
                            f"{prefix}-a{i}",
                            queues,
                            skills,
                            languages=frozenset(str(x) for x in group.get("languages", ())),
                            capacity=int(group.get("capacity", 1)),
                        )
                    )
            except RoutingConfigError as exc:
                raise ScenarioError(f"agents[{g}]: {exc}") from exc
        self.streams: list[tuple[str, int, tuple[SkillRequirement, ...], str | None, float]] = []
        for a, stream in enumerate(_require(scenario, "arrivals", "scenario")):
            queue = _require(stream, "queue", f"arrivals[{a}]")
            if queue not in names:
                raise ScenarioError(f"arrivals[{a}].queue: unknown queue {queue!r}")
            rate = float(_require(stream, "rate_per_hour", f"arrivals[{a}]"))
            if rate <= 0:
                raise ScenarioError(f"arrivals[{a}].rate_per_hour must be greater than 0")
            needs = tuple(
                SkillRequirement(str(k), float(v)) for k, v in stream.get("skills", {}).items()
            )
            language = stream.get("language")
            self.streams.append(
                (
                    str(queue),
                    int(stream.get("priority", 0)),
                    needs,
                    None if language is None else str(language),
                    rate / 3600.0,
                )
            )

        self.engine = Engine(self.queues, self.agents)
        # (time, kind, sequence, payload): the sequence keeps equal times in push order.
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.tick_pending: float | None = None
        self.arrived_at: dict[str, float] = {}
        self.waits: dict[str, list[float]] = {q.queue_id: [] for q in self.queues}
        self.offered: dict[str, int] = {q.queue_id: 0 for q in self.queues}
        self.load: dict[str, int] = {a.agent_id: 0 for a in self.agents}
        self.load_since: dict[str, float] = {a.agent_id: 0.0 for a in self.agents}
        self.busy_area: dict[str, float] = {a.agent_id: 0.0 for a in self.agents}
        self.handled: dict[str, int] = {a.agent_id: 0 for a in self.agents}

    def push(self, at: float, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, payload))

    def schedule_arrival(self, stream: int, after: float) -> None:
        at = after + self.rng.expovariate(self.streams[stream][4])
        if at < self.duration:
            self.push(at, _ARRIVAL, stream)

    def account(self, agent_id: str, now: float, delta: int) -> None:
        start = self.load_since[agent_id]
        if start < self.warmup:
            start = self.warmup
        if now > start:
            self.busy_area[agent_id] += self.load[agent_id] * (now - start)
        self.load_since[agent_id] = now
        self.load[agent_id] += delta

    def send(self, event: Event) -> None:
        for decision in self.engine.handle(event):
            if type(decision) is Offer:
                self.on_offer(decision)
            elif type(decision) is NextWakeup and decision.at is not None:
                self.push(decision.at, _TICK, None)

    def on_offer(self, offer: Offer) -> None:
        now = offer.at
        conv = offer.conversation_id
        if not offer.auto_answered:
            # Accepting never frees capacity, so it cannot lead to another offer.
            self.send(OfferAccepted(now, conv, offer.agent_id))
        arrived = self.arrived_at.pop(conv)
        if arrived >= self.warmup:
            self.waits[offer.queue_id].append(now - arrived)
        self.account(offer.agent_id, now, +1)
        if now >= self.warmup:
            self.handled[offer.agent_id] += 1
        self.push(now + self.sample_handle(), _END, (conv, offer.agent_id))

    def run(self) -> SimulationResult:
        for agent in self.agents:
            self.send(AgentPresenceChanged(0.0, agent.agent_id, "on_queue"))
        for stream in range(len(self.streams)):
            self.schedule_arrival(stream, 0.0)
        number = 0
        heap = self.heap
        while heap and heap[0][0] <= self.duration:
            at, kind, _, payload = heapq.heappop(heap)
            if kind == _ARRIVAL:
                queue, priority, skills, language, _ = self.streams[payload]
                number += 1
                conv = f"c{number}"
                self.arrived_at[conv] = at
                if at >= self.warmup:
                    self.offered[queue] += 1
                self.send(Enqueued(at, conv, queue, priority, skills, language))
                self.schedule_arrival(payload, at)
            elif kind == _END:
                conv, agent_id = payload
                self.account(agent_id, at, -1)
                self.send(ConversationEnded(at, conv))
            elif self.engine.next_wakeup() is not None:
                self.send(Tick(at))
        return self.result()

    def result(self) -> SimulationResult:
        window = max(self.duration - self.warmup, 1e-9)
        for agent_id in self.load:
            self.account(agent_id, self.duration, 0)
        waiting: dict[str, int] = {q.queue_id: 0 for q in self.queues}
        for conv in self.engine.conversations():
            if conv.state == "queued":
                waiting[conv.queue_id] += 1
        queues = []
        for q in self.queues:
            waits = self.waits[q.queue_id]
            n = len(waits)
            within = sum(1 for w in waits if w <= q.service_level.seconds)
            waited = sum(1 for w in waits if w > 0)
            queues.append(
                QueueResult(
                    queue=q.queue_id,
                    offered=self.offered[q.queue_id],
                    answered=n,
                    waiting_at_end=waiting[q.queue_id],
                    service_level_percent=q.service_level.percent,
                    service_level_seconds=q.service_level.seconds,
                    service_level=within / n if n else None,
                    mean_wait_s=sum(waits) / n if n else None,
                    p_wait=waited / n if n else None,
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

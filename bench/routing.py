"""Routing engine benchmark: decision latency, throughput and memory at contact-center scale.

Builds a world of agents, queues and waiting conversations with realistic skill
profiles (each queue draws on a few related skills and one language, agents
cover a handful of queues), fills the queues, then replays a steady mix of
events: a conversation ends (the agent takes the next waiting one), the offer
is accepted, a new conversation arrives. Every `Engine.handle` call is timed.

Beside it, in the same run, the scan-everything reference matcher
(tests/unit/routing/reference.py) and the engine replay the same events at a
size where the reference finishes; the ratio is reference time ÷ engine time.

    python bench/routing.py            # figures as text
    python bench/routing.py --json     # one JSON object
    python bench/routing.py --agents 1000 --queues 100 --waiting 10000   # smaller
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.unit.routing.reference

from postroom.routing.engine import Engine
from postroom.routing.model import (
    AgentConfig,
    AgentPresenceChanged,
    ConversationEnded,
    Decision,
    Enqueued,
    Evaluation,
    Event,
    Offer,
    OfferAccepted,
    QueueConfig,
    SkillRequirement,
)

SKILLS = tuple(f"skill{i}" for i in range(60))
LANGUAGES = ("en", "en", "en", "de", "fr", "es")


@dataclass
class World:
    queues: list[QueueConfig]
    agents: list[AgentConfig]
    queue_skills: dict[str, tuple[str, ...]]
    queue_language: dict[str, str]


def build_world(n_agents: int, n_queues: int, rng: random.Random) -> World:
    evaluations: list[Evaluation] = ["all_skills"] * 7 + ["best_skills"] * 2 + ["any_agent"]
    queues = [
        QueueConfig(f"q{i}", evaluation=rng.choice(evaluations), alert_timeout_s=30.0)
        for i in range(n_queues)
    ]
    # Queues come in families (billing-en, billing-de, ...) sharing a skill area.
    queue_skills = {
        q.queue_id: tuple(rng.sample(SKILLS[(i % 12) * 5 : (i % 12) * 5 + 5], 3))
        for i, q in enumerate(queues)
    }
    queue_language = {q.queue_id: rng.choice(LANGUAGES) for q in queues}
    agents = []
    for i in range(n_agents):
        # A team: a block of neighbouring queues, so queues share members.
        start = rng.randrange(n_queues)
        member = {f"q{(start + k) % n_queues}" for k in range(rng.randint(3, 8))}
        skills: dict[str, float] = {}
        for q in member:
            for s in queue_skills[q]:
                if rng.random() < 0.8:
                    skills[s] = float(rng.randint(1, 5))
        languages = {"en"} | {queue_language[q] for q in member if rng.random() < 0.7}
        agents.append(
            AgentConfig(
                f"a{i}",
                frozenset(member),
                tuple(sorted(skills.items())),
                frozenset(languages),
                capacity=rng.choice((1, 1, 2, 3)),
            )
        )
    return World(queues, agents, queue_skills, queue_language)


def arrival(world: World, rng: random.Random, number: int, now: float) -> Enqueued:
    queue = f"q{rng.randrange(len(world.queues))}"
    needs = tuple(
        SkillRequirement(s, float(rng.randint(1, 3)))
        for s in rng.sample(world.queue_skills[queue], rng.choice((0, 1, 1, 2)))
    )
    language = world.queue_language[queue] if rng.random() < 0.5 else None
    return Enqueued(now, f"c{number}", queue, rng.choice((0, 0, 0, 1, 2)), needs, language)


class Driver:
    """Feeds an engine, keeps what the next events depend on, records every event."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.events: list[Event] = []
        self.alerting: list[Offer] = []
        self.connected: list[str] = []
        self.offers = 0

    def send(self, event: Event) -> list[Decision]:
        self.events.append(event)
        decisions = self.engine.handle(event)
        self.note(decisions)
        return decisions

    def note(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if type(d) is Offer:
                self.offers += 1
                self.alerting.append(d)


def fill(world: World, driver: Driver, waiting: int, rng: random.Random) -> int:
    """Enqueue `waiting` conversations with every agent off queue; returns the next number."""
    for n in range(waiting):
        driver.send(arrival(world, rng, n, 0.0))
    return waiting


def steady(
    world: World,
    driver: Driver,
    rng: random.Random,
    steps: int,
    number: int,
    now: float,
    kinds: list[str] | None = None,
) -> list[int]:
    """Run `steps` rounds of end → accept → arrive; returns each handle() time in ns.

    `kinds`, when given, gets each timed event's type name, in the same order.
    """
    timings: list[int] = []
    kind = kinds.append if kinds is not None else (lambda _: None)
    # CPU time of this thread: on a shared machine wall time would mostly measure
    # the OS scheduling the process out, not the engine.
    clock = time.thread_time_ns
    for _ in range(steps):
        now += 0.01
        if driver.connected:
            i = rng.randrange(len(driver.connected))
            driver.connected[i], driver.connected[-1] = driver.connected[-1], driver.connected[i]
            event: Event = ConversationEnded(now, driver.connected.pop())
            driver.events.append(event)
            t = clock()
            decisions = driver.engine.handle(event)
            timings.append(clock() - t)
            kind("ConversationEnded")
            driver.note(decisions)
        while driver.alerting:
            offer = driver.alerting.pop()
            event = OfferAccepted(now, offer.conversation_id, offer.agent_id)
            driver.events.append(event)
            t = clock()
            decisions = driver.engine.handle(event)
            timings.append(clock() - t)
            kind("OfferAccepted")
            driver.note(decisions)
            driver.connected.append(offer.conversation_id)
        event = arrival(world, rng, number, now)
        number += 1
        driver.events.append(event)
        t = clock()
        decisions = driver.engine.handle(event)
        timings.append(clock() - t)
        kind("Enqueued")
        driver.note(decisions)
    return timings


def go_on_queue(world: World, driver: Driver) -> None:
    for a in world.agents:
        driver.send(AgentPresenceChanged(0.0, a.agent_id, "on_queue"))
    while driver.alerting:
        offer = driver.alerting.pop()
        driver.send(OfferAccepted(0.0, offer.conversation_id, offer.agent_id))
        driver.connected.append(offer.conversation_id)


def percentile(sorted_values: list[int], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def measure_engine(agents: int, queues: int, waiting: int, steps: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    world = build_world(agents, queues, rng)
    gc.collect()
    tracemalloc.start()
    driver = Driver(Engine(world.queues, world.agents))
    before = tracemalloc.get_traced_memory()[0]
    number = 0
    for n in range(waiting):  # events not kept: only what the engine holds is counted
        driver.engine.handle(arrival(world, rng, n, 0.0))
    number = waiting
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    go_on_queue(world, driver)
    driver.events.clear()
    gc.collect()
    gc.disable()  # collector pauses would be the process's, not the engine's
    kinds: list[str] = []
    started = time.perf_counter()
    timings = steady(world, driver, rng, steps, number, 1.0, kinds)
    elapsed = time.perf_counter() - started
    gc.enable()
    per_kind: dict[str, list[int]] = {}
    for kind, ns in zip(kinds, timings, strict=True):
        per_kind.setdefault(kind, []).append(ns)
    tail = sorted(zip(timings, kinds, strict=True))[-max(1, len(timings) // 50) :]
    by_event = {}
    for kind, values in per_kind.items():
        values.sort()
        by_event[kind] = {
            "events": len(values),
            "p50_us": percentile(values, 0.50) / 1000,
            "p99_us": percentile(values, 0.99) / 1000,
            "in_slowest_2_percent": sum(1 for _, k in tail if k == kind),
        }
    timings.sort()
    queued = sum(1 for c in driver.engine._convs.values() if c.state == "queued")
    return {
        "agents": agents,
        "queues": queues,
        "waiting_at_start": waiting,
        "waiting_at_end": queued,
        "events": len(timings),
        "offers": driver.offers,
        "p50_us": percentile(timings, 0.50) / 1000,
        "p99_us": percentile(timings, 0.99) / 1000,
        "max_us": timings[-1] / 1000,
        "decisions_per_s": len(timings) / (sum(timings) / 1e9),
        "events_per_s_wall": len(timings) / elapsed,
        "bytes_per_waiting": held / waiting,
        "by_event": by_event,
    }


def measure_reference(agents: int, queues: int, waiting: int, steps: int, seed: int
                      ) -> dict[str, Any]:  # fmt: skip
    from tests.unit.routing.reference import ReferenceEngine

    rng = random.Random(seed)
    world = build_world(agents, queues, rng)
    driver = Driver(Engine(world.queues, world.agents))
    number = fill(world, driver, waiting, rng)
    go_on_queue(world, driver)
    setup = list(driver.events)
    driver.events.clear()
    steady(world, driver, rng, steps, number, 1.0)
    timed = list(driver.events)

    def replay(engine: Engine) -> tuple[float, list[Decision]]:
        for event in setup:
            engine.handle(event)
        out: list[Decision] = []
        started = time.perf_counter()
        for event in timed:
            out.extend(engine.handle(event))
        return time.perf_counter() - started, out

    engine_s, engine_out = replay(Engine(world.queues, world.agents))
    reference_s, reference_out = replay(ReferenceEngine(world.queues, world.agents))
    return {
        "agents": agents,
        "queues": queues,
        "waiting": waiting,
        "events": len(timed),
        "engine_s": engine_s,
        "reference_s": reference_s,
        "same_decisions": engine_out == reference_out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=1_000)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10_000, help="end/accept/arrive rounds")
    parser.add_argument("--ref-agents", type=int, default=100)
    parser.add_argument("--ref-queues", type=int, default=10)
    parser.add_argument("--ref-waiting", type=int, default=1_000)
    parser.add_argument("--ref-steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    engine = measure_engine(args.agents, args.queues, args.waiting, args.steps, args.seed)
    reference = measure_reference(
        args.ref_agents, args.ref_queues, args.ref_waiting, args.ref_steps, args.seed
    )
    result = {
        **engine,
        "reference": reference,
        "reference_ratio": reference["reference_s"] / reference["engine_s"],
        "targets": {"p99_us": 50, "decisions_per_s": 50_000, "bytes_per_waiting": 512},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"engine  {engine['agents']} agents, {engine['queues']} queues, "
        f"{engine['waiting_at_start']} waiting: {engine['events']} events, "
        f"{engine['offers']} offers"
    )
    print(
        f"  latency p50 {engine['p50_us']:.1f} µs  p99 {engine['p99_us']:.1f} µs "
        f"(target ≤ 50)  max {engine['max_us']:.0f} µs  (thread CPU time per handle())"
    )
    for kind, figures in engine["by_event"].items():
        print(
            f"    {kind:<18} {figures['events']} events  p50 {figures['p50_us']:.1f} µs  "
            f"p99 {figures['p99_us']:.1f} µs  {figures['in_slowest_2_percent']} "
            "in the slowest 2 %"
        )
    print(f"  decisions/s {engine['decisions_per_s']:,.0f} (target ≥ 50,000)")
    print(f"  bytes per waiting conversation {engine['bytes_per_waiting']:.0f} (target ≤ 512)")
    print(
        f"reference {reference['agents']} agents, {reference['queues']} queues, "
        f"{reference['waiting']} waiting, same {reference['events']} events: "
        f"reference {reference['reference_s']:.2f} s, engine {reference['engine_s']:.3f} s, "
        f"ratio {result['reference_ratio']:.0f}x, same decisions: {reference['same_decisions']}"
    )


if __name__ == "__main__":
    main()

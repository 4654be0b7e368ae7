"""The simulator agrees with queueing theory and is reproducible."""

from __future__ import annotations

import math
from typing import Any

import pytest

from postroom.routing.simulator import ScenarioError, run_scenario


def erlang_c_wait(arrivals_per_s: float, mean_handle_s: float, servers: int) -> float:
    """Mean wait in an M/M/c queue (Erlang C)."""
    load = arrivals_per_s * mean_handle_s
    rho = load / servers
    top = load**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(load**k / math.factorial(k) for k in range(servers)) + top
    p_wait = top / bottom
    return p_wait * mean_handle_s / (servers - load)


def scenario(duration_s: float, seed: int = 1, rate_per_hour: float = 14.4) -> dict[str, Any]:
    return {
        "duration_s": duration_s,
        "warmup_s": 3600.0,
        "seed": seed,
        "queues": [{"name": "support", "service_level": {"percent": 80, "seconds": 120}}],
        "agents": [{"count": 2, "queues": ["support"], "capacity": 1}],
        "arrivals": [{"queue": "support", "rate_per_hour": rate_per_hour}],
        "handle_time": {"distribution": "exponential", "mean_s": 300.0},
    }


def test_average_wait_matches_erlang_c() -> None:
    # 2 agents, 14.4 arrivals/h, 300 s mean handle time: 60 % occupancy; ~29 000 arrivals.
    result = run_scenario(scenario(duration_s=2000 * 3600.0))
    support = result.queues[0]
    expected = erlang_c_wait(14.4 / 3600, 300.0, 2)  # 168.75 s
    assert support.average_wait_s is not None
    assert support.average_wait_s == pytest.approx(expected, rel=0.1)
    occupancy = sum(a.occupancy for a in result.agents) / len(result.agents)
    assert occupancy == pytest.approx(0.6, abs=0.02)
    assert support.answered >= support.offered - 5


def test_the_same_seed_gives_the_same_result() -> None:
    first = run_scenario(scenario(duration_s=20 * 3600.0, seed=3)).to_json()
    assert first == run_scenario(scenario(duration_s=20 * 3600.0, seed=3)).to_json()
    assert first != run_scenario(scenario(duration_s=20 * 3600.0, seed=4)).to_json()
    assert set(first["queues"][0]) >= {"offered", "answered", "average_wait_s", "p90_wait_s"}


def test_fixed_and_lognormal_handle_times_and_skills() -> None:
    base = scenario(duration_s=10 * 3600.0)
    base["handle_time"] = {"distribution": "lognormal", "mean_s": 200.0, "sigma": 0.5}
    base["agents"] = [{"count": 2, "queues": ["support"], "skills": {"tech": 3}}]
    base["arrivals"] = [{"queue": "support", "rate_per_hour": 10.0, "skills": {"tech": 2}}]
    assert run_scenario(base).queues[0].answered > 50
    base["handle_time"] = {"distribution": "fixed", "mean_s": 100.0}
    assert run_scenario(base).queues[0].answered > 50


def test_a_malformed_scenario_names_the_key() -> None:
    bad = scenario(duration_s=100.0)
    bad["arrivals"] = [{"queue": "nowhere", "rate_per_hour": 1.0}]
    with pytest.raises(ScenarioError, match="arrivals"):
        run_scenario(bad)

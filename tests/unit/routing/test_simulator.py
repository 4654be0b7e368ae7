"""The simulator agrees with queueing theory, reports the documented figures and is reproducible."""

from __future__ import annotations

import math
import random
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from postroom.routing.simulator import ScenarioError, SimulationResult, run_scenario


def erlang_c(arrivals_per_s: float, mean_handle_s: float, servers: int, threshold_s: float
             ) -> tuple[float, float, float]:  # fmt: skip
    """M/M/c (Erlang C): mean wait, probability of waiting, share answered within threshold."""
    load = arrivals_per_s * mean_handle_s
    rho = load / servers
    top = load**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(load**k / math.factorial(k) for k in range(servers)) + top
    p_wait = top / bottom
    mean_wait = p_wait * mean_handle_s / (servers - load)
    within = 1 - p_wait * math.exp(-(servers - load) * threshold_s / mean_handle_s)
    return mean_wait, p_wait, within


def scenario(
    days: float,
    seed: int = 1,
    agents: int = 2,
    rate_per_hour: float = 14.4,
    mean_s: float = 300.0,
    threshold_s: float = 120.0,
) -> dict[str, Any]:
    return {
        "duration_s": days * 86400.0 + 3600.0,
        "warmup_s": 3600.0,
        "seed": seed,
        "queues": [{"name": "support", "service_level": {"percent": 80, "seconds": threshold_s}}],
        "agents": [{"count": agents, "queues": ["support"], "capacity": 1}],
        "arrivals": [{"queue": "support", "rate_per_hour": rate_per_hour}],
        "handle_time": {"distribution": "exponential", "mean_s": mean_s},
    }


# M/M/10 at 80 % load: 480 arrivals/h, 60 s mean handle time, 20 s threshold.
MMC = {"agents": 10, "rate_per_hour": 480.0, "mean_s": 60.0, "threshold_s": 20.0}
DAYS = 60.0


def _run_mmc(seed: int) -> dict[str, Any]:
    return run_scenario(scenario(DAYS, seed, **MMC)).to_json()  # type: ignore[arg-type]


@pytest.mark.slow
def test_mm10_at_80_percent_load_matches_erlang_c() -> None:
    # Seeds are drawn afresh each run: the tolerances must hold for any seed.
    # Two 60-day runs (one per core) pooled: a single 60-day run's mean wait
    # spreads ~2.7 % (1 sd) across seeds, so 8 % would be only 3 sd; pooled
    # it is ~1.9 % and 8 % is > 4 sd (probability of waiting and service level
    # are well inside their tolerances either way).
    seeds = [random.SystemRandom().randrange(2**31) for _ in range(2)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(_run_mmc, seeds))
    mean_wait, p_wait, within = erlang_c(480.0 / 3600, 60.0, 10, 20.0)
    answered = sum(r["queues"]["support"]["answered"] for r in runs)
    offered = sum(r["queues"]["support"]["offered"] for r in runs)
    assert answered >= 0.999 * offered > 2 * DAYS * 24 * 480 * 0.98

    def pooled(name: str) -> float:
        q = [r["queues"]["support"] for r in runs]
        return sum(x[name] * x["answered"] for x in q) / answered

    context = f"seeds {seeds}"
    assert pooled("mean_wait_s") == pytest.approx(mean_wait, rel=0.08), context
    assert pooled("p_wait") == pytest.approx(p_wait, rel=0.03), context
    assert pooled("service_level") == pytest.approx(within, abs=0.015), context
    for r in runs:
        occupancy = [a["occupancy"] for a in r["agents"].values()]
        assert sum(occupancy) / len(occupancy) == pytest.approx(0.8, abs=0.01), context
        assert r["occupancy_dispersion"] < 0.05, context  # identical agents share the load


def test_short_run_is_near_erlang_c() -> None:
    # A quick check for every run of the suite (the slow test above is the real one).
    result = run_scenario(scenario(days=40.0, seed=random.SystemRandom().randrange(2**31)))
    mean_wait, p_wait, within = erlang_c(14.4 / 3600, 300.0, 2, 120.0)
    support = result.queue("support")
    assert support.mean_wait_s == pytest.approx(mean_wait, rel=0.35)
    assert support.p_wait == pytest.approx(p_wait, rel=0.15)
    assert support.service_level == pytest.approx(within, abs=0.08)


def test_json_shape() -> None:
    out = run_scenario(scenario(days=0.5, seed=3)).to_json()
    assert set(out) >= {"queues", "agents", "occupancy_dispersion"}
    assert set(out["queues"]) == {"support"}
    assert set(out["queues"]["support"]) >= {
        "offered", "answered", "mean_wait_s", "p_wait", "service_level", "p90_wait_s"
    }  # fmt: skip
    assert set(out["agents"]) == {"g0-a0", "g0-a1"}
    assert set(out["agents"]["g0-a0"]) >= {"occupancy"}
    q = out["queues"]["support"]
    assert 0.0 <= q["p_wait"] <= 1.0 and 0.0 <= q["service_level"] <= 1.0
    assert out["occupancy_dispersion"] >= 0.0


def test_occupancy_dispersion_is_the_coefficient_of_variation() -> None:
    from postroom.routing.simulator import occupancy_dispersion

    assert occupancy_dispersion([0.5, 0.5]) == 0.0
    assert occupancy_dispersion([0.2, 0.6]) == pytest.approx(0.5)
    assert occupancy_dispersion([]) == 0.0


def test_the_same_seed_gives_the_same_result() -> None:
    first = run_scenario(scenario(days=1.0, seed=3)).to_json()
    assert first == run_scenario(scenario(days=1.0, seed=3)).to_json()
    assert first != run_scenario(scenario(days=1.0, seed=4)).to_json()


def test_fixed_and_lognormal_handle_times_skills_and_rings() -> None:
    base = scenario(days=0.5)
    base["handle_time"] = {"distribution": "lognormal", "mean_s": 200.0, "sigma": 0.5}
    base["agents"] = [{"count": 2, "queues": ["support"], "skills": {"tech": 3}}]
    base["arrivals"] = [{"queue": "support", "rate_per_hour": 10.0, "skills": {"tech": 2}}]
    assert run_scenario(base).queue("support").answered > 50
    base["handle_time"] = {"distribution": "fixed", "mean_s": 100.0}
    assert run_scenario(base).queue("support").answered > 50
    # Nobody has tech 5: only the bullseye ring's expansion gets the work answered.
    base["arrivals"] = [{"queue": "support", "rate_per_hour": 10.0, "skills": {"tech": 5}}]
    assert run_scenario(base).queue("support").answered == 0
    base["queues"][0]["rings"] = [{"expansion_timeout_s": 30, "skills_to_remove": ["tech"]}]
    result: SimulationResult = run_scenario(base)
    assert result.queue("support").answered > 50
    assert result.queue("support").mean_wait_s >= 30  # type: ignore[operator]


def test_offers_that_need_accepting_give_the_same_waits() -> None:
    base = scenario(days=1.0, seed=5)
    manual = scenario(days=1.0, seed=5)
    manual["queues"][0]["auto_answer"] = False
    assert run_scenario(base).to_json()["queues"] == run_scenario(manual).to_json()["queues"]


def test_a_malformed_scenario_names_the_key() -> None:
    bad = scenario(days=0.01)
    bad["arrivals"] = [{"queue": "nowhere", "rate_per_hour": 1.0}]
    with pytest.raises(ScenarioError, match="arrivals"):
        run_scenario(bad)
    bad = scenario(days=0.01)
    bad["agents"] = [{"count": 1, "queues": ["support"], "capacity": 99}]
    with pytest.raises(ScenarioError, match="agents"):
        run_scenario(bad)

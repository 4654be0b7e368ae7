"""Run docs/scenarios/multiskill.yaml under each evaluation method, rings off and on.

Prints the Markdown table quoted in docs/routing.md ("Comparing policies"):

    .venv/bin/python docs/scenarios/compare_policies.py
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from postroom.routing.simulator import run_scenario

BASE = yaml.safe_load((Path(__file__).parent / "multiskill.yaml").read_text("utf-8"))
RINGS = {
    "billing": [{"expansion_timeout_s": 30, "skills_to_remove": ["billing"]}],
    "tech": [{"expansion_timeout_s": 30, "skills_to_remove": ["tech"]}],
}


def variant(evaluation: str, rings: bool) -> dict[str, Any]:
    scenario = copy.deepcopy(BASE)
    for q in scenario["queues"]:
        q["evaluation"] = evaluation
        if rings:
            q["rings"] = RINGS[q["name"]]
    return scenario


print(
    "| evaluation | rings | billing mean wait s | billing P(wait) | billing SL 60 s "
    "| tech mean wait s | tech SL 60 s | occupancy generalist / billing / tech expert "
    "| dispersion |"
)
print("|---|---|---|---|---|---|---|---|---|")
for evaluation, rings in [
    ("all_skills", False),
    ("best_skills", False),
    ("any_agent", False),
    ("all_skills", True),
    ("best_skills", True),
]:
    out = run_scenario(variant(evaluation, rings)).to_json()
    b, t = out["queues"]["billing"], out["queues"]["tech"]

    def group(prefix: str, out: dict[str, Any] = out) -> float:
        xs = [a["occupancy"] for k, a in out["agents"].items() if k.startswith(prefix + "-")]
        return sum(xs) / len(xs)

    print(
        f"| {evaluation} | {'30 s' if rings else 'off'} | {b['mean_wait_s']:.1f} | "
        f"{b['p_wait']:.3f} | {b['service_level']:.3f} | {t['mean_wait_s']:.1f} | "
        f"{t['service_level']:.3f} | {group('generalist'):.2f} / "
        f"{group('billing-expert'):.2f} / {group('tech-expert'):.2f} | "
        f"{out['occupancy_dispersion']:.3f} |"
    )

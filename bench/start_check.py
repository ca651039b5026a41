#!/usr/bin/env python3
"""Closed-loop start check (the inertia problem): does the model leave the start of each route?

    . scripts/ros_env.sh
    python bench/start_check.py --model-dir A [B ...] --towns grid5,spider5,randgrid,val-rand-0 \
        [--routes 10] [--seed 7] [--steps 60] [--json bench/results/start_check.json]

Every route starts from rest. Each model drives the first `--steps` agent steps (6 s at 10 Hz) of the
same routes in-process (the node's Planner and history ring, ONNX Runtime, the PID), and a route counts
as left when the ego got more than 2 m along it. Cheap enough to run on the validation towns after
every fine-tune; `dsdrive-eval` is the full figure. Use validation towns: test towns are for reporting.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dsdrive_ros.data.dagger import ModelPolicy
from dsdrive_ros.eval.cli import route_seeds
from dsdrive_ros.sim.cameras import rig_for
from dsdrive_ros.sim.episode import Episode, EpisodeConfig

LEFT_M = 2.0


def progress(model_dir: Path, town: str, seeds: list[int], steps: int) -> list[float]:
    agent = ModelPolicy(model_dir)
    rig = rig_for(agent.spec.cameras, agent.spec.image["width"], agent.spec.image["height"])
    out = []
    for seed in seeds:
        ep = Episode(seed=seed, agent=agent, config=EpisodeConfig(), cameras=rig, town=town, max_steps=steps)
        for _ in ep.run():
            pass
        out.append(round(float(ep.result()["progress_m"]), 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, nargs="+", required=True)
    ap.add_argument("--towns", required=True, help="comma-separated town presets")
    ap.add_argument("--routes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7, help="route seed, as dsdrive-eval --seed")
    ap.add_argument("--steps", type=int, default=60, help="agent steps per route")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    seeds = route_seeds(a.seed, a.routes)
    result = {"routes": a.routes, "seed": a.seed, "steps": a.steps, "left_if_progress_m_over": LEFT_M,
              "load_avg": os.getloadavg(), "models": {}}
    for md in a.model_dir:
        towns = {t: progress(md, t, seeds, a.steps) for t in a.towns.split(",")}
        left = {t: sum(p > LEFT_M for p in v) for t, v in towns.items()}
        result["models"][str(md)] = {"progress_m": towns, "left": left, "left_total": sum(left.values()),
                                     "routes_total": a.routes * len(towns)}
        print(f"{md}: left the start on {sum(left.values())} / {a.routes * len(towns)} routes {left}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

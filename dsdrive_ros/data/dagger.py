"""DAgger data (Ross et al. 2011): the model drives, the privileged expert labels what it should do.

    python -m dsdrive_ros.data.dagger --model-dir models/dsdrive-tiny --out data/sim-dagger \\
        --towns grid4,grid3,spider,rand --episodes 16 --steps 600 --seed 6 [--beta 0.3]

Behaviour cloning only sees the states the expert drives through. A model that brakes late, misses a
turn or stays stopped at a green light reaches states no training frame shows, and it has no label
for getting out of them. Here the model drives (in-process, the node's `planner.Planner`: config.json's
preprocessing, ONNX Runtime, the frame-history ring, parse_plan's checks) and every frame is labelled
from the state it is really in:
  * waypoints: the expert's online plan from that state (`state.planned_waypoints`: an IDM rollout of
    its speed profile mapped onto the route, so it leads back to the lane and drives off at a green);
  * action and chain of thought: the expert's action and the scripted teacher, as in
    `data.build_dataset`.
Who steers: the model, except (a) segments of `--segment-s` that the expert drives, drawn with
probability `--beta` (DAgger's mixing), and (b) take-overs when the model has gone far off the route
or has stood still for `--stuck-s` while the expert wants to go; a take-over lasts one segment. The
take-overs keep a drive going past the first missed turn, so one episode yields many hard states.
Each episode's meta.json counts the frames each driver steered and the take-overs by reason ("dagger":
"takeover" = "takeover_off_route" + "takeover_stuck"), which shows the failure each round still hits.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..outputs.parse import PlanParseError
from ..planner.load import load_session
from ..planner.planner import Planner
from ..runners.spec import ModelSpec
from ..policies.waypoint_policies import WaypointPolicy
from ..sim.cameras import default_cameras
from ..sim.ego import Control
from ..sim.episode import Episode, EpisodeConfig
from ..policies.expert import Expert
from .build_dataset import episode_plan, write_episode
from .dataset import DatasetWriter
from ..sim.scene import SceneState
from .teacher import ScriptedTeacher

__all__ = ["ModelPolicy", "DaggerPolicy", "DaggerEpisode", "main"]


class ModelPolicy(WaypointPolicy):
    """The exported model in-process (no DDS): the node's Planner (preprocessing, session, parse_plan's
    checks), then the PID. A step whose output parse_plan rejects reuses the last plan. Its stats count
    "end_resets": steps whose end-of-instruction probability cleared the frame history."""

    name = "model-inprocess"

    def __init__(self, model_dir: str | Path, threads: int = 1):
        self.spec = ModelSpec.load(model_dir)
        super().__init__(self.spec.waypoint_dt, self.spec.waypoint_count)
        session, backend = load_session(self.spec, "onnxruntime", threads=threads)
        self.planner = Planner(self.spec, session, backend=backend)

    def reset(self, info) -> None:
        super().reset(info)
        self.planner.reset_history()
        self._end_resets = self.planner.session.end_resets

    def plan(self, state: SceneState, images: dict) -> np.ndarray:
        pose = (state.x, state.y, state.yaw)
        if any(c not in images for c in self.spec.cameras):
            return self._reuse(pose)  # Episode.run() acts once more, unrendered, after the route's end
        frames = {c: images[c] for c in self.spec.cameras}
        try:
            wp = self.planner.plan_frames(frames, state.instruction, state.speed).waypoints
        except PlanParseError:
            self.stats["rejected_plans"] = self.stats.get("rejected_plans", 0) + 1
            return self._reuse(pose)
        self.stats["end_resets"] = self.planner.session.end_resets - self._end_resets
        self._keep(wp, pose)
        return wp


class DaggerPolicy:
    """Runs the expert (labels) and the model on every step; applies one of the two controls."""

    COUNTS = ("model", "expert", "takeover", "takeover_off_route", "takeover_stuck")

    def __init__(self, model: ModelPolicy, beta: float = 0.3, segment_s: float = 2.0,
                 stuck_s: float = 4.0, off_route_m: float = 2.5, seed: int = 0):
        self.model, self.expert = model, Expert()
        self.beta, self.segment_s, self.stuck_s, self.off_route_m = beta, segment_s, stuck_s, off_route_m
        self.rng = random.Random(seed)
        self.counts: dict[str, int] = {}

    def reset(self, info) -> None:
        self.model.reset(info)
        self.expert.reset(info)
        self.dt = info.dt
        self.driver, self.left, self.stood = "model", 0.0, 0.0
        self.counts = dict.fromkeys(self.COUNTS, 0)

    def _choose(self, state: SceneState) -> None:
        plan = state.planned_waypoints
        wants_to_go = len(plan) >= 2 and abs(plan[1][0] - plan[0][0]) > 0.25
        self.stood = self.stood + self.dt if state.speed < 0.1 and wants_to_go else 0.0
        off = bool(plan) and abs(plan[0][1]) > self.off_route_m
        if self.left > 0.0:
            self.left -= self.dt
            return
        if self.driver == "model" and (off or self.stood >= self.stuck_s):
            self.driver, self.left = "expert", self.segment_s
            self.counts["takeover"] += 1
            self.counts["takeover_off_route" if off else "takeover_stuck"] += 1
            return
        self.driver = "expert" if self.rng.random() < self.beta else "model"
        self.left = self.segment_s

    def act(self, state: SceneState, images: dict) -> Control:
        expert_ctrl = self.expert.act(state, images)  # writes state.action, state.planned_waypoints
        if not images:  # Episode.run() acts once more, unrendered, after the route's end
            return expert_ctrl
        model_ctrl = self.model.act(state, images)  # every frame, so that its history stays whole
        self._choose(state)
        self.counts[self.driver] += 1
        return expert_ctrl if self.driver == "expert" else model_ctrl


class DaggerEpisode:
    """An `Episode` driven by a DaggerPolicy, iterated like `generate`'s episodes: (state, images) with
    `state.waypoints` = the expert's plan from that state."""

    def __init__(self, town: str, seed: int, steps: Optional[int], agent: DaggerPolicy):
        self.agent = agent
        # the rig the model reads: the four cameras, and the focus view when the model takes it
        rig = default_cameras(focus="front_focus" in agent.model.spec.cameras)
        self.episode = Episode(town=town, seed=seed, agent=agent, cameras=rig,
                               config=EpisodeConfig(sim_hz=20.0, model_hz=10.0, max_steps=steps))

    def __iter__(self) -> Iterator[tuple[SceneState, dict]]:
        k = self.agent.model.count
        for state, images in self.episode.run():
            if images and len(state.planned_waypoints) == k:
                state.waypoints = [list(map(float, p)) for p in state.planned_waypoints]
                yield state, images

    def meta(self) -> dict:
        out = self.episode.meta()
        out["waypoints"]["source"] = "the expert's online plan from the state the ego was in (data.dagger)"
        if self.agent.counts:  # after the drive (write_episode asks again at its end)
            out["dagger"] = dict(self.agent.counts)
        return out

    def close(self) -> None:
        self.episode.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsdrive_ros.data.dagger", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True, help="exported model (config.json, planner.onnx)")
    ap.add_argument("--out", required=True, help="dataset folder (created or resumed)")
    ap.add_argument("--towns", default="grid4")
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=600, help="model steps per episode (10 Hz)")
    ap.add_argument("--beta", type=float, default=0.3, help="probability that the expert drives a segment")
    ap.add_argument("--segment-s", type=float, default=2.0)
    ap.add_argument("--stuck-s", type=float, default=4.0)
    ap.add_argument("--off-route-m", type=float, default=2.5,
                    help="the expert takes over when the route is this far to the side (m)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if not 0.0 <= args.beta <= 1.0:
        ap.error("--beta must be in [0, 1]")
    towns = [t.strip() for t in args.towns.split(",") if t.strip()]
    model = ModelPolicy(args.model_dir, args.threads)
    teacher = ScriptedTeacher(args.seed)
    writer = DatasetWriter(args.out)
    for name, town, ep_seed in episode_plan(towns, args.episodes, args.seed):
        if writer.is_complete(name):
            continue
        ep = DaggerEpisode(town, ep_seed, args.steps,
                           DaggerPolicy(model, args.beta, args.segment_s, args.stuck_s,
                                       args.off_route_m, seed=ep_seed))
        try:
            n = write_episode(writer, name, town, ep_seed, ep, teacher)
        finally:
            ep.close()
        score = ep.episode.result()
        print(f"{name}: {n} frames, drivers {ep.agent.counts}, {score.get('status')} RC {score.get('RC', 0):.1f}",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

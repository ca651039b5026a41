"""dsdrive-eval: closed-loop, LangAuto-style evaluation in the SUMO world.

    dsdrive-eval --model-dir DIR --routes N --seed S [--town T | --net FILE]
                 [--agent model|model-inprocess|expert|expert-pid|constant-velocity] [--out OUT]
                 [--max-steps N]

Agents (policies, all drive the same `Episode` loop of sim/episode.py; all but `expert` steer with
LMDrive's PID path follower, policies/controller.py):
  model              the REAL dsdrive_node, started here in its own process
                     (`python -m dsdrive_ros.node.dsdrive_node`, use_sim_time, reliable camera QoS);
                     the simulator is its ROS bridge (closed_loop.RosBridgePolicy): each model step
                     publishes /clock, odom, the instruction (on change) and the 4 rendered cameras
                     (raw rgb8 or --transport compressed), then waits up to --plan-timeout for the
                     node's dsdrive/path of that stamp (lock-step; a timeout is a missed plan: the
                     last plan is reused); --no-node drives a node that already runs;
  expert             the privileged rule-based expert with its own controls (sanity/upper bound);
  expert-pid         the expert's online plan (5 waypoints, 0.5 s) through the PID;
  constant-velocity  straight waypoints at the current speed (floor --cv-min-speed) through the PID;
  model-inprocess    the exported model in this process (data.dagger.ModelPolicy: the node's Planner,
                     i.e. preprocessing, ONNX Runtime, history ring; no DDS): a quick check while training.
                     The reported closed-loop figures use `model` (the real node).

Rates: the simulator steps at --sim-hz (default 20) and the agent (model + PID) runs at --model-hz
(default 10), as in LMDrive (10 Hz model on a 20 Hz CARLA); a control is held for the sim steps in
between. Both go into the Episode's config (EpisodeConfig.sim_hz / model_hz), sim_hz must be a whole
multiple of model_hz. The waypoint spacing the PID assumes comes from the model's config.json
("waypoints.dt_s") for --agent model, else from the episode config (0.5 s).

Routes: route i (0-based) of seed S is the Episode with seed S * 1000 + i (its world variant, traffic
and route follow from it): the same seed gives the same routes.

Scoring (eval/score.py, LangAuto / CARLA leaderboard arithmetic): RC = % of the route driven, IS =
product of penalties (pedestrian 0.50, vehicle 0.60, static 0.65, red light 0.70) x (1 - off-route
share), DS = RC x IS; the mean over routes. A route ends at completion, deviation (> 30 m off), being
blocked 90 s, the time limit, or --max-steps (then RC is what was driven so far, no penalty).

Outputs: OUT/results.json (config, per route scores, infractions, plan statistics; mean),
OUT/summary.md (one table row per route + the mean), OUT/route_XX.png (driven path over the map's
lanes, the route, infractions marked), OUT/node.log (--agent model).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from .diagnose import ShadowExpert, diagnose_route
from .diagnose import aggregate as diagnosis_aggregate
from .report import collisions_ego_standing, jsonable, plot_route, write_summary

if TYPE_CHECKING:
    from ..runners.spec import ModelSpec

__all__ = ["main", "build_parser", "run_eval", "route_seeds", "AGENTS"]

AGENTS = ("model", "model-inprocess", "expert", "expert-pid", "constant-velocity")
MODEL_AGENTS = ("model", "model-inprocess")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dsdrive-eval", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="exported model directory (required for --agent model)")
    ap.add_argument("--routes", type=int, default=3, help="number of routes")
    ap.add_argument("--seed", type=int, default=0, help="route seed (same seed -> same routes)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--town", default="grid4", help="town preset (sim/towns.py TOWNS)")
    where.add_argument("--net", type=Path, default=None, help="a SUMO .net.xml instead of a town")
    ap.add_argument("--agent", default="model", choices=AGENTS)
    ap.add_argument("--out", type=Path, default=Path("out/eval"), help="output folder")
    ap.add_argument("--max-steps", type=int, default=None, help="cap on model steps per route")
    ap.add_argument("--sim-hz", type=float, default=20.0, help="simulator rate (Hz)")
    ap.add_argument("--model-hz", type=float, default=10.0, help="agent/model rate (Hz)")
    ap.add_argument("--transport", default="raw", choices=["raw", "compressed"],
                    help="camera topics for the node: image_raw (rgb8) or image_raw/compressed (jpeg)")
    ap.add_argument("--plan-timeout", type=float, default=2.0,
                    help="seconds to wait for the node's plan of a frame (then: missed, reuse last)")
    ap.add_argument("--startup-timeout", type=float, default=300.0,
                    help="seconds for the node to load the model, subscribe and answer a warm-up frame")
    ap.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "onnxruntime", "torch"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    ap.add_argument("--reasoning", action="store_true",
                    help="let the node generate reasoning text (off by default: it competes for CPU)")
    ap.add_argument("--params-file", type=Path, default=None,
                    help="node parameters (default: config/dsdrive.params.yaml)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="extra node parameter (repeatable)")
    ap.add_argument("--no-node", action="store_true",
                    help="--agent model: do not start dsdrive_node (one already runs on this "
                         "ROS domain, e.g. from launch/dsdrive.launch.py with use_sim_time)")
    ap.add_argument("--domain-id", type=int, default=None,
                    help="--agent model with its own node: the ROS domain of this run (default: a "
                         "private one from the pid, so that parallel runs do not hear each other; "
                         "pass $ROS_DOMAIN_ID to watch it in rviz)")
    ap.add_argument("--cv-min-speed", type=float, default=4.0,
                    help="constant-velocity agent: speed floor (m/s); 0 = never leaves the start")
    ap.add_argument("--cache", default=None, help="SUMO world cache folder (default: sim/world.py's)")
    ap.add_argument("--no-plots", action="store_true", help="skip the per-route PNGs")
    ap.add_argument("--diagnose", action="store_true",
                    help="a privileged expert shadows the agent: per-failure counts (eval/diagnose.py) "
                         "in results.json and summary.md")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return ap


def route_seeds(seed: int, n: int) -> list[int]:
    """Episode seeds of the routes of `seed`: seed * 1000 + i (deterministic, disjoint across seeds
    for n <= 1000)."""
    return [int(seed) * 1000 + i for i in range(int(n))]


def _model_spec(model_dir: Path) -> "ModelSpec":
    from ..runners.spec import ModelSpec, ModelSpecError

    try:
        return ModelSpec.load(model_dir)
    except ModelSpecError as e:
        raise SystemExit(f"dsdrive-eval: {e}") from None


def _rig_for(spec: "ModelSpec"):
    from ..sim.cameras import rig_for

    try:
        return rig_for(spec.cameras, spec.image["width"], spec.image["height"])
    except ValueError as e:
        raise SystemExit(f"dsdrive-eval: {e}") from None


def _pct(values: list[float], q: float) -> Optional[float]:
    return float(np.percentile(values, q)) if values else None


# ------------------------------------------------------------------------------------------------
# Runs


def _make_agent(args, spec: Optional["ModelSpec"], node_proc):
    from ..policies.waypoint_policies import ConstantVelocityPolicy, ExpertPlanPolicy
    from ..sim.episode import EpisodeConfig

    ep_cfg = EpisodeConfig()
    if args.agent == "model":
        from .closed_loop import RosBridgePolicy

        return RosBridgePolicy(spec.cameras, spec.waypoint_dt, spec.waypoint_count, transport=args.transport,
                              plan_timeout=args.plan_timeout, startup_timeout=args.startup_timeout,
                              node=node_proc)
    if args.agent == "model-inprocess":
        from ..data.dagger import ModelPolicy

        return ModelPolicy(args.model_dir)
    if args.agent == "expert":
        return ExpertPlanPolicy("control", ep_cfg.waypoint_dt, ep_cfg.waypoints)
    if args.agent == "expert-pid":
        return ExpertPlanPolicy("pid", ep_cfg.waypoint_dt, ep_cfg.waypoints)
    return ConstantVelocityPolicy(ep_cfg.waypoint_dt, ep_cfg.waypoints, min_speed=args.cv_min_speed)


def _agent_summary(agent) -> dict:
    st = dict(getattr(agent, "stats", {}) or {})
    lat = st.pop("latency_ms", None)
    mlat = st.pop("model_latency_ms", None)
    if "plans" in st:
        st["plan_rate"] = st["plans"] / max(st["plans"] + st.get("missed", 0), 1)
        st["latency_ms"] = {"p50": _pct(lat or [], 50), "p95": _pct(lat or [], 95),
                            "max": max(lat) if lat else None}
        st["model_latency_ms"] = {"p50": _pct(mlat or [], 50), "p95": _pct(mlat or [], 95)}
    reasoning = getattr(agent, "reasoning", None)
    if reasoning:
        st["reasoning"] = reasoning[:20]
    return st


def run_route(index: int, ep_seed: int, args, agent, cfg, rig, progress: bool) -> dict:
    from ..sim.episode import WORLD_VARIANTS, Episode

    world = None
    if args.net is not None:
        from ..sim.world import World, demand_for_net

        # like Episode(town=...): WORLD_VARIANTS demand files per net, the SUMO seed per route
        files = demand_for_net(str(args.net), ep_seed % WORLD_VARIANTS, args.cache)
        world = World(files, seed=ep_seed, step_length=1.0 / cfg.sim_hz,
                      warmup_s=60.0 + 10.0 * (ep_seed % 7))
    import copy

    ep = Episode(world=world, seed=ep_seed, agent=agent, config=copy.deepcopy(cfg), cameras=rig,
                 town=args.town, max_steps=args.max_steps, cache=args.cache)
    wall0 = time.monotonic()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=args.max_steps, desc=f"route {index}", unit="step", leave=False,
                   dynamic_ncols=True)
    try:
        for state, _ in ep.run():
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{state.route_progress * 100:.0f}% v={state.speed:.1f}")
    finally:
        if bar is not None:
            bar.close()
        if world is not None:
            world.close()
    wall = time.monotonic() - wall0
    r = ep.result()
    rec = {"index": index, "seed": ep_seed,
           "town": ep.world.files.town,
           "world_variant": ep_seed % WORLD_VARIANTS,
           "route_edges": len(ep.route.edges),
           "instructions": [i.text for i in ep.route.instructions],
           "RC": r["RC"], "IS": r["IS"], "DS": r["DS"], "status": r["status"],
           "infractions": r["infractions"], "off_route_share": r["off_route_share"],
           "route_length_m": r["route_length"], "progress_m": r["progress_m"],
           "off_route_m": r["off_route_m"], "sim_time_s": r.get("time_s"), "steps": r.get("steps"),
           "wall_s": wall,
           "infraction_list": [asdict(i) for i in ep.infractions],
           "agent": _agent_summary(agent)}
    if isinstance(agent, ShadowExpert):
        rec["diagnosis"] = asdict(diagnose_route(agent.trace, ep.route, ep.world.static, rec))
    rec["_plot"] = (ep.world.static, ep.route, list(ep.poses), list(ep.infractions))
    return rec


def run_eval(args) -> dict:
    from . import score as scoring
    from ..sim.episode import EpisodeConfig

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.agent in MODEL_AGENTS and args.model_dir is None:
        raise SystemExit(f"dsdrive-eval: --agent {args.agent} needs --model-dir")
    if args.routes < 1:
        raise SystemExit("dsdrive-eval: --routes must be >= 1")
    n = args.sim_hz / args.model_hz
    if args.model_hz <= 0 or abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise SystemExit("dsdrive-eval: --sim-hz must be a whole multiple of --model-hz")

    spec = _model_spec(args.model_dir) if args.model_dir is not None else None
    ep_defaults = EpisodeConfig()
    cfg = EpisodeConfig(sim_hz=args.sim_hz, model_hz=args.model_hz, render=args.agent in MODEL_AGENTS)
    rig = _rig_for(spec) if (spec is not None and args.agent in MODEL_AGENTS) else None
    seeds = route_seeds(args.seed, args.routes)
    progress = not args.no_progress

    node_proc = None
    agent = None
    domain = None
    routes: list[dict] = []
    t_start = time.monotonic()
    try:
        if args.agent == "model" and (args.domain_id is not None or not args.no_node):
            from ..node.process import private_domain

            domain = private_domain(args.domain_id)
        if args.agent == "model" and not args.no_node:
            from .closed_loop import NodeProcess

            params = [f"image_transport:={args.transport}", "use_sim_time:=true",
                      "qos.reliability:=reliable", f"backend:={args.backend}",
                      f"precision:={args.precision}",
                      f"reasoning.enabled:={'true' if args.reasoning else 'false'}",
                      f"cameras:=[{','.join(spec.cameras)}]"]
            params += list(args.param)
            node_proc = NodeProcess(args.model_dir, out, params,
                                    args.params_file.resolve() if args.params_file else None)
        agent = _make_agent(args, spec, node_proc)
        if args.diagnose:
            agent = ShadowExpert(agent)
        route_iter: Any = list(enumerate(seeds))
        if progress:
            from tqdm import tqdm

            route_iter = tqdm(route_iter, desc=f"dsdrive-eval {args.agent}", unit="route",
                              dynamic_ncols=True)
        for i, s in route_iter:
            rec = run_route(i, s, args, agent, cfg, rig, progress)
            static, route, poses, infractions = rec.pop("_plot")
            if not args.no_plots:
                png = out / f"route_{i:02d}.png"
                title = (f"route {i} (seed {s}, {rec['town']}): {args.agent} — {rec['status']}, "
                         f"RC {rec['RC']:.1f} IS {rec['IS']:.2f} DS {rec['DS']:.1f}")
                plot_route(png, static, route, poses, infractions, title)
                rec["png"] = png.name
            routes.append(rec)
            if progress and hasattr(route_iter, "set_postfix_str"):
                route_iter.set_postfix_str(f"DS {rec['DS']:.1f}")
    finally:
        if agent is not None and hasattr(agent, "close"):
            agent.close()
        node_rc = node_proc.stop() if node_proc is not None else None

    mean = scoring.aggregate(routes)
    mean["collisions_ego_standing"] = collisions_ego_standing(routes)
    if args.diagnose:
        mean["diagnosis"] = diagnosis_aggregate([r["diagnosis"] for r in routes])
    mean["status"] = {}
    for r in routes:
        mean["status"][r["status"]] = mean["status"].get(r["status"], 0) + 1
    if args.agent == "model":
        plans = sum(r["agent"].get("plans", 0) for r in routes)
        missed = sum(r["agent"].get("missed", 0) for r in routes)
        mean["plans"], mean["missed"] = plans, missed
        mean["plan_rate"] = plans / max(plans + missed, 1)
    where = f"net {args.net}" if args.net is not None else f"town {args.town}"
    config = {"agent": args.agent, "where": where, "town": None if args.net else args.town,
              "net": str(args.net) if args.net else None, "routes": args.routes, "seed": args.seed,
              "route_seeds": seeds, "max_steps": args.max_steps, "sim_hz": args.sim_hz,
              "model_hz": args.model_hz,
              "waypoint_dt": spec.waypoint_dt if (spec and args.agent in MODEL_AGENTS) else ep_defaults.waypoint_dt,
              "waypoint_count": spec.waypoint_count if (spec and args.agent in MODEL_AGENTS) else ep_defaults.waypoints,
              "model_dir": str(args.model_dir.resolve()) if args.model_dir else None,
              "transport": args.transport, "plan_timeout": args.plan_timeout,
              "backend": args.backend, "precision": args.precision, "reasoning": args.reasoning,
              "cv_min_speed": args.cv_min_speed,
              "pid": "LMDrive: turn KP 1.25 KI 0.75 KD 0.3 n 40; speed KP 5 KI 0.5 KD 1 n 40; "
                     "max throttle 0.75, clip delta 0.35, brake < 0.1 m/s or ratio > 1.1; steer x0.8"}
    if node_proc is not None:
        config["node_command"] = node_proc.command
        config["node_exit_code"] = node_rc
        if agent is not None and hasattr(agent, "startup_s"):
            config["node_startup_s"] = agent.startup_s
    config["ros_domain_id"] = domain
    results = {"config": config, "routes": routes, "mean": mean,
               "wall_s": time.monotonic() - t_start}
    (out / "results.json").write_text(json.dumps(jsonable(results), indent=1))
    write_summary(out / "summary.md", results)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        res = run_eval(args)
    except KeyboardInterrupt:
        print("dsdrive-eval: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        print(f"dsdrive-eval: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    m = res["mean"]
    print(f"dsdrive-eval {args.agent}: {len(res['routes'])} routes  RC {m['RC']:.1f}  "
          f"IS {m['IS']:.3f}  DS {m['DS']:.1f}  -> {args.out / 'results.json'}")
    if "plan_rate" in m:
        print(f"  plans {m['plans']} received, {m['missed']} missed ({100 * m['plan_rate']:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

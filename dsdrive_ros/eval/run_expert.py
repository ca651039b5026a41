"""Closed-loop evaluation of the privileged expert (or any agent) on N routes of a town.

    python -m dsdrive_ros.eval.run_expert --town grid5 --routes 10 --seed 0 [--render] [--json out.json]

Route i uses episode seed `seed * 1000 + i` (fresh world: SUMO seed = episode seed, world files of
(town, episode seed % WORLD_VARIANTS), route drawn from the episode seed). Prints a table (route,
RC, IS, DS, infractions) and the mean, and writes the JSON next to it when --json is given.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from . import score as scoring
from ..sim.episode import Episode, EpisodeConfig
from ..sim.world import TOWNS


def evaluate(town: str, routes: int, seed: int, render: bool = False, agent_factory=None,
             net: str | None = None, verbose: bool = False, sim_hz: float = 10.0) -> dict:
    rows = []
    for i in range(routes):
        ep_seed = seed * 1000 + i
        agent = agent_factory() if agent_factory else None
        world = None
        if net:  # like Episode(town=...): demand variant ep_seed % WORLD_VARIANTS, SUMO seed ep_seed
            from ..sim.episode import WORLD_VARIANTS
            from ..sim.world import World, demand_for_net

            world = World(demand_for_net(net, ep_seed % WORLD_VARIANTS), seed=ep_seed,
                          step_length=1.0 / sim_hz, warmup_s=60.0 + 10.0 * (ep_seed % 7))
        ep = Episode(world, town=town, seed=ep_seed, agent=agent,
                     config=EpisodeConfig(render=render, sim_hz=sim_hz))
        t0 = time.time()
        n = 0
        for state, _ in ep.run():
            n += 1
            if verbose and state.events:
                print(f"  route {i} step {state.step}: {state.events}", file=sys.stderr)
        if world is not None:
            world.close()
        r = ep.result()
        r.update({"route": i, "seed": ep_seed, "wall_s": round(time.time() - t0, 2),
                  "steps_per_s": round(n / max(time.time() - t0, 1e-9), 1),
                  "edges": ep.route.edges})
        rows.append(r)
    agg = scoring.aggregate(rows)
    return {"town": town if not net else f"net:{net}", "seed": seed, "routes": rows, "mean": agg,
            "split": TOWNS[town].split if town in TOWNS and not net else "user"}


def format_table(res: dict) -> str:
    lines = [f"town {res['town']} ({res['split']}), seed {res['seed']}",
             f"{'route':>5} {'RC':>6} {'IS':>5} {'DS':>6} {'len_m':>6} {'time_s':>6}  status / infractions"]
    for r in res["routes"]:
        inf = ", ".join(f"{k}x{v}" for k, v in sorted(r["infractions"].items())) or "-"
        if r.get("off_route_share", 0) > 0:
            inf += f", off_route {100 * r['off_route_share']:.1f}%"
        lines.append(f"{r['route']:>5} {r['RC']:6.1f} {r['IS']:5.2f} {r['DS']:6.1f} "
                     f"{r['route_length']:6.0f} {r['time_s']:6.0f}  {r['status']} / {inf}")
    m = res["mean"]
    inf = ", ".join(f"{k}x{v}" for k, v in sorted(m["infractions"].items())) or "-"
    lines.append(f"{'mean':>5} {m['RC']:6.1f} {m['IS']:5.2f} {m['DS']:6.1f}  infractions: {inf}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--town", default="grid5", help=f"one of {sorted(TOWNS)}")
    ap.add_argument("--net", default=None, help="a user .net.xml instead of a town preset")
    ap.add_argument("--routes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", action="store_true", help="render the cameras too (slower)")
    ap.add_argument("--sim-hz", type=float, default=10.0)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    res = evaluate(a.town, a.routes, a.seed, a.render, net=a.net, verbose=a.verbose,
                   sim_hz=a.sim_hz)
    print(format_table(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    else:
        print(json.dumps({"town": res["town"], "seed": res["seed"], "mean": res["mean"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

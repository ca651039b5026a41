"""What `dsdrive-eval` writes: the route plots (route_XX.png), summary.md, and JSON-safe results."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .diagnose import format_table as format_diagnosis

__all__ = ["STANDING_MPS", "plot_route", "collisions_ego_standing", "write_summary", "jsonable", "fmt"]

STANDING_MPS = 0.5  # ego speed below which a collision counts as "hit while standing"

_INFRACTION_STYLE = {  # kind -> (marker, colour, label)
    "collision_pedestrian": ("X", "#d62728", "pedestrian collision"),
    "collision_vehicle": ("X", "#9467bd", "vehicle collision"),
    "collision_static": ("X", "#8c564b", "static collision"),
    "red_light": ("o", "#ff0000", "red light"),
    "stop_sign": ("s", "#ff7f0e", "stop sign"),
}


def plot_route(path: Path, static, route, poses: Sequence[Sequence[float]],
               infractions: Sequence[Any], title: str = "") -> None:
    """Driven path over the map's lane shapes, the route in another colour, infractions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection

    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    roads = [ln.shape for ln in static.lanes.values() if ln.kind == "road" and len(ln.shape) >= 2]
    walks = [ln.shape for ln in static.lanes.values() if ln.kind == "sidewalk" and len(ln.shape) >= 2]
    polys = [p for p in static.junctions.values() if len(p) >= 3]
    if polys:
        ax.add_collection(PolyCollection(polys, facecolors="#e4e4e4", edgecolors="none", zorder=1))
    if walks:
        ax.add_collection(LineCollection(walks, colors="#d9d2c3", linewidths=0.6, zorder=1))
    if roads:
        ax.add_collection(LineCollection(roads, colors="#b0b0b0", linewidths=1.6, zorder=2))
    rp = np.asarray(route.points)
    ax.plot(rp[:, 0], rp[:, 1], color="#1f77b4", lw=3.0, alpha=0.55, label="route", zorder=3)
    ax.plot(*rp[0], marker="^", color="#1f77b4", ms=9, ls="none", zorder=5, label="start")
    ax.plot(*rp[-1], marker="*", color="#1f77b4", ms=13, ls="none", zorder=5, label="end")
    if len(poses):
        pp = np.asarray(poses)[:, :2]
        ax.plot(pp[:, 0], pp[:, 1], color="#ff7f0e", lw=1.6, label="driven", zorder=4)
        ax.plot(*pp[-1], marker="o", color="#ff7f0e", ms=6, zorder=5)
    seen = set()
    for inf in infractions:
        kind = inf.kind if hasattr(inf, "kind") else inf["kind"]
        x = inf.x if hasattr(inf, "x") else inf["x"]
        y = inf.y if hasattr(inf, "y") else inf["y"]
        marker, colour, label = _INFRACTION_STYLE.get(kind, ("D", "k", kind))
        ax.scatter([x], [y], marker=marker, s=110, c=colour, edgecolors="k", linewidths=0.6,
                   zorder=6, label=None if kind in seen else label)
        seen.add(kind)
    pts = rp if not len(poses) else np.vstack([rp, np.asarray(poses)[:, :2]])
    lo, hi = pts.min(0), pts.max(0)
    c, half = 0.5 * (lo + hi), 0.5 * float(max(hi - lo)) + 40.0
    ax.set_xlim(c[0] - half, c[0] + half)
    ax.set_ylim(c[1] - half, c[1] + half)
    ax.set_aspect("equal")
    ax.set_xlabel("x east (m)")
    ax.set_ylabel("y north (m)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def collisions_ego_standing(routes: list[dict]) -> int:
    """Collisions where the ego was below STANDING_MPS: the other road user ran into it."""
    return sum(1 for r in routes for i in r.get("infraction_list", [])
               if i["kind"].startswith("collision") and i.get("speed", 0.0) < STANDING_MPS)


def write_summary(path: Path, results: dict) -> None:
    c = results["config"]
    lines = [f"# dsdrive-eval: {c['agent']} on {c['where']}", "",
             f"- routes: {c['routes']} (seed {c['seed']}: episode seeds {c['route_seeds']})",
             f"- sim {c['sim_hz']:g} Hz, agent {c['model_hz']:g} Hz, waypoint dt {c['waypoint_dt']:g} s"
             + (f", max {c['max_steps']} steps per route" if c.get("max_steps") else ""),
             ]
    if c["agent"] == "model":
        lines.append(f"- model: `{c['model_dir']}` via dsdrive_node ({c['transport']} cameras, "
                     f"plan timeout {c['plan_timeout']:g} s)")
    lines += ["", "| route | seed | length m | status | RC % | IS | DS | infractions | plans ok / missed |"
              " step latency p50 ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["routes"]:
        inf = ", ".join(f"{k} {n}" for k, n in sorted(r["infractions"].items())) or "-"
        if r["off_route_share"] > 0:
            inf += f" (off-route {100 * r['off_route_share']:.1f} %)"
        a = r["agent"]
        plans = f"{a['plans']} / {a['missed']}" if "plans" in a else "-"
        lat = fmt(a.get("latency_ms", {}).get("p50")) if "plans" in a else "-"
        lines.append(f"| {r['index']} | {r['seed']} | {r['route_length_m']:.0f} | {r['status']} | "
                     f"{r['RC']:.1f} | {r['IS']:.3f} | {r['DS']:.1f} | {inf} | {plans} | {lat} |")
    m = results["mean"]
    inf = ", ".join(f"{k} {n}" for k, n in sorted(m["infractions"].items())) or "-"
    lines.append(f"| **mean** | | | | **{m['RC']:.1f}** | **{m['IS']:.3f}** | **{m['DS']:.1f}** | "
                 f"{inf} | | |")
    lines += ["", "DS = RC x IS per route; the means are over routes (LangAuto / CARLA leaderboard).",
              f"Collisions with the ego below {STANDING_MPS:g} m/s (hit while standing or creeping): "
              f"{m.get('collisions_ego_standing', 0)} of {sum(n for k, n in m['infractions'].items() if k.startswith('collision'))}.",
              ""]
    if "diagnosis" in m:
        lines += ["## Diagnosis (eval/diagnose.py)", "", format_diagnosis({c["agent"]: m["diagnosis"]}), ""]
    path.write_text("\n".join(lines))


def jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    return o

"""Why a closed-loop drive lost its points: per-failure counts for dsdrive-eval.

    dsdrive-eval ... --diagnose          # results.json gains "diagnosis" per route and in the mean
    python -m dsdrive_ros.eval.diagnose OUT1/results.json [OUT2/results.json ...]   # one table

`ShadowExpert` wraps the evaluated agent: each step the privileged expert looks at the same state the
agent is in and says what it would do (never what happens: the agent's control is applied). That
gives "should wait" without a human label. Per route, `diagnose_route` then counts:
  * waiting: steps where the expert would stop and the ego is slower than CREEP_MAX_MPS; of those,
    creeping (the ego still rolls, >= STAND_MPS) and the expert's binding constraint (light,
    leader, yield, end of route);
  * hesitation: the ego stands while the expert would drive;
  * standstills (>= STAND_MIN_S below STAND_MPS): where the ego stood, on a pedestrian crossing, inside
    a junction (where crossing traffic drives) or in a lane;
  * red lights: the ego's speed at the line;
  * route deviation: the junction it happened at (legs, signalised, the manoeuvre asked) and whether
    the instruction for it was active, and for how long, before the ego entered it.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..sim.scene import SceneState

__all__ = ["StepTrace", "ShadowExpert", "RouteDiagnosis", "diagnose_route", "aggregate", "format_table"]

STAND_MPS = 0.3  # below this the ego stands
CREEP_MAX_MPS = 2.5  # a wait the ego is close to holding: faster than this it is still braking
STAND_MIN_S = 2.0  # a standstill this long counts as a stop somewhere
CROSSING_MARGIN_M = 2.0  # ego half length past the crossing's edge: its body is on the crossing


@dataclass
class StepTrace:
    t: float
    x: float
    y: float
    speed: float
    s: float  # metres along the route
    instruction_id: int
    expert_action: str  # what the expert would do in this state: "stop", "go", "slow", "turn ..."
    expert_reason: str  # the expert's binding constraint: "free", "leader", "light", "yield", "end"


class ShadowExpert:
    """A Policy that drives with `inner` and asks a privileged Expert what it would do each step."""

    def __init__(self, inner: Any):
        from ..policies.expert import Expert

        self.inner, self.expert = inner, Expert()
        self.trace: list[StepTrace] = []

    def __getattr__(self, name: str) -> Any:  # stats, reasoning ... of the wrapped agent
        return getattr(self.inner, name)

    def reset(self, info) -> None:
        self.trace, self.route_length = [], info.route.length
        self.expert.reset(info)
        self.inner.reset(info)

    def act(self, state: SceneState, images):
        shadow = copy.copy(state)  # the expert writes action / planned_waypoints into the state
        self.expert.act(shadow, None)
        self.trace.append(StepTrace(state.t, state.x, state.y, state.speed,
                                    state.route_progress * self.route_length, state.instruction_id,
                                    shadow.action, str(self.expert.debug.get("reason", ""))))
        return self.inner.act(state, images)


@dataclass
class RouteDiagnosis:
    steps: int = 0
    waiting_steps: int = 0
    creeping_steps: int = 0
    wait_reasons: dict[str, int] = field(default_factory=dict)
    hesitation_steps: int = 0  # standing while the expert would drive
    standstills: dict[str, int] = field(default_factory=dict)  # where: crossing / junction / lane
    red_light_speeds: list[float] = field(default_factory=list)
    deviation: dict[str, Any] | None = None


def _inside(poly: np.ndarray, x: float, y: float) -> bool:
    from matplotlib.path import Path as MplPath

    return bool(MplPath(poly).contains_point((x, y)))


def _seg_dist(p: np.ndarray, shape: np.ndarray) -> float:
    a, b = shape[:-1], shape[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-9), 0, 1)
    return float(np.min(np.linalg.norm(a + t[:, None] * ab - p, axis=1)))


def where_standing(static, x: float, y: float) -> str:
    p = np.array([x, y])
    for ln in static.lanes.values():
        if ln.function == "crossing" and _seg_dist(p, ln.shape) < ln.width / 2 + CROSSING_MARGIN_M:
            return "crossing"
    for poly in static.junctions.values():
        if _inside(poly, x, y):
            return "junction"
    return "lane"


def _junction_legs(static, junction: str) -> int:
    return len({n for f, t in static.edge_nodes.values() if junction in (f, t) for n in (f, t)} - {junction})


def diagnose_route(trace: list[StepTrace], route, static, result: dict) -> RouteDiagnosis:
    d = RouteDiagnosis(steps=len(trace))
    if not trace:
        return d
    dt = (trace[-1].t - trace[0].t) / max(len(trace) - 1, 1)
    reasons: Counter = Counter()
    run: list[StepTrace] = []
    for i, st in enumerate(trace + [None]):
        if st is not None:
            wait = st.expert_action == "stop"
            if wait and st.speed < CREEP_MAX_MPS:
                d.waiting_steps += 1
                reasons[st.expert_reason or "?"] += 1
                d.creeping_steps += st.speed >= STAND_MPS
            if not wait and st.speed < STAND_MPS and st.expert_action != "slow":
                d.hesitation_steps += 1
        if st is not None and st.speed < STAND_MPS:
            run.append(st)
            continue
        if run and len(run) * dt >= STAND_MIN_S:
            mid = run[len(run) // 2]
            where = where_standing(static, mid.x, mid.y)
            d.standstills[where] = d.standstills.get(where, 0) + 1
        run = []
    d.wait_reasons = dict(reasons)
    for inf in result.get("infraction_list", []):
        if inf["kind"] == "red_light":
            d.red_light_speeds.append(round(float(inf.get("speed", float("nan"))), 2))
    if result.get("status") == "route_deviation":
        d.deviation = _deviation(trace, route, static, float(result.get("progress_m", trace[-1].s)))
    return d


def _deviation(trace: list[StepTrace], route, static, progress: float) -> dict[str, Any]:
    """The junction the ego left the route at, and what it had been told before entering it."""
    passes = [j for j in route.junctions if j.s_entry <= progress + 5.0]
    if not passes:
        return {"junction": None, "where": "before the first junction"}
    j = passes[-1]
    ins = next((k for k in route.instructions if k.junction == j.junction), None)
    entry = next((st for st in trace if st.s >= j.s_entry), trace[-1])
    told = [st for st in trace if ins is not None and st.instruction_id == ins.id]
    return {"junction": j.junction, "legs": _junction_legs(static, j.junction),
            "signalised": j.tls is not None, "maneuver": j.maneuver, "decision": j.decision,
            "instruction": ins.text if ins else None,
            "told_s_before_entry": round(entry.t - told[0].t, 1) if told else None,
            "told_m_before_entry": round(j.s_entry - told[0].s, 1) if told else None}


def aggregate(diags: list[dict]) -> dict[str, Any]:
    wait = sum(d["waiting_steps"] for d in diags)
    creep = sum(d["creeping_steps"] for d in diags)
    stand, reasons, devs = Counter(), Counter(), Counter()
    for d in diags:
        stand.update(d["standstills"])
        reasons.update(d["wait_reasons"])
        if d["deviation"]:
            dv = d["deviation"]
            devs[f"{dv.get('legs', '?')}-leg {'signalised' if dv.get('signalised') else 'unsignalised'} "
                 f"{dv.get('maneuver', '?')}"] += 1
    told = [d["deviation"]["told_s_before_entry"] for d in diags
            if d["deviation"] and d["deviation"].get("told_s_before_entry") is not None]
    return {"routes": len(diags), "waiting_steps": wait, "creeping_share": creep / wait if wait else None,
            "wait_reasons": dict(reasons), "hesitation_steps": sum(d["hesitation_steps"] for d in diags),
            "standstills": dict(stand),
            "red_lights": sum(len(d["red_light_speeds"]) for d in diags),
            "red_light_speed_median": float(np.median([v for d in diags for v in d["red_light_speeds"]]))
            if any(d["red_light_speeds"] for d in diags) else None,
            "deviations": dict(devs), "deviation_told_s_median": float(np.median(told)) if told else None,
            "deviations_told_under_3s": sum(t < 3.0 for t in told)}


def format_table(rows: dict[str, dict]) -> str:
    """One markdown row per results file (its aggregate)."""
    out = ["| run | routes | creeping (of waits) | hesitation steps | standstills: crossing / junction / lane |"
           " red lights | deviations (junction shape) | instruction before entry (median s) |",
           "|---|---|---|---|---|---|---|---|"]
    for name, a in rows.items():
        st = a["standstills"]
        creep = f"{100 * a['creeping_share']:.0f} % of {a['waiting_steps']}" if a["creeping_share"] is not None else "-"
        devs = ", ".join(f"{k} x{n}" for k, n in sorted(a["deviations"].items())) or "-"
        told = f"{a['deviation_told_s_median']:.1f}" if a["deviation_told_s_median"] is not None else "-"
        out.append(f"| {name} | {a['routes']} | {creep} | {a['hesitation_steps']} | "
                   f"{st.get('crossing', 0)} / {st.get('junction', 0)} / {st.get('lane', 0)} | {a['red_lights']} | "
                   f"{devs} | {told} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsdrive_ros.eval.diagnose", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="dsdrive-eval results.json files (run with --diagnose)")
    args = ap.parse_args(argv)
    rows = {}
    for p in args.results:
        res = json.loads(p.read_text())
        diags = [r["diagnosis"] for r in res["routes"] if r.get("diagnosis")]
        if not diags:
            print(f"{p}: no diagnosis (run dsdrive-eval with --diagnose)", file=sys.stderr)
            return 2
        rows[p.parent.name if p.name == "results.json" else p.stem] = aggregate(diags)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

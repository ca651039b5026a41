"""The expert's longitudinal laws: IDM (Treiber 2000), stopping at a point, travel times, the light
ahead, and the 1-D speed rollout that becomes the expert's online plan (`planned_waypoints`)."""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

import numpy as np

from ..sim.routes import Route
from ..sim.scene import SceneState
from .expert_params import ExpertParams

__all__ = ["Leader", "idm_accel", "stop_accel", "travel_time", "travel_time_vec", "light_state",
           "rollout_waypoints"]


class Leader(NamedTuple):
    """The vehicle the ego follows."""

    gap: float  # m, the ego's front bumper to the leader's rear (along the route)
    speed: float  # m/s, the leader's speed along the route


def idm_accel(v: float, v0: float, gap: float, dv: float, p: ExpertParams) -> float:
    """IDM acceleration; dv = v - v_leader; gap bumper to obstacle (m)."""
    v0 = max(v0, 0.1)
    s_star = p.idm_s0 + max(0.0, v * p.idm_T + v * dv / (2 * math.sqrt(p.idm_a * p.idm_b)))
    gap = max(gap, 0.1)
    return p.idm_a * (1.0 - (v / v0) ** 4 - (s_star / gap) ** 2)


def stop_accel(v: float, v_des: float, gap: float, p: ExpertParams) -> float:
    """Come to rest `gap` m ahead: IDM towards a stationary obstacle idm_s0 beyond the stop point,
    made firm near the end by the kinematic deceleration v^2 / (2 gap)."""
    a = idm_accel(v, v_des, gap + p.idm_s0, v, p)
    if gap <= 0.2:
        return -p.max_decel if v > 0.05 else -1.0
    if gap < v * v / (2 * 1.5) + 1.0:
        a = min(a, -v * v / (2 * gap))
    return a


def travel_time(d: float, v: float, v_max: float, a: float = 1.5) -> float:
    """Time to cover d metres from speed v accelerating at a up to v_max."""
    if d <= 0:
        return 0.0
    v_max = max(v_max, v, 0.5)
    t_acc = (v_max - v) / a
    d_acc = v * t_acc + 0.5 * a * t_acc ** 2
    if d <= d_acc:
        return (-v + math.sqrt(v * v + 2 * a * d)) / a
    return t_acc + (d - d_acc) / v_max


def travel_time_vec(d: np.ndarray, v: float, v_max: float, a: float = 1.5) -> np.ndarray:
    """Vectorised `travel_time`."""
    d = np.maximum(np.asarray(d, dtype=np.float64), 0.0)
    v_max = max(v_max, v, 0.5)
    t_acc = (v_max - v) / a
    d_acc = v * t_acc + 0.5 * a * t_acc ** 2
    t1 = (-v + np.sqrt(v * v + 2 * a * d)) / a
    t2 = t_acc + (d - d_acc) / v_max
    return np.where(d <= d_acc, t1, t2)


def light_state(tls_states: Callable[[], Mapping[str, str]], tls: str, link: int) -> str:
    """"red" | "yellow" | "green" of one signal link (unknown links count as green)."""
    st = tls_states().get(tls, "")
    c = st[link] if 0 <= link < len(st) else "G"
    if c in "Gg":
        return "green"
    if c in "yY":
        return "yellow"
    return "red" if c in "rRus" else "green"


def rollout_waypoints(state: SceneState, s: float, v: float, v_des: float, stops: dict[str, float],
                      lead: Leader | None, route: Route, vcurve: np.ndarray, p: ExpertParams,
                      max_accel: float) -> list[list[float]]:
    """1-D IDM rollout along the route (obstacles frozen), 5 points at 0.5 s, base_link."""
    r = route
    dt = 0.1
    pos, vel = 0.0, v
    lead_gap = lead.gap if lead is not None else None
    lead_v = lead.speed if lead is not None else 0.0
    pts = []
    c, si = math.cos(state.yaw), math.sin(state.yaw)
    for k in range(1, 26):
        i = r.index_at(s + pos)
        vd = float(vcurve[min(i + 3, len(vcurve) - 1)])
        a = idm_accel(vel, max(min(vd, v_des if pos < 5 else vd), 0.5), 1e9, 0.0, p)
        for gap in stops.values():
            a = min(a, idm_accel(vel, vd, gap - pos + p.idm_s0, vel, p))
        if lead_gap is not None:
            a = min(a, idm_accel(vel, vd, lead_gap + lead_v * k * dt - pos, vel - lead_v, p))
        a = max(min(a, max_accel), -p.max_decel)
        nv = max(vel + a * dt, 0.0)
        pos += 0.5 * (vel + nv) * dt
        vel = nv
        if k % 5 == 0:
            x, y, _ = r.point_at(s + pos)
            dx, dy = x - state.x, y - state.y
            pts.append([c * dx + si * dy, -si * dx + c * dy])
    return pts

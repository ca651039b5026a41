"""The expert's steering: path tracking of the car's centre (default) or rear-axle pure pursuit."""
from __future__ import annotations

import math

import numpy as np

from ..sim.ego import EgoParams
from ..sim.routes import Route
from ..sim.scene import SceneState
from .expert_params import ExpertParams

__all__ = ["pure_pursuit", "centre_tracking"]


def pure_pursuit(state: SceneState, s: float, v: float, route: Route, e: EgoParams,
                 p: ExpertParams) -> float:
    """Pure pursuit from the rear axle (kept for comparison)."""
    rx = state.x - 0.5 * e.wheelbase * math.cos(state.yaw)
    ry = state.y - 0.5 * e.wheelbase * math.sin(state.yaw)
    ld = min(max(p.lookahead_min + p.lookahead_gain * v, p.lookahead_min), p.lookahead_max)
    tx, ty, _ = route.point_at(s - 0.5 * e.wheelbase + ld)
    dx, dy = tx - rx, ty - ry
    alpha = math.atan2(dy, dx) - state.yaw
    dist = max(math.hypot(dx, dy), 1.0)
    steer = math.atan2(2.0 * e.wheelbase * math.sin(alpha), dist)
    return max(-e.max_steer, min(e.max_steer, steer))


def centre_tracking(state: SceneState, s: float, v: float, route: Route, e: EgoParams,
                    p: ExpertParams, kappa_signed: np.ndarray) -> float:
    """Path tracking of the centre (the bicycle model's reference point): choose the slip angle
    beta so the centre's velocity points along the path (previewed `preview_s` ahead to cover
    the steering lag) plus a lateral correction atan(k e / (v + v0)); then
    delta = atan(L / lr tan(beta)). `kappa_signed`: the route's smoothed signed curvature."""
    r = route
    lr = 0.5 * e.wheelbase
    sp = s + max(v, 1.0) * p.preview_s  # preview covers the steering lag
    x0, y0, yaw0 = r.point_at(s)
    _, _, yawp = r.point_at(sp)
    ex = state.x - x0
    ey = state.y - y0
    lat = -math.sin(yaw0) * ex + math.cos(yaw0) * ey  # + = left of the path
    corr = math.atan2(-p.k_lateral * lat, v + p.v_soft)
    # feed-forward slip for the path's curvature, and a heading loop no faster than
    # `heading_tau` (the yaw rate is v / lr * sin(beta): at speed a full correction per step
    # overshoots and, with the steering limits, falls into a limit cycle)
    kap = float(kappa_signed[r.index_at(sp)])
    beta_ff = math.asin(max(-0.9, min(0.9, lr * kap)))
    err = yawp + corr - beta_ff - state.yaw
    err = math.atan2(math.sin(err), math.cos(err))
    g = min(1.0, lr / (max(v, 0.1) * p.heading_tau))
    beta = beta_ff + g * err
    tb = max(-10.0, min(10.0, math.tan(max(-1.4, min(1.4, beta)))))
    steer = math.atan(e.wheelbase / lr * tb)
    return max(-e.max_steer, min(e.max_steer, steer))

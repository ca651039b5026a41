"""Privileged expert driver (rule-based, reads the simulator's ground truth). This module composes
the laws of `lateral`, `longitudinal`, `prediction` and `conflicts`; the overview:

Lateral: path tracking of the car's centre (= the bicycle model's reference point): the slip angle
is chosen so the centre's velocity points along the route (previewed 0.25 s ahead for the steering
lag) plus a lateral correction atan(k e / (v + v0)) (`lateral="pure_pursuit"` keeps a rear-axle pure
pursuit for comparison).

Longitudinal: the lowest of several accelerations (IDM, Treiber 2000):
  * free road towards v_des = min(lane limit, `max_speed`, curvature speed profile ahead:
    v <= sqrt(a_lat / |kappa|), reachable with `comfort_decel`);
  * a stop at the stop line when the route's light is red, or yellow and stoppable with
    `yellow_decel`;
  * the leader: the nearest vehicle in the route corridor ahead moving along it (IDM with its speed
    along the route); a standing one is measured exactly by sweeping the ego's box along the path;
  * yielding: every agent within 110 m gets predicted tracks over `horizon_s` -- SUMO vehicles along
    their OWN lanes (internal junction lanes included, cut at their red stop line; privileged
    `vehicle.getNextLinks`), assumed to possibly accelerate (earliest arrival) and to slow down to
    their lanes' limits, e.g. in turns (latest exit); pedestrians at constant velocity. Where a track enters the ego's corridor
    (half widths + heading-aware extent + margin) while the ego's own time window there overlaps, the
    ego stops before the conflict;
  * junction gate: a vehicle conflict inside a junction holds the ego at the junction's entry (stop
    line) until clear, and the ego does not enter a junction it would have to stop in ("don't block
    the box"); once inside it only stops for what is in its path now and for pedestrians;
  * the route's end (stop there).
Actions (`SceneState.action`): "stop" when a stop (light, yield, the end) limits the car and it is
stopping or stopped, or when it stands; "turn left"/"turn right" inside or just before the junction
of a left/right manoeuvre; "slow" when braking or held well under the limit (curves, leaders);
"go" otherwise.

Waypoints. Ground truth for training is the ego's ACTUAL future (recorded by `Episode.frames()`:
poses at t + 0.5 s ... t + 2.5 s in base_link at t, the episode running 2.5 s past the last frame).
For online use the expert also writes `state.planned_waypoints`: a 1-D IDM rollout of its speed
profile along the route (obstacles frozen), mapped onto the route polyline.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..sim.ego import Control, EgoParams
from ..sim.routes import Route, RouteTracker
from ..sim.scene import SceneState
from .conflicts import ConflictFinder
from .expert_params import ExpertParams
from .lateral import centre_tracking, pure_pursuit
from .longitudinal import idm_accel, light_state, rollout_waypoints, stop_accel
from .prediction import TrackPredictor

if TYPE_CHECKING:
    from ..sim.episode import EpisodeInfo

__all__ = ["ExpertParams", "Expert"]


class Expert:
    """A `Policy` (sim/episode.py): `reset(info)`, `act(state, images) -> Control`. The laws live
    in `longitudinal`, `lateral`, `prediction` and `conflicts`; this class composes them."""

    def __init__(self, params: ExpertParams | None = None, ego: EgoParams | None = None):
        self.p = params or ExpertParams()
        self.ego = ego or EgoParams()
        self.route: Route | None = None
        self.tracker: RouteTracker | None = None
        self.debug: dict = {}
        self.trace = False  # record per-agent conflict windows in trace_agents (debugging)
        self.trace_agents: dict = {}

    def reset(self, info: EpisodeInfo) -> None:
        self.route = info.route
        self.ego = info.ego_params
        self.tracker = RouteTracker(self.route, 0.0)
        self.tls = info.tls_states  # callable -> {tls: state string}
        self._all_agents = getattr(info, "all_agents", None)  # privileged, wider than state.agents
        self._kappa = np.abs(self.route.curvature())
        # smooth curvature over ~5 m (junction polylines are piecewise)
        k = np.ones(5) / 5
        self._kappa = np.convolve(self._kappa, k, mode="same")
        self._kappa_signed = np.convolve(self.route.curvature(), k, mode="same")
        vc = np.sqrt(self.p.a_lat / np.maximum(self._kappa, 1e-4))
        self._vcurve = np.minimum(vc, np.minimum(self.route.speed_limit, self.p.max_speed))
        # the path used to look for other agents runs on straight past the route's end
        P, S = self.route.points, self.route.s
        d = P[-1] - P[-2]
        d = d / max(float(np.hypot(*d)), 1e-9)
        ext = np.arange(1.0, 41.0)
        world = getattr(info, "world", None)
        predictor = TrackPredictor(world.static if world is not None else None,
                                   world.traci if world is not None else None, self.p)
        self.conflicts = ConflictFinder(self.p, self.ego, self.route,
                                        np.vstack([P, P[-1] + ext[:, None] * d]),
                                        np.concatenate([S, S[-1] + ext]), predictor)
        self._dt = float(info.dt)
        self._still_s = 0.0

    # ------------------------------------------------------------------------------------------
    def act(self, state: SceneState, images=None) -> Control:
        p, e, r = self.p, self.ego, self.route
        s, _ = self.tracker.update(state.x, state.y)
        v = state.speed
        self._still_s = self._still_s + self._dt if v < 0.1 else 0.0
        half_len = 0.5 * e.length
        s_front = s + half_len

        # -- lateral
        if p.lateral == "pure_pursuit":
            steer = pure_pursuit(state, s, v, r, e, p)
        else:
            steer = centre_tracking(state, s, v, r, e, p, self._kappa_signed)

        # -- longitudinal
        i0 = r.index_at(s)
        i1 = r.index_at(s + p.path_ahead_m)
        ahead_s = r.s[i0:i1 + 1]
        # curvature / limit profile, reachable with comfort_decel
        vprof = self._vcurve[i0:i1 + 1]
        reach = np.sqrt(vprof ** 2 + 2 * p.comfort_decel * np.maximum(ahead_s - s_front + 2.0, 0.0))
        v_des = float(min(reach.min() if len(reach) else p.max_speed, self._vcurve[i0]))
        v_des = max(v_des, 0.5)
        acc = {"free": idm_accel(v, v_des, 1e9, 0.0, p)}
        stops: dict[str, float] = {}  # reason -> gap (m) from the front bumper to the stop point

        # traffic light ahead
        for j in r.junctions:
            if j.tls is None or j.link_index < 0:
                continue
            d_line = j.s_entry - s_front
            if d_line < -0.5 or d_line > 80.0:
                continue
            st = light_state(self.tls, j.tls, j.link_index)
            if st == "red" or (st == "yellow" and v * v / (2 * max(d_line, 0.1)) <= p.yellow_decel):
                if d_line > -0.2:
                    stops["light"] = min(stops.get("light", 1e9), d_line - p.stop_line_margin)
            break

        # agents: leader and yielding
        self.trace_agents = {}
        pool = (self._all_agents() if self._all_agents is not None else None) or state.agents
        found = self.conflicts.assess(pool, s, s_front, v, v_des, self._still_s,
                                      self.trace_agents if self.trace else None)
        lead = found.leader
        if lead is not None:
            acc["leader"] = idm_accel(v, v_des, lead.gap, v - lead.speed, p)
        if found.yield_gap is not None:
            stops["yield"] = found.yield_gap
        # end of route
        stops["end"] = r.length - 0.5 - s  # centre comes to rest 0.5 m before the route's end
        for k, gap in stops.items():
            acc[k] = stop_accel(v, v_des, gap, p)
        reason = min(acc, key=acc.get)
        a = max(min(acc[reason], e.max_accel), -p.max_decel)
        if v < 0.05 and a < 0:
            a = -1.0  # hold
        self.debug = {"s": s, "v_des": v_des, "acc": acc, "reason": reason, "stops": stops,
                      "yield_by": found.yield_by}

        # -- action label
        jn = r.next_junction(s)
        near_turn = (jn is not None and jn.maneuver in ("left", "right")
                     and jn.s_entry - s_front < 8.0 and s < jn.s_exit)
        stopping = reason in stops and (v < 0.5 or a < -0.3) and stops[reason] < 25.0
        if stopping or (v < 0.3 and a <= 0.05):
            action = "stop"
        elif near_turn:
            action = f"turn {jn.maneuver}"
        elif a < -0.8 or v_des < 0.75 * min(float(r.speed_limit[i0]), p.max_speed):
            action = "slow"
        else:
            action = "go"
        state.action = action
        state.planned_waypoints = rollout_waypoints(state, s, v, v_des, stops, lead, r,
                                                    self._vcurve, p, e.max_accel)

        ctrl = Control(steer_angle=steer, accel=a)
        # CARLA-like mirror for consumers that want throttle/brake/steer
        ctrl.steer = steer / e.max_steer
        ctrl.throttle = max(a, 0.0) / e.max_accel
        ctrl.brake = max(-a, 0.0) / e.max_decel
        return ctrl

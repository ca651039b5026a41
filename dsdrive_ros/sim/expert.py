"""Privileged expert driver (rule-based, reads the simulator's ground truth).

Lateral: pure pursuit on the route polyline from the rear axle, lookahead 4.5..14 m growing with speed.
Longitudinal: the lowest of several accelerations (IDM, Treiber 2000):
  * free road towards v_des = min(lane limit, `max_speed`, curvature speed profile ahead:
    v <= sqrt(a_lat / |kappa|), reachable with `comfort_decel`);
  * a stationary virtual obstacle at the stop line when the light ahead is red, or yellow and
    stoppable with `yellow_decel`;
  * the leader: the nearest agent inside the route corridor ahead, moving along it (IDM with its speed
    along the route);
  * yielding: any agent (vehicle or pedestrian) whose constant-velocity prediction over `horizon_s`
    enters the corridor ahead while the ego would be there (time windows overlap) or that stands in
    it -> a stationary obstacle where it enters;
  * the route's end (stop there).
Actions (`SceneState.action`): "stop" when a stop (light, yield, stopped leader or the end) is what
limits the car and it is stopping or stopped; "turn left"/"turn right" inside or just before the
junction of a left/right manoeuvre; "slow" when braking or held well under the limit (curves,
leaders); "go" otherwise.

Waypoints. Ground truth for training is the ego's ACTUAL future (recorded by `Episode.frames()`:
poses at t + 0.5 s ... t + 2.5 s in base_link at t, the episode running 2.5 s past the last frame).
For online use the expert also writes `state.planned_waypoints`: a 1-D IDM rollout of its speed
profile along the route (obstacles frozen), mapped onto the route polyline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ego import Control, EgoParams
from .routes import Route, RouteTracker
from .scene import SceneState

__all__ = ["ExpertParams", "Expert"]


@dataclass
class ExpertParams:
    max_speed: float = 9.0  # m/s cap below the lane limit
    a_lat: float = 2.0  # m/s^2 lateral acceleration in curves
    comfort_decel: float = 2.5  # m/s^2 for the curvature profile
    idm_a: float = 2.0  # IDM max acceleration
    idm_b: float = 3.0  # IDM comfortable deceleration
    idm_T: float = 1.2  # s time headway
    idm_s0: float = 2.5  # m standstill gap (bumper to bumper / to virtual obstacles)
    max_decel: float = 7.0
    yellow_decel: float = 3.5  # stop at yellow if it needs at most this deceleration
    stop_line_margin: float = 1.0  # m between the front bumper and the stop line when stopped
    lookahead_min: float = 4.5
    lookahead_gain: float = 0.9  # s
    lookahead_max: float = 14.0
    horizon_s: float = 4.0  # prediction horizon for yielding
    corridor_margin_vehicle: float = 0.45  # m added to both half widths
    corridor_margin_ped: float = 0.5
    path_ahead_m: float = 55.0
    yield_buffer_s: float = 1.5  # ego must pass a conflict this much before the other arrives


def _idm(v: float, v0: float, gap: float, dv: float, p: ExpertParams) -> float:
    """IDM acceleration; dv = v - v_leader; gap bumper to obstacle (m)."""
    v0 = max(v0, 0.1)
    s_star = p.idm_s0 + max(0.0, v * p.idm_T + v * dv / (2 * math.sqrt(p.idm_a * p.idm_b)))
    gap = max(gap, 0.1)
    return p.idm_a * (1.0 - (v / v0) ** 4 - (s_star / gap) ** 2)


class Expert:
    """Agent interface: `reset(info)`, `act(state, images) -> Control` (see sim/episode.py)."""

    def __init__(self, params: ExpertParams | None = None, ego: EgoParams | None = None):
        self.p = params or ExpertParams()
        self.ego = ego or EgoParams()
        self.route: Route | None = None
        self.tracker: RouteTracker | None = None
        self.debug: dict = {}

    def reset(self, info) -> None:
        self.route = info.route
        self.ego = info.ego_params
        self.tracker = RouteTracker(self.route, 0.0)
        self.tls = info.tls_states  # callable -> {tls: state string}
        self._kappa = np.abs(self.route.curvature())
        # smooth curvature over ~5 m (junction polylines are piecewise)
        k = np.ones(5) / 5
        self._kappa = np.convolve(self._kappa, k, mode="same")
        vc = np.sqrt(self.p.a_lat / np.maximum(self._kappa, 1e-4))
        self._vcurve = np.minimum(vc, np.minimum(self.route.speed_limit, self.p.max_speed))
        self._committed_tls: set[int] = set()

    # ------------------------------------------------------------------------------------------
    def act(self, state: SceneState, images=None) -> Control:
        p, e, r = self.p, self.ego, self.route
        s, _ = self.tracker.update(state.x, state.y)
        v = state.speed
        half_len = 0.5 * e.length
        s_front = s + half_len

        # -- lateral: pure pursuit from the rear axle
        rx = state.x - 0.5 * e.wheelbase * math.cos(state.yaw)
        ry = state.y - 0.5 * e.wheelbase * math.sin(state.yaw)
        ld = min(max(p.lookahead_min + p.lookahead_gain * v, p.lookahead_min), p.lookahead_max)
        tx, ty, _ = r.point_at(s - 0.5 * e.wheelbase + ld)
        dx, dy = tx - rx, ty - ry
        alpha = math.atan2(dy, dx) - state.yaw
        dist = max(math.hypot(dx, dy), 1.0)
        steer = math.atan2(2.0 * e.wheelbase * math.sin(alpha), dist)
        steer = max(-e.max_steer, min(e.max_steer, steer))

        # -- longitudinal
        i0 = r.index_at(s)
        i1 = r.index_at(s + p.path_ahead_m)
        ahead_s = r.s[i0:i1 + 1]
        # curvature / limit profile, reachable with comfort_decel
        vprof = self._vcurve[i0:i1 + 1]
        reach = np.sqrt(vprof ** 2 + 2 * p.comfort_decel * np.maximum(ahead_s - s_front + 2.0, 0.0))
        v_des = float(min(reach.min() if len(reach) else p.max_speed, self._vcurve[i0]))
        v_des = max(v_des, 0.5)
        acc = {"free": _idm(v, v_des, 1e9, 0.0, p)}
        stops: dict[str, float] = {}  # reason -> gap (m) from the front bumper to the stop point

        # traffic light ahead
        for j in r.junctions:
            if j.tls is None or j.link_index < 0:
                continue
            d_line = j.s_entry - s_front
            if d_line < -0.5 or d_line > 80.0:
                continue
            st = self._light(j.tls, j.link_index)
            if st == "red" or (st == "yellow" and v * v / (2 * max(d_line, 0.1)) <= p.yellow_decel):
                if d_line > -0.2:
                    stops["light"] = min(stops.get("light", 1e9), d_line - p.stop_line_margin)
            break

        # agents: leader and yielding
        lead, yld = self._agents(state, s, s_front, v)
        if lead is not None:
            gap, v_lead = lead
            acc["leader"] = _idm(v, v_des, gap, v - v_lead, p)
        if yld is not None:
            stops["yield"] = yld
        # end of route
        stops["end"] = r.length - 0.5 - s  # centre comes to rest 0.5 m before the route's end
        for k, gap in stops.items():
            # stationary virtual obstacle idm_s0 beyond the stop point -> rest at the stop point
            acc[k] = _idm(v, v_des, gap + p.idm_s0, v, p)
        reason = min(acc, key=acc.get)
        a = max(min(acc[reason], e.max_accel), -p.max_decel)
        if v < 0.05 and a < 0:
            a = -1.0  # hold
        self.debug = {"s": s, "v_des": v_des, "acc": acc, "reason": reason, "stops": stops}

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
        state.planned_waypoints = self._plan(state, s, v, v_des, stops, lead)

        ctrl = Control(steer_angle=steer, accel=a)
        # CARLA-like mirror for consumers that want throttle/brake/steer
        ctrl.steer = steer / e.max_steer
        ctrl.throttle = max(a, 0.0) / e.max_accel
        ctrl.brake = max(-a, 0.0) / e.max_decel
        return ctrl

    # ------------------------------------------------------------------------------------------
    def _light(self, tls: str, link: int) -> str:
        st = self.tls().get(tls, "")
        c = st[link] if 0 <= link < len(st) else "G"
        if c in "Gg":
            return "green"
        if c in "yY":
            return "yellow"
        return "red" if c in "rRus" else "green"

    def _agents(self, state: SceneState, s: float, s_front: float, v: float):
        """(leader (gap, speed along route) | None, yield stop gap | None)."""
        p, e, r = self.p, self.ego, self.route
        if not state.agents:
            return None, None
        i0 = r.index_at(s - 0.5 * e.length)
        i1 = r.index_at(s + p.path_ahead_m)
        path = r.points[i0:i1 + 1]
        path_s = r.s[i0:i1 + 1]
        if len(path) < 2:
            return None, None
        tang = np.gradient(path, axis=0)
        tang /= np.maximum(np.hypot(*tang.T), 1e-9)[:, None]
        ag = state.agents
        n = len(ag)
        pos = np.array([[a.x, a.y] for a in ag])
        yaw = np.array([a.yaw for a in ag])
        spd = np.array([a.speed for a in ag])
        hw = np.array([0.5 * a.width if a.kind != "pedestrian" else 0.3 for a in ag])
        hl = np.array([0.5 * a.length if a.kind != "pedestrian" else 0.3 for a in ag])
        ped = np.array([a.kind == "pedestrian" for a in ag])
        margin = np.where(ped, p.corridor_margin_ped, p.corridor_margin_vehicle)
        thr = 0.5 * e.width + hw + margin
        T = np.arange(0.0, p.horizon_s + 1e-9, 0.25)
        vel = np.stack([np.cos(yaw), np.sin(yaw)], 1) * spd[:, None]
        pred = pos[:, None, :] + vel[:, None, :] * T[None, :, None]  # (n, T, 2)
        d = np.linalg.norm(pred[:, :, None, :] - path[None, None, :, :], axis=3)  # (n, T, P)
        k = d.argmin(2)
        dmin = np.take_along_axis(d, k[..., None], 2)[..., 0]
        # a vehicle also occupies its length along its heading: count the corridor as hit when the
        # centre is within thr + a share of the half length when it is aligned with the path
        inside = dmin < thr[:, None]
        s_hit = path_s[k]  # (n, T)
        lead_gap, lead_v = None, None
        yield_gap = None
        ego_rear = s - 0.5 * e.length
        for i in range(n):
            if not inside[i].any():
                continue
            t_idx = int(np.argmax(inside[i]))
            sc = float(s_hit[i, t_idx])
            kk = int(k[i, t_idx])
            along = float(np.cos(yaw[i]) * tang[kk, 0] + np.sin(yaw[i]) * tang[kk, 1])
            if t_idx == 0:
                # in the corridor now
                if sc < ego_rear + 0.5:
                    continue  # behind us
                if ped[i] or along < 0.7:
                    # crossing or standing in our path: stop before it
                    gap = sc - hl[i] - s_front - 0.5
                    if gap > -1.0:
                        yield_gap = gap if yield_gap is None else min(yield_gap, gap)
                    continue
                gap = sc - hl[i] - s_front
                if gap < -0.5:
                    continue
                vl = max(float(spd[i]) * along, 0.0)
                if lead_gap is None or gap < lead_gap:
                    lead_gap, lead_v = gap, vl
                continue
            # enters the corridor later
            if along > 0.7 and not ped[i]:
                # merging into our direction: a future leader if ahead of us
                proj_now = float(path_s[int(np.argmin(np.linalg.norm(path - pos[i], axis=1)))])
                if proj_now < s:
                    continue
            if sc < s_front - 0.5:
                continue
            t_agent_in = float(T[t_idx])
            # ego time to reach the conflict with its front, and to clear it with its rear
            dist = sc - s_front
            t_ego_in = dist / max(v, 1.5)
            t_ego_out = (dist + e.length + 2 * hw[i] + 1.0) / max(v, 1.5)
            still = inside[i, t_idx:]
            t_agent_out = t_agent_in + (np.argmin(still) if not still.all() else len(still)) * 0.25
            if t_agent_in > t_ego_out + p.yield_buffer_s * 0.5:
                continue  # we pass well before it arrives
            if t_agent_out < t_ego_in - 0.3:
                continue  # it is gone before we get there
            gap = sc - s_front - hw[i] - 0.5
            if gap < -0.5:
                continue  # we are already in the conflict area: keep going
            yield_gap = gap if yield_gap is None else min(yield_gap, gap)
        if lead_gap is None:
            return None, yield_gap
        return (lead_gap, lead_v), yield_gap

    def _plan(self, state: SceneState, s: float, v: float, v_des: float, stops: dict[str, float],
              lead) -> list[list[float]]:
        """1-D IDM rollout along the route, 5 points at 0.5 s, base_link."""
        p, r = self.p, self.route
        dt = 0.1
        pos, vel = 0.0, v
        lead_gap = lead[0] if lead else None
        lead_v = lead[1] if lead else 0.0
        pts = []
        c, si = math.cos(state.yaw), math.sin(state.yaw)
        for k in range(1, 26):
            i = r.index_at(s + pos)
            vd = float(self._vcurve[min(i + 3, len(self._vcurve) - 1)])
            a = _idm(vel, max(min(vd, v_des if pos < 5 else vd), 0.5), 1e9, 0.0, p)
            for gap in stops.values():
                a = min(a, _idm(vel, vd, gap - pos + p.idm_s0, vel, p))
            if lead_gap is not None:
                a = min(a, _idm(vel, vd, lead_gap + lead_v * k * dt - pos, vel - lead_v, p))
            a = max(min(a, self.ego.max_accel), -p.max_decel)
            nv = max(vel + a * dt, 0.0)
            pos += 0.5 * (vel + nv) * dt
            vel = nv
            if k % 5 == 0:
                x, y, _ = r.point_at(s + pos)
                dx, dy = x - state.x, y - state.y
                pts.append([c * dx + si * dy, -si * dx + c * dy])
        return pts

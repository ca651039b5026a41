"""Privileged expert driver (rule-based, reads the simulator's ground truth).

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

import math
from dataclasses import dataclass

import numpy as np

from ..sim.ego import Control, EgoParams
from ..sim.routes import Route, RouteTracker
from ..sim.scene import SceneState

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
    lateral: str = "cg"  # "cg" (centre tracking with preview) | "pure_pursuit"
    preview_s: float = 0.25
    k_lateral: float = 3.0
    v_soft: float = 1.0
    heading_tau: float = 0.3  # s, fastest heading response the lateral loop asks for
    lookahead_min: float = 3.0
    lookahead_gain: float = 0.3  # s
    lookahead_max: float = 10.0
    horizon_s: float = 6.0  # prediction horizon for yielding
    agent_accel: float = 2.0  # moving vehicles are assumed to possibly accelerate at this rate ...
    agent_vmax: float = 15.0  # ... up to this speed (earliest arrival at a conflict)
    corridor_margin_vehicle: float = 0.8  # m added to both half widths
    corridor_margin_ped: float = 0.5
    ped_kerb_margin: float = 0.15  # pedestrians standing still or walking along our path
    sweep_margin: float = 0.3  # inflation of both boxes when sweeping past a standing agent
    sweep_margin_min: float = 0.1  # ... after `patience_s` at standstill
    patience_s: float = 3.0
    path_ahead_m: float = 55.0
    yield_buffer_s: float = 1.5  # ego must pass a conflict this much before the other arrives


def _idm(v: float, v0: float, gap: float, dv: float, p: ExpertParams) -> float:
    """IDM acceleration; dv = v - v_leader; gap bumper to obstacle (m)."""
    v0 = max(v0, 0.1)
    s_star = p.idm_s0 + max(0.0, v * p.idm_T + v * dv / (2 * math.sqrt(p.idm_a * p.idm_b)))
    gap = max(gap, 0.1)
    return p.idm_a * (1.0 - (v / v0) ** 4 - (s_star / gap) ** 2)


def _stop_accel(v: float, v_des: float, gap: float, p: ExpertParams) -> float:
    """Come to rest `gap` m ahead: IDM towards a stationary obstacle idm_s0 beyond the stop point,
    made firm near the end by the kinematic deceleration v^2 / (2 gap)."""
    a = _idm(v, v_des, gap + p.idm_s0, v, p)
    if gap <= 0.2:
        return -p.max_decel if v > 0.05 else -1.0
    if gap < v * v / (2 * 1.5) + 1.0:
        a = min(a, -v * v / (2 * gap))
    return a


def _travel_time(d: float, v: float, v_max: float, a: float = 1.5) -> float:
    """Time to cover d metres from speed v accelerating at a up to v_max."""
    if d <= 0:
        return 0.0
    v_max = max(v_max, v, 0.5)
    t_acc = (v_max - v) / a
    d_acc = v * t_acc + 0.5 * a * t_acc ** 2
    if d <= d_acc:
        return (-v + math.sqrt(v * v + 2 * a * d)) / a
    return t_acc + (d - d_acc) / v_max


def _travel_time_vec(d: np.ndarray, v: float, v_max: float, a: float = 1.5) -> np.ndarray:
    """Vectorised `_travel_time`."""
    d = np.maximum(np.asarray(d, dtype=np.float64), 0.0)
    v_max = max(v_max, v, 0.5)
    t_acc = (v_max - v) / a
    d_acc = v * t_acc + 0.5 * a * t_acc ** 2
    t1 = (-v + np.sqrt(v * v + 2 * a * d)) / a
    t2 = t_acc + (d - d_acc) / v_max
    return np.where(d <= d_acc, t1, t2)


def _boxes(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, L: float, W: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    loc = np.array([[0.5, 0.5], [0.5, -0.5], [-0.5, -0.5], [-0.5, 0.5]]) * [L, W]
    X = x[:, None] + c[:, None] * loc[None, :, 0] - s[:, None] * loc[None, :, 1]
    Y = y[:, None] + s[:, None] * loc[None, :, 0] + c[:, None] * loc[None, :, 1]
    return np.stack([X, Y], 2)


def _sat_many(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Overlap of each rectangle A[i] (n, 4, 2) with rectangle B (4, 2) (separating axes)."""
    n = len(A)
    axes = [A[:, 1] - A[:, 0], A[:, 3] - A[:, 0],
            np.broadcast_to(B[1] - B[0], (n, 2)), np.broadcast_to(B[3] - B[0], (n, 2))]
    sep = np.zeros(n, bool)
    for ax in axes:
        pa = np.einsum("nkd,nd->nk", A, ax)
        pb = np.einsum("kd,nd->nk", B, ax)
        sep |= (pa.max(1) < pb.min(1)) | (pb.max(1) < pa.min(1))
    return ~sep


class Expert:
    """Agent interface: `reset(info)`, `act(state, images) -> Control` (see sim/episode.py)."""

    def __init__(self, params: ExpertParams | None = None, ego: EgoParams | None = None):
        self.p = params or ExpertParams()
        self.ego = ego or EgoParams()
        self.route: Route | None = None
        self.tracker: RouteTracker | None = None
        self.debug: dict = {}
        self.trace = False  # record per-agent conflict windows in trace_agents (debugging)
        self.trace_agents: dict = {}

    def reset(self, info) -> None:
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
        self._pp = np.vstack([P, P[-1] + ext[:, None] * d])
        self._ps = np.concatenate([S, S[-1] + ext])
        world = getattr(info, "world", None)
        self._static = world.static if world is not None else None
        self._traci = world.traci if world is not None else None
        self._lane_cache: dict = {}
        self._path_cache: dict = {}
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
            steer = self._pure_pursuit(state, s, v)
        else:
            steer = self._cg_tracking(state, s, v)

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
        lead, yld = self._agents(state, s, s_front, v, v_des)
        if lead is not None:
            gap, v_lead = lead
            acc["leader"] = _idm(v, v_des, gap, v - v_lead, p)
        if yld is not None:
            stops["yield"] = yld
        # end of route
        stops["end"] = r.length - 0.5 - s  # centre comes to rest 0.5 m before the route's end
        for k, gap in stops.items():
            acc[k] = _stop_accel(v, v_des, gap, p)
        reason = min(acc, key=acc.get)
        a = max(min(acc[reason], e.max_accel), -p.max_decel)
        if v < 0.05 and a < 0:
            a = -1.0  # hold
        self.debug = {"s": s, "v_des": v_des, "acc": acc, "reason": reason, "stops": stops,
                      "yield_by": getattr(self, "_yield_by", "")}

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
    def _pure_pursuit(self, state: SceneState, s: float, v: float) -> float:
        """Pure pursuit from the rear axle (kept for comparison)."""
        p, e, r = self.p, self.ego, self.route
        rx = state.x - 0.5 * e.wheelbase * math.cos(state.yaw)
        ry = state.y - 0.5 * e.wheelbase * math.sin(state.yaw)
        ld = min(max(p.lookahead_min + p.lookahead_gain * v, p.lookahead_min), p.lookahead_max)
        tx, ty, _ = r.point_at(s - 0.5 * e.wheelbase + ld)
        dx, dy = tx - rx, ty - ry
        alpha = math.atan2(dy, dx) - state.yaw
        dist = max(math.hypot(dx, dy), 1.0)
        steer = math.atan2(2.0 * e.wheelbase * math.sin(alpha), dist)
        return max(-e.max_steer, min(e.max_steer, steer))

    def _cg_tracking(self, state: SceneState, s: float, v: float) -> float:
        """Path tracking of the centre (the bicycle model's reference point): choose the slip angle
        beta so the centre's velocity points along the path (previewed `preview_s` ahead to cover
        the steering lag) plus a lateral correction atan(k e / (v + v0)); then
        delta = atan(L / lr tan(beta))."""
        p, e, r = self.p, self.ego, self.route
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
        kap = float(self._kappa_signed[r.index_at(sp)])
        beta_ff = math.asin(max(-0.9, min(0.9, lr * kap)))
        err = yawp + corr - beta_ff - state.yaw
        err = math.atan2(math.sin(err), math.cos(err))
        g = min(1.0, lr / (max(v, 0.1) * p.heading_tau))
        beta = beta_ff + g * err
        tb = max(-10.0, min(10.0, math.tan(max(-1.4, min(1.4, beta)))))
        steer = math.atan(e.wheelbase / lr * tb)
        return max(-e.max_steer, min(e.max_steer, steer))

    def _light(self, tls: str, link: int) -> str:
        st = self.tls().get(tls, "")
        c = st[link] if 0 <= link < len(st) else "G"
        if c in "Gg":
            return "green"
        if c in "yY":
            return "yellow"
        return "red" if c in "rRus" else "green"

    # -- predictions -------------------------------------------------------------------------
    def _lane(self, lane: str):
        c = self._lane_cache.get(lane)
        if c is None:
            li = self._static.lanes.get(lane)
            shape = li.shape if li is not None else np.zeros((0, 2))
            if len(shape) >= 2:
                cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(shape, axis=0).T))])
            else:
                cum = np.zeros(len(shape))
            c = (shape, cum)
            self._lane_cache[lane] = c
        return c

    def _lane_piece(self, lane: str, start: float = 0.0) -> np.ndarray:
        shape, cum = self._lane(lane)
        if len(shape) < 2:
            return shape
        if start <= 0.0:
            return shape
        if start >= cum[-1]:
            return shape[-1:]
        k = int(np.searchsorted(cum, start, side="right"))
        t = (start - cum[k - 1]) / max(cum[k] - cum[k - 1], 1e-9)
        p0 = shape[k - 1] + t * (shape[k] - shape[k - 1])
        return np.vstack([p0[None], shape[k:]])

    def _vehicle_path(self, a) -> tuple[np.ndarray, np.ndarray, float, str, np.ndarray] | None:
        """Where SUMO vehicle `a` will drive: (polyline, its arc lengths, the vehicle centre's arc
        position). The polyline runs from the start of its current lane through its next lanes
        (internal junction lanes included), ~100 m, cut at its stop line when its next link is red
        (or yellow and it can stop), its current lane and the speed limit at each polyline vertex.
        Cached per (lane, next links, cut)."""
        tr = self._traci
        try:
            lane = tr.vehicle.getLaneID(a.id)
            pos = tr.vehicle.getLanePosition(a.id)
            links = tr.vehicle.getNextLinks(a.id)
        except Exception:  # noqa: BLE001 - vehicle left the simulation
            return None
        if not lane:
            return None
        cut = False
        if links and not lane.startswith(":"):
            st = links[0][5]
            lane_len = self._lane(lane)[1][-1] if len(self._lane(lane)[1]) else 0.0
            if st in "rRu" or (st in "yY" and a.speed ** 2 / (2 * 4.0) < lane_len - pos):
                cut = True
        key = (lane, tuple((ln[0], ln[4]) for ln in links[:3]), cut)
        poly = self._path_cache.get(key)
        if poly is None:
            poly = self._build_path(lane, links[:3], cut)
            if len(self._path_cache) > 5000:
                self._path_cache.clear()
            self._path_cache[key] = poly
        P, cum, V = poly
        return P, cum, pos - 0.5 * a.length, lane, V

    def _build_path(self, lane: str, links, cut: bool):
        tr = self._traci
        pieces = [self._lane(lane)[0]]
        speeds = [self._lane_speed(lane)]
        total = self._lane(lane)[1][-1] if len(self._lane(lane)[1]) else 0.0
        cur = lane
        guard = 0
        while not cut and cur.startswith(":") and guard < 6:  # finish the junction
            guard += 1
            nxt = tr.lane.getLinks(cur)
            if not nxt:
                break
            cur = nxt[0][4] or nxt[0][0]
            pieces.append(self._lane(cur)[0])
            speeds.append(self._lane_speed(cur))
            total += self._lane(cur)[1][-1] if len(self._lane(cur)[1]) else 0.0
        first_len = total
        for ln in ([] if cut else links):
            if total - first_len >= 100.0:  # ~100 m beyond the current lane
                break
            to, via = ln[0], ln[4]
            if to == cur:
                continue
            chain = []
            v = via
            g2 = 0
            while v and v.startswith(":") and g2 < 6:
                chain.append(v)
                nx = tr.lane.getLinks(v)
                g2 += 1
                v = (nx[0][4] or nx[0][0]) if nx else ""
            for c in chain + [to]:
                pieces.append(self._lane(c)[0])
                speeds.append(self._lane_speed(c))
                total += self._lane(c)[1][-1] if len(self._lane(c)[1]) else 0.0
            cur = to
        P = np.vstack([q for q in pieces if len(q)])
        V = np.concatenate([np.full(len(q), v) for q, v in zip(pieces, speeds) if len(q)])
        if len(P) >= 2:
            keep = np.concatenate([[True], np.hypot(*np.diff(P, axis=0).T) > 1e-6])
            P, V = P[keep], V[keep]
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(P, axis=0).T))]) \
            if len(P) >= 2 else np.zeros(len(P))
        return P, cum, V

    def _lane_speed(self, lane: str) -> float:
        li = self._static.lanes.get(lane) if self._static is not None else None
        return float(li.speed) if li is not None else 13.9

    def _slow_profile(self, speed: float, off: float, cum: np.ndarray, V: np.ndarray,
                      T: np.ndarray) -> np.ndarray:
        """Latest-exit distances: the vehicle never speeds up and brakes (3 m/s^2) to its lanes'
        speed limits ahead (SUMO's internal junction lanes are slower in turns)."""
        dt = float(T[1] - T[0]) if len(T) > 1 else 0.25
        out = np.zeros(len(T))
        pos, v = 0.0, speed
        for i in range(1, len(T)):
            ahead = off + pos + v * v / 6.0 + 2.0
            lo = np.searchsorted(cum, off + pos)
            hi = max(np.searchsorted(cum, ahead, side="right"), lo + 1)
            vlim = float(V[lo:hi].min()) if hi <= len(V) and lo < len(V) else v
            if v > vlim:
                v = max(vlim, v - 3.0 * dt)
            pos += v * dt
            out[i] = pos
        return out

    @staticmethod
    def _along(P: np.ndarray, cum: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points and headings at arc positions `dist` along polyline P (clamped to its ends)."""
        if len(P) < 2:
            return np.repeat(P[:1], len(dist), 0), np.zeros(len(dist))
        d = np.clip(dist, 0.0, cum[-1])
        x = np.interp(d, cum, P[:, 0])
        y = np.interp(d, cum, P[:, 1])
        k = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(P) - 2)
        dd = P[k + 1] - P[k]
        return np.stack([x, y], 1), np.arctan2(dd[:, 1], dd[:, 0])

    def _agents(self, state: SceneState, s: float, s_front: float, v: float, v_des: float):
        """(leader (gap, speed along route) | None, yield stop gap | None).

        Every agent gets predicted tracks over `horizon_s`: SUMO vehicles along their own lanes
        (stopping at their red stop line), pedestrians at constant velocity. A track point conflicts
        with the ego's path when it is closer than the ego's half width + the agent's half extent
        across the path (heading-aware) + a margin. The agent's time window in the conflict is taken
        wide: it enters as early as if it accelerated (moving vehicles) and leaves as late as at its
        current speed.

        Junctions are gated: a vehicle conflict inside a junction on the route holds the ego at the
        junction's entry (stop line) until the windows are clear; once inside, the ego only stops for
        what is in its path now and for pedestrians (stopping inside a junction leaves it in the
        cross traffic's path)."""
        p, e, r = self.p, self.ego, self.route
        self._yield_by = ""
        self.trace_agents = {}
        i0 = int(np.searchsorted(self._ps, s - 0.5 * e.length))
        i1 = int(np.searchsorted(self._ps, s + p.path_ahead_m))
        path = self._pp[i0:i1 + 1]
        path_s = self._ps[i0:i1 + 1]
        if len(path) < 2:
            return None, None
        tang = np.gradient(path, axis=0)
        path_yaw = np.arctan2(tang[:, 1], tang[:, 0])
        T = np.arange(0.0, p.horizon_s + 1e-9, 0.25)
        lead_gap, lead_v = None, None
        yield_gap = None
        ego_rear = s - 0.5 * e.length
        hw_e = 0.5 * e.width
        junctions = [j for j in r.junctions if j.s_exit + 3.0 > s_front - 5.0
                     and j.s_entry - 3.0 < s + p.path_ahead_m]

        def junction_of(sc: float):
            for j in junctions:
                if j.s_entry - 3.0 <= sc <= j.s_exit + 3.0:
                    return j
            return None

        def gate_gap(j) -> float | None:
            """Stop gap to wait at junction j's entry: `stop_line_margin` before the line, or
            just before it if we are closer already; None when we cannot stop before it."""
            line = j.s_entry - s_front
            if line < -0.3:
                return None
            if v * v / (2 * max(line, 0.05)) > p.max_decel:
                return None
            return line - p.stop_line_margin if line > p.stop_line_margin + 0.3 \
                else max(line - 0.3, 0.0)

        def add_yield(g: float, why: str = "") -> None:
            nonlocal yield_gap
            if yield_gap is None or g < yield_gap:
                yield_gap = g
                self._yield_by = f"{a.id}:{why}"

        # cheap prefilter: who can reach our path within the horizon at all
        pool = (self._all_agents() if self._all_agents is not None else None) or state.agents
        ags = [a for a in pool if a.rel_x > -30.0 and a.rel_x ** 2 + a.rel_y ** 2 < 110.0 ** 2]
        if not ags:
            return None, None
        pos = np.array([[a.x, a.y] for a in ags])
        d0 = np.sqrt(((pos[:, None, :] - path[None, :, :]) ** 2).sum(2)).min(1)
        H = p.horizon_s
        cand = []
        for a, dd in zip(ags, d0):
            ped = a.kind == "pedestrian"
            if ped:
                reach = a.speed * H
            elif a.speed > 1.0 or (self._traci is not None and dd < 30.0
                                   and self._traci.vehicle.getLaneID(a.id).startswith(":")):
                reach = min(a.speed * H + 0.5 * p.agent_accel * H * H, p.agent_vmax * H)
            else:
                reach = a.speed * H
            if dd < reach + hw_e + 0.5 * max(a.length, a.width) + 1.5:
                cand.append(a)
        if not cand:
            return None, None
        # tracks: two per agent (earliest-arrival "fast" and constant-speed "slow")
        tr_pts, tr_yaw, tr_L, tr_W, tr_ped, tr_spd = [], [], [], [], [], []
        for a in cand:
            ped = a.kind == "pedestrian"
            if ped:
                vel = np.array([math.cos(a.yaw), math.sin(a.yaw)]) * a.speed
                pts = np.array([a.x, a.y]) + vel[None] * T[:, None]
                tracks = [(pts, np.full(len(T), a.yaw))] * 2
            else:
                src = self._vehicle_path(a) if self._traci is not None else None
                # moving vehicles, and standing ones inside a junction (waiting for a gap to turn),
                # may accelerate: their earliest arrival assumes they do
                moving = a.speed > 1.0 or (src is not None and src[3].startswith(":"))
                fast = a.speed * T + (0.5 * p.agent_accel * T ** 2 if moving else 0.0)
                fast = np.minimum(fast, a.speed * T + max(p.agent_vmax - a.speed, 0.0) * T)
                tracks = []
                slow = a.speed * T
                if src is not None and len(src[0]) >= 2 and a.speed > 1.0:
                    slow = self._slow_profile(a.speed, max(src[2], 0.0), src[1], src[4], T)
                for dist in (fast, slow):
                    if src is None or len(src[0]) < 2:
                        hd = np.array([math.cos(a.yaw), math.sin(a.yaw)])
                        pts = np.array([a.x, a.y]) + hd[None] * dist[:, None]
                        yaws = np.full(len(T), a.yaw)
                    else:
                        P, cum, off = src[0], src[1], src[2]
                        pts, yaws = self._along(P, cum, max(off, 0.0) + dist)
                        pts[0] = (a.x, a.y)
                        yaws[0] = a.yaw
                    tracks.append((pts, yaws))
            for pts, yaws in tracks:
                tr_pts.append(pts)
                tr_yaw.append(yaws)
            L, W = (0.6, 0.6) if ped else (a.length, a.width)
            tr_L.append(L)
            tr_W.append(W)
            tr_ped.append(ped)
            tr_spd.append(a.speed)
        TP = np.array(tr_pts)  # (2n, T, 2)
        TY = np.array(tr_yaw)
        Lr = np.repeat(np.array(tr_L), 2)[:, None]
        Wr = np.repeat(np.array(tr_W), 2)[:, None]
        pedr = np.repeat(np.array(tr_ped), 2)[:, None]
        spdr = np.repeat(np.array(tr_spd), 2)[:, None]
        D2 = ((TP[:, :, None, :] - path[None, None, :, :]) ** 2).sum(3)  # (2n, T, P)
        K = D2.argmin(2)
        DMIN = np.sqrt(np.take_along_axis(D2, K[..., None], 2)[..., 0])
        DYAW = TY - path_yaw[K]
        sn, cs = np.abs(np.sin(DYAW)), np.abs(np.cos(DYAW))
        EXT_P = 0.5 * (Lr * sn + Wr * cs)
        EXT_A = 0.5 * (Lr * cs + Wr * sn)
        # pedestrians standing at the kerb or walking along our path get a small margin, those
        # walking across the full one
        MARGIN = np.where(pedr, np.where((spdr > 0.2) & (cs < 0.8), p.corridor_margin_ped,
                                         p.ped_kerb_margin), p.corridor_margin_vehicle)
        INSIDE = DMIN < hw_e + EXT_P + MARGIN
        for ia, a in enumerate(cand):
            ped = tr_ped[ia]
            res = [(INSIDE[2 * ia + q], K[2 * ia + q], DYAW[2 * ia + q], EXT_A[2 * ia + q])
                   for q in (0, 1)]
            inside, k, dyaw, ext_along = res[0]
            if self.trace:
                self.trace_agents[a.id] = dict(first_inside=float(T[int(np.argmax(inside))])
                                               if inside.any() else -1.0,
                                               dmin=float(DMIN[2 * ia].min()))
            if not inside.any():
                continue
            t_idx = int(np.argmax(inside))
            sc = float(path_s[k[t_idx]])
            if t_idx == 0:  # in our path now
                if sc < s_front - 0.5 or sc < ego_rear + 0.5:
                    continue  # beside or behind us
                along = math.cos(dyaw[0])
                if a.speed < 0.5:
                    # standing: sweep the ego's box along the path for the exact free distance
                    free = self._free_distance(s, a, ped)
                    if free is None:
                        continue  # we pass it
                    # don't block the box: if we would come to rest inside a junction we have
                    # not entered yet, wait at its entry instead
                    rest_front = s_front + max(free - 1.5, 0.0)
                    rest_rear = rest_front - e.length
                    for j in junctions:
                        if s_front < j.s_entry + 0.5 and rest_front > j.s_entry \
                                and rest_rear < j.s_exit + 1.0:
                            g = gate_gap(j)
                            if g is not None:
                                add_yield(g, "box")
                            break
                    if not ped and along > 0.7:  # a queue: follow it
                        gap = free + 1.0
                        if lead_gap is None or gap < lead_gap:
                            lead_gap, lead_v = gap, 0.0
                    else:
                        add_yield(free - 0.5, "standing")
                    continue
                if not ped and along > 0.7:
                    gap = sc - float(ext_along[0]) - s_front
                    if gap > -1.0 and (lead_gap is None or gap < lead_gap):
                        lead_gap, lead_v = gap, max(a.speed * along, 0.0)
                    continue
                # moving across or against our path: a conflict that has begun (t_in = 0),
                # handled by the window logic below (junction gate included)
            elif sc < s_front - 0.5:
                continue
            # where and when the agent is in our path (both profiles pooled): at each such path
            # position S its occupancy runs from the earliest to the latest time it is within 3 m
            # of S; the ego occupies S from reaching it with its front until its rear has passed
            tt, SS, EE = [], [], []
            for q in (0, 1):
                ins_q, k_q, _, ext_q = res[q]
                idx = np.nonzero(ins_q)[0]
                tt.append(T[idx])
                SS.append(path_s[k_q[idx]])
                EE.append(ext_q[idx])
            tt, SS, EE = np.concatenate(tt), np.concatenate(SS), np.concatenate(EE)
            ahead = SS >= s_front - 0.5
            if not ahead.any():
                continue
            tt, SS, EE = tt[ahead], SS[ahead], EE[ahead]
            near = np.abs(SS[:, None] - SS[None, :]) <= 3.0
            t_first = np.where(near, tt[None, :], np.inf).min(1)
            t_last = np.where(near, tt[None, :], -np.inf).max(1)
            t_last = np.where(t_last >= T[-1] - 1e-9, t_last + 2.0, t_last)  # still there
            dist = SS - s_front
            t_ego_in = _travel_time_vec(np.maximum(dist - EE - 0.5, 0.0), v, v_des)
            t_ego_out = _travel_time_vec(dist + e.length + 2.0 * EE + 1.0, v, v_des)
            buf = p.yield_buffer_s * (1.5 if ped else 1.0)
            conflict = (t_first <= t_ego_out + buf) & (t_last >= t_ego_in - 0.5 * buf)
            if self.trace:
                i0c = int(np.argmin(SS))
                self.trace_agents[a.id].update(
                    sc=float(SS[i0c]), t_in=float(t_first[i0c]), t_out=float(t_last[i0c]),
                    t_ego_in=float(t_ego_in[i0c]), t_ego_out=float(t_ego_out[i0c]),
                    conflict=float(conflict.any()))
            if not conflict.any():
                continue  # the windows do not overlap anywhere
            ic = int(np.argmin(np.where(conflict, SS, np.inf)))
            sc, ext = float(SS[ic]), float(EE[ic])
            j = junction_of(sc)
            if j is not None and not ped:
                if s_front > j.s_entry + 0.5:
                    continue  # committed: clear the junction rather than stop in it
                g = gate_gap(j)
                if g is not None:  # else: cannot stop before the junction any more
                    add_yield(g, "junction")
                continue
            gap = sc - s_front - ext - 1.0
            if gap < -0.5:
                if t_first[ic] > t_ego_out[ic]:
                    continue  # at the conflict already and clearing it first
                gap = 0.0
            add_yield(gap, "conflict")
        if lead_gap is None:
            return None, yield_gap
        return (lead_gap, lead_v), yield_gap

    def _free_distance(self, s: float, a, ped: bool, ahead: float = 25.0) -> float | None:
        """Centre travel (m) until the ego's box, moved along the path, touches agent a's box
        (both inflated by `sweep_margin`); None if it never does within `ahead` m."""
        e = self.ego
        PS, PP = self._ps, self._pp
        sq = np.arange(s, min(s + ahead, PS[-1]) + 1e-9, 0.5)
        if len(sq) == 0:
            return None
        xs = np.interp(sq, PS, PP[:, 0])
        ys = np.interp(sq, PS, PP[:, 1])
        i = np.clip(np.searchsorted(PS, sq), 1, len(PS) - 1)
        d = PP[i] - PP[i - 1]
        yaw = np.arctan2(d[:, 1], d[:, 0])
        # after a while at standstill, squeeze past with a smaller margin (standing agents in a
        # junction are often waiting for us)
        m = self.p.sweep_margin if self._still_s < self.p.patience_s else self.p.sweep_margin_min
        ego = _boxes(xs, ys, yaw, e.length + 2 * m, e.width + 2 * m)  # (n, 4, 2)
        L, W = (0.6, 0.6) if ped else (a.length, a.width)
        other = _boxes(np.array([a.x]), np.array([a.y]), np.array([a.yaw]), L + 2 * m, W + 2 * m)[0]
        hit = _sat_many(ego, other)
        if not hit.any():
            return None
        return float(sq[int(np.argmax(hit))] - s)

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

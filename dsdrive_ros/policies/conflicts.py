"""Which road users the expert follows or yields to: the leader and the nearest yield stop.

Every agent that can reach the ego's path within `horizon_s` gets two predicted tracks
(`prediction.TrackPredictor`). A track point conflicts with the ego's path when it is closer than
the ego's half width + the agent's half extent across the path (heading-aware) + a margin. The
agent's time window in the conflict is taken wide: it enters as early as if it accelerated (moving
vehicles) and leaves as late as at its current speed.

Junctions are gated: a vehicle conflict inside a junction on the route holds the ego at the
junction's entry (stop line) until the windows are clear; once inside, the ego only stops for what
is in its path now and for pedestrians (stopping inside a junction leaves it in the cross traffic's
path). A standing agent in the path is measured exactly by sweeping the ego's box along the path.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ..sim.ego import EgoParams
from ..sim.routes import JunctionPass, Route
from ..sim.scene import RoadUser
from .expert_params import ExpertParams
from .longitudinal import Leader, travel_time_vec
from .prediction import TrackPredictor

__all__ = ["AgentConstraints", "ConflictFinder", "boxes", "overlaps"]


class AgentConstraints(NamedTuple):
    leader: Leader | None
    yield_gap: float | None  # m from the front bumper to where the ego must stop
    yield_by: str  # "<agent id>:<why>" of the nearest yield stop, "" if none


class _Window(NamedTuple):
    """The ego's situation on this step, shared by the per-agent checks."""

    s: float  # route position of the centre
    s_front: float
    v: float
    v_des: float
    path_s: np.ndarray  # arc positions of the path window
    junctions: list[JunctionPass]  # the route's junctions near the window


class _Hits(NamedTuple):
    """Where one predicted track is inside the ego's corridor."""

    inside: np.ndarray  # (T,) bool
    k: np.ndarray  # (T,) nearest path vertex
    dyaw: np.ndarray  # (T,) heading relative to the path there
    ext_along: np.ndarray  # (T,) the agent's half extent along the path


def boxes(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, L: float, W: float) -> np.ndarray:
    """Corners (n, 4, 2) of n L x W rectangles centred at (x, y) with heading yaw."""
    c, s = np.cos(yaw), np.sin(yaw)
    loc = np.array([[0.5, 0.5], [0.5, -0.5], [-0.5, -0.5], [-0.5, 0.5]]) * [L, W]
    X = x[:, None] + c[:, None] * loc[None, :, 0] - s[:, None] * loc[None, :, 1]
    Y = y[:, None] + s[:, None] * loc[None, :, 0] + c[:, None] * loc[None, :, 1]
    return np.stack([X, Y], 2)


def overlaps(A: np.ndarray, B: np.ndarray) -> np.ndarray:
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


class ConflictFinder:
    """Per route: `path_points`/`path_s` is the route polyline, run on straight past its end."""

    def __init__(self, params: ExpertParams, ego: EgoParams, route: Route, path_points: np.ndarray,
                 path_s: np.ndarray, predictor: TrackPredictor):
        self.p, self.ego, self.route = params, ego, route
        self._pp, self._ps = path_points, path_s
        self.predictor = predictor

    def assess(self, agents: Sequence[RoadUser], s: float, s_front: float, v: float, v_des: float,
               still_s: float, trace: dict | None = None) -> AgentConstraints:
        """The leader and the nearest yield stop among `agents`; `still_s`: time at standstill;
        `trace`, when given, gets per-agent conflict windows (debugging)."""
        p, e = self.p, self.ego
        self._lead: Leader | None = None
        self._yield: tuple[float, str] | None = None
        i0 = int(np.searchsorted(self._ps, s - 0.5 * e.length))
        i1 = int(np.searchsorted(self._ps, s + p.path_ahead_m))
        path = self._pp[i0:i1 + 1]
        path_s = self._ps[i0:i1 + 1]
        if len(path) < 2:
            return AgentConstraints(None, None, "")
        tang = np.gradient(path, axis=0)
        path_yaw = np.arctan2(tang[:, 1], tang[:, 0])
        T = np.arange(0.0, p.horizon_s + 1e-9, 0.25)
        junctions = [j for j in self.route.junctions if j.s_exit + 3.0 > s_front - 5.0
                     and j.s_entry - 3.0 < s + p.path_ahead_m]
        w = _Window(s, s_front, v, v_des, path_s, junctions)
        cand = self._candidates(agents, path)
        if not cand:
            return AgentConstraints(None, None, "")
        hits, dmin = self._corridor_hits(cand, T, path, path_yaw)
        for ia, a in enumerate(cand):
            ped = a.kind == "pedestrian"
            res = hits[2 * ia], hits[2 * ia + 1]
            inside = res[0].inside
            if trace is not None:
                trace[a.id] = dict(first_inside=float(T[int(np.argmax(inside))])
                                   if inside.any() else -1.0,
                                   dmin=float(dmin[2 * ia].min()))
            if not inside.any():
                continue
            t_idx = int(np.argmax(inside))
            sc = float(path_s[res[0].k[t_idx]])
            if t_idx == 0:  # in our path now
                if self._in_path_now(w, a, ped, res[0], sc, still_s):
                    continue
                # moving across or against our path: a conflict that has begun (t_in = 0),
                # handled by the window logic below (junction gate included)
            elif sc < s_front - 0.5:
                continue
            self._window_conflict(w, a, ped, res, T, trace)
        y = self._yield
        return AgentConstraints(self._lead, y[0] if y else None, y[1] if y else "")

    # ------------------------------------------------------------------------------------------
    def _candidates(self, agents: Sequence[RoadUser], path: np.ndarray) -> list[RoadUser]:
        """Cheap prefilter: who can reach our path within the horizon at all."""
        p = self.p
        hw_e = 0.5 * self.ego.width
        ags = [a for a in agents if a.rel_x > -30.0 and a.rel_x ** 2 + a.rel_y ** 2 < 110.0 ** 2]
        if not ags:
            return []
        pos = np.array([[a.x, a.y] for a in ags])
        d0 = np.sqrt(((pos[:, None, :] - path[None, :, :]) ** 2).sum(2)).min(1)
        H = p.horizon_s
        cand = []
        for a, dd in zip(ags, d0):
            if a.kind == "pedestrian":
                reach = a.speed * H
            elif a.speed > 1.0 or (dd < 30.0 and self.predictor.on_internal_lane(a)):
                reach = min(a.speed * H + 0.5 * p.agent_accel * H * H, p.agent_vmax * H)
            else:
                reach = a.speed * H
            if dd < reach + hw_e + 0.5 * max(a.length, a.width) + 1.5:
                cand.append(a)
        return cand

    def _corridor_hits(self, cand: list[RoadUser], T: np.ndarray, path: np.ndarray,
                       path_yaw: np.ndarray) -> tuple[list[_Hits], np.ndarray]:
        """Two tracks per agent (earliest-arrival, latest-exit), each against the corridor; and
        each track's distance to the path (2n, T)."""
        p = self.p
        tr_pts, tr_yaw, tr_L, tr_W, tr_ped, tr_spd = [], [], [], [], [], []
        for a in cand:
            ped = a.kind == "pedestrian"
            for track in self.predictor.tracks(a, T):
                tr_pts.append(track.points)
                tr_yaw.append(track.yaws)
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
        INSIDE = DMIN < 0.5 * self.ego.width + EXT_P + MARGIN
        hits = [_Hits(INSIDE[i], K[i], DYAW[i], EXT_A[i]) for i in range(len(TP))]
        return hits, DMIN

    def _in_path_now(self, w: _Window, a: RoadUser, ped: bool, h: _Hits, sc: float,
                     still_s: float) -> bool:
        """An agent in our path at t = 0 (conflict point `sc`): a leader, a standing obstacle or
        nothing to do (beside or behind us). False: it moves across or against our path."""
        e = self.ego
        if sc < w.s_front - 0.5 or sc < w.s - 0.5 * e.length + 0.5:
            return True  # beside or behind us
        along = math.cos(h.dyaw[0])
        if a.speed < 0.5:
            # standing: sweep the ego's box along the path for the exact free distance, through
            # the next junction's exit at least (a car standing in the box's far side counts)
            free = self.free_distance(w.s, a, ped, still_s, ahead=self._sweep_reach(w))
            if free is None:
                return True  # we pass it
            self._keep_box_clear(w, a, w.s_front + max(free - 1.5, 0.0))
            if not ped and along > 0.7:  # a queue: follow it
                self._add_leader(free + 1.0, 0.0)
            else:
                self._add_yield(free - 0.5, a, "standing")
            return True
        if not ped and along > 0.7:
            gap = sc - float(h.ext_along[0]) - w.s_front
            if gap > -1.0:
                self._add_leader(gap, max(a.speed * along, 0.0))
                if a.speed < self.p.box_slow_leader_mps:  # it may stop in the box: so would we
                    self._keep_box_clear(w, a, w.s_front + max(gap - 1.5, 0.0))
            return True
        return False

    def _sweep_reach(self, w: _Window, base: float = 25.0) -> float:
        for j in w.junctions:
            if w.s_front < j.s_entry + 0.5:
                return max(base, j.s_exit + self.ego.length + 1.0 - w.s)
        return base

    def _keep_box_clear(self, w: _Window, a: RoadUser, rest_front: float) -> None:
        """Don't block the box: if we would come to rest (front at `rest_front`) inside a junction
        we have not entered yet, wait at its entry instead. Inside a junction we stand where crossing
        traffic drives, and SUMO's drivers do not always see us there."""
        rest_rear = rest_front - self.ego.length
        for j in w.junctions:
            if w.s_front < j.s_entry + 0.5 and rest_front > j.s_entry and rest_rear < j.s_exit + 1.0:
                g = self._gate_gap(w, j)
                if g is not None:
                    self._add_yield(g, a, "box")
                break

    def _window_conflict(self, w: _Window, a: RoadUser, ped: bool, res: tuple[_Hits, _Hits],
                         T: np.ndarray, trace: dict | None) -> None:
        """Where and when the agent is in our path (both tracks pooled): at each such path
        position S its occupancy runs from the earliest to the latest time it is within 3 m of S;
        the ego occupies S from reaching it with its front until its rear has passed."""
        p, e = self.p, self.ego
        tt, SS, EE = [], [], []
        for h in res:
            idx = np.nonzero(h.inside)[0]
            tt.append(T[idx])
            SS.append(w.path_s[h.k[idx]])
            EE.append(h.ext_along[idx])
        tt, SS, EE = np.concatenate(tt), np.concatenate(SS), np.concatenate(EE)
        ahead = SS >= w.s_front - 0.5
        if not ahead.any():
            return
        tt, SS, EE = tt[ahead], SS[ahead], EE[ahead]
        near = np.abs(SS[:, None] - SS[None, :]) <= 3.0
        t_first = np.where(near, tt[None, :], np.inf).min(1)
        t_last = np.where(near, tt[None, :], -np.inf).max(1)
        t_last = np.where(t_last >= T[-1] - 1e-9, t_last + 2.0, t_last)  # still there
        dist = SS - w.s_front
        t_ego_in = travel_time_vec(np.maximum(dist - EE - 0.5, 0.0), w.v, w.v_des)
        t_ego_out = travel_time_vec(dist + e.length + 2.0 * EE + 1.0, w.v, w.v_des)
        buf = p.yield_buffer_s * (1.5 if ped else 1.0)
        conflict = (t_first <= t_ego_out + buf) & (t_last >= t_ego_in - 0.5 * buf)
        if trace is not None:
            i0c = int(np.argmin(SS))
            trace[a.id].update(
                sc=float(SS[i0c]), t_in=float(t_first[i0c]), t_out=float(t_last[i0c]),
                t_ego_in=float(t_ego_in[i0c]), t_ego_out=float(t_ego_out[i0c]),
                conflict=float(conflict.any()))
        if not conflict.any():
            return  # the windows do not overlap anywhere
        ic = int(np.argmin(np.where(conflict, SS, np.inf)))
        sc, ext = float(SS[ic]), float(EE[ic])
        j = next((j for j in w.junctions if j.s_entry - 3.0 <= sc <= j.s_exit + 3.0), None)
        if j is not None and not ped:
            if w.s_front > j.s_entry + 0.5:
                return  # committed: clear the junction rather than stop in it
            g = self._gate_gap(w, j)
            if g is not None:  # else: cannot stop before the junction any more
                self._add_yield(g, a, "junction")
            return
        gap = sc - w.s_front - ext - 1.0
        if gap < -0.5:
            if t_first[ic] > t_ego_out[ic]:
                return  # at the conflict already and clearing it first
            gap = 0.0
        self._add_yield(gap, a, "conflict")

    def _gate_gap(self, w: _Window, j: JunctionPass) -> float | None:
        """Stop gap to wait at junction j's entry: `stop_line_margin` before the line, or
        just before it if we are closer already; None when we cannot stop before it."""
        p = self.p
        line = j.s_entry - w.s_front
        if line < -0.3:
            return None
        if w.v * w.v / (2 * max(line, 0.05)) > p.max_decel:
            return None
        return line - p.stop_line_margin if line > p.stop_line_margin + 0.3 \
            else max(line - 0.3, 0.0)

    def _add_yield(self, gap: float, a: RoadUser, why: str) -> None:
        if self._yield is None or gap < self._yield[0]:
            self._yield = (gap, f"{a.id}:{why}")

    def _add_leader(self, gap: float, speed: float) -> None:
        if self._lead is None or gap < self._lead.gap:
            self._lead = Leader(gap, speed)

    def free_distance(self, s: float, a: RoadUser, ped: bool, still_s: float,
                      ahead: float = 25.0) -> float | None:
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
        m = self.p.sweep_margin if still_s < self.p.patience_s else self.p.sweep_margin_min
        ego = boxes(xs, ys, yaw, e.length + 2 * m, e.width + 2 * m)  # (n, 4, 2)
        L, W = (0.6, 0.6) if ped else (a.length, a.width)
        other = boxes(np.array([a.x]), np.array([a.y]), np.array([a.yaw]), L + 2 * m, W + 2 * m)[0]
        hit = overlaps(ego, other)
        if not hit.any():
            return None
        return float(sq[int(np.argmax(hit))] - s)

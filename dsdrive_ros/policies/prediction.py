"""Where the other road users will be over the expert's horizon (privileged: SUMO's lanes and links).

SUMO vehicles drive along their OWN lanes (internal junction lanes included, cut at their red stop
line; `vehicle.getNextLinks`), with two distance profiles each: the earliest arrival (a moving
vehicle, or one standing inside a junction, may accelerate) and the latest exit (it never speeds up
and slows to its lanes' limits, e.g. in turns). Pedestrians keep their velocity.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..sim.scene import RoadUser
from .expert_params import ExpertParams

__all__ = ["LaneShape", "VehiclePath", "Track", "TrackPredictor", "along"]


class LaneShape(NamedTuple):
    points: np.ndarray  # (n, 2) lane centre line
    cum: np.ndarray  # (n,) arc length at each vertex


class VehiclePath(NamedTuple):
    """Where a SUMO vehicle will drive, from the start of its current lane (~100 m)."""

    points: np.ndarray  # (n, 2) polyline
    cum: np.ndarray  # (n,) arc length at each vertex
    offset: float  # arc position of the vehicle's centre
    lane: str  # its current lane (":..." = inside a junction)
    speeds: np.ndarray  # (n,) its lanes' speed limits at each vertex


class Track(NamedTuple):
    points: np.ndarray  # (T, 2) world positions at the horizon's times
    yaws: np.ndarray  # (T,)


def along(P: np.ndarray, cum: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and headings at arc positions `dist` along polyline P (clamped to its ends)."""
    if len(P) < 2:
        return np.repeat(P[:1], len(dist), 0), np.zeros(len(dist))
    d = np.clip(dist, 0.0, cum[-1])
    x = np.interp(d, cum, P[:, 0])
    y = np.interp(d, cum, P[:, 1])
    k = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(P) - 2)
    dd = P[k + 1] - P[k]
    return np.stack([x, y], 1), np.arctan2(dd[:, 1], dd[:, 0])


class TrackPredictor:
    """Predicted tracks of road users; `static` (StaticMap) and `traci` may be None (then vehicles
    drive straight on along their heading)."""

    def __init__(self, static, traci, params: ExpertParams):
        self.static = static
        self.traci = traci
        self.p = params
        self._lane_cache: dict[str, LaneShape] = {}
        self._path_cache: dict = {}

    def on_internal_lane(self, a: RoadUser) -> bool:
        """The vehicle is inside a junction (SUMO internal lane)."""
        return self.traci is not None and self.traci.vehicle.getLaneID(a.id).startswith(":")

    def tracks(self, a: RoadUser, T: np.ndarray) -> tuple[Track, Track]:
        """(earliest-arrival, latest-exit) tracks of `a` at times T."""
        p = self.p
        if a.kind == "pedestrian":
            vel = np.array([math.cos(a.yaw), math.sin(a.yaw)]) * a.speed
            pts = np.array([a.x, a.y]) + vel[None] * T[:, None]
            track = Track(pts, np.full(len(T), a.yaw))
            return track, track
        src = self.vehicle_path(a) if self.traci is not None else None
        # moving vehicles, and standing ones inside a junction (waiting for a gap to turn),
        # may accelerate: their earliest arrival assumes they do
        moving = a.speed > 1.0 or (src is not None and src.lane.startswith(":"))
        fast = a.speed * T + (0.5 * p.agent_accel * T ** 2 if moving else 0.0)
        fast = np.minimum(fast, a.speed * T + max(p.agent_vmax - a.speed, 0.0) * T)
        slow = a.speed * T
        if src is not None and len(src.points) >= 2 and a.speed > 1.0:
            slow = self._slow_profile(a.speed, max(src.offset, 0.0), src.cum, src.speeds, T)
        out = []
        for dist in (fast, slow):
            if src is None or len(src.points) < 2:
                hd = np.array([math.cos(a.yaw), math.sin(a.yaw)])
                pts = np.array([a.x, a.y]) + hd[None] * dist[:, None]
                yaws = np.full(len(T), a.yaw)
            else:
                pts, yaws = along(src.points, src.cum, max(src.offset, 0.0) + dist)
                pts[0] = (a.x, a.y)
                yaws[0] = a.yaw
            out.append(Track(pts, yaws))
        return out[0], out[1]

    # -- lanes --------------------------------------------------------------------------------
    def _lane(self, lane: str) -> LaneShape:
        c = self._lane_cache.get(lane)
        if c is None:
            li = self.static.lanes.get(lane)
            shape = li.shape if li is not None else np.zeros((0, 2))
            if len(shape) >= 2:
                cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(shape, axis=0).T))])
            else:
                cum = np.zeros(len(shape))
            c = LaneShape(shape, cum)
            self._lane_cache[lane] = c
        return c

    def _lane_length(self, lane: str) -> float:
        cum = self._lane(lane).cum
        return cum[-1] if len(cum) else 0.0

    def _lane_speed(self, lane: str) -> float:
        li = self.static.lanes.get(lane) if self.static is not None else None
        return float(li.speed) if li is not None else 13.9

    def vehicle_path(self, a: RoadUser) -> VehiclePath | None:
        """Where SUMO vehicle `a` will drive: from the start of its current lane through its next
        lanes (internal junction lanes included), ~100 m, cut at its stop line when its next link
        is red (or yellow and it can stop). None when it left the simulation. Cached per (lane,
        next links, cut)."""
        tr = self.traci
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
            lane_len = self._lane_length(lane)
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
        return VehiclePath(P, cum, pos - 0.5 * a.length, lane, V)

    def _build_path(self, lane: str, links, cut: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(polyline, arc lengths, speed limits) from the start of `lane` along `links`."""
        tr = self.traci
        pieces = [self._lane(lane).points]
        speeds = [self._lane_speed(lane)]
        total = self._lane_length(lane)
        cur = lane
        guard = 0
        while not cut and cur.startswith(":") and guard < 6:  # finish the junction
            guard += 1
            nxt = tr.lane.getLinks(cur)
            if not nxt:
                break
            cur = nxt[0][4] or nxt[0][0]
            pieces.append(self._lane(cur).points)
            speeds.append(self._lane_speed(cur))
            total += self._lane_length(cur)
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
                pieces.append(self._lane(c).points)
                speeds.append(self._lane_speed(c))
                total += self._lane_length(c)
            cur = to
        P = np.vstack([q for q in pieces if len(q)])
        V = np.concatenate([np.full(len(q), v) for q, v in zip(pieces, speeds) if len(q)])
        if len(P) >= 2:
            keep = np.concatenate([[True], np.hypot(*np.diff(P, axis=0).T) > 1e-6])
            P, V = P[keep], V[keep]
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(P, axis=0).T))]) \
            if len(P) >= 2 else np.zeros(len(P))
        return P, cum, V

    @staticmethod
    def _slow_profile(speed: float, off: float, cum: np.ndarray, V: np.ndarray,
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

"""Infractions, detected every simulation step of an episode (`sim.episode.Episode` runs the monitor).

  * collision_vehicle / collision_pedestrian: the ego's footprint overlaps another agent's (oriented
    boxes from SUMO's positions, geometric test; a repeated contact with the same agent within
    `collision_reid_s` counts once). There are no static obstacles in these worlds
    (collision_static never occurs).
  * red_light: the front bumper crosses a signalised stop line, driving in its lane's direction
    (within 60 deg), while its link is red (the route's link when the lane is the route's,
    otherwise when all the lane's links are red).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np

from ..policies.waypoint_policies import transform_waypoints
from ..sim.ego import Ego
from ..sim.observation import RoadUserReading
from ..sim.routes import Route

__all__ = ["Infraction", "Detection", "InfractionMonitor", "obb_overlap", "relative_pose"]


@dataclass
class Infraction:
    kind: str
    step: int
    t: float
    x: float
    y: float
    other: str = ""
    speed: float = 0.0  # the ego's, m/s: tells "drove into" from "was hit while standing"
    # collisions: the other agent in the ego's base_link (x forward, y left) and its heading there
    rel: tuple[float, float, float] | None = None


class Detection(NamedTuple):
    """An infraction seen on one simulation step, before the episode records it."""

    kind: str
    other: str  # the other agent's id, or the traffic light's
    rel: tuple[float, float, float] | None = None  # collisions: see Infraction.rel


def relative_pose(ex: float, ey: float, eyaw: float, x: float, y: float,
                  yaw: float) -> tuple[float, float, float]:
    """(x, y, yaw) of a world pose in the frame of the ego's pose (base_link), yaw wrapped to (-pi, pi]."""
    (rx, ry), = transform_waypoints([[x, y]], (0.0, 0.0, 0.0), (ex, ey, eyaw))  # world is the pose 0
    dyaw = math.atan2(math.sin(yaw - eyaw), math.cos(yaw - eyaw))
    return (round(float(rx), 2), round(float(ry), 2), round(dyaw, 3))


def obb_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex quads (4, 2)."""
    for poly in (a, b):
        for i in range(4):
            e = poly[(i + 1) % 4] - poly[i]
            n = np.array([-e[1], e[0]])
            pa = a @ n
            pb = b @ n
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def _box_corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    hl, hw = 0.5 * length, 0.5 * width
    loc = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
    return loc @ np.array([[c, s], [-s, c]]) + [x, y]


def _segments_cross(a0, a1, b0, b1) -> bool:
    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = orient(b0, b1, a0), orient(b0, b1, a1)
    d3, d4 = orient(a0, a1, b0), orient(a0, a1, b1)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


class InfractionMonitor:
    """Collisions and red lights of one episode; `static` is the world's StaticMap."""

    def __init__(self, static, route: Route, collision_reid_s: float):
        self.collision_reid_s = collision_reid_s
        self._contacts: dict[str, float] = {}  # agent id -> last time in contact
        self._lane_stop: dict[str, list] = {}
        for sl in static.stop_lines:
            self._lane_stop.setdefault(sl.lane, []).append(sl)
        self._sl_lanes = sorted(self._lane_stop.items())
        self._sl_mid = np.array([0.5 * (v[0].p0 + v[0].p1) for _, v in self._sl_lanes]).reshape(-1, 2)
        dirs = []
        for lane, _ in self._sl_lanes:
            sh = static.lanes[lane].shape
            d = sh[-1] - sh[-2]
            dirs.append(d / max(float(np.hypot(*d)), 1e-9))
        self._sl_dir = np.array(dirs).reshape(-1, 2)
        self._route_links = {j.in_lane: (j.tls, j.link_index) for j in route.junctions
                             if j.tls is not None}

    def check(self, ego: Ego, prev_front: tuple[float, float], agents: Sequence[RoadUserReading],
              t: float, tls_states: Callable[[], dict[str, str]]) -> list[Detection]:
        """What happened in the sim step that moved the front bumper from `prev_front`."""
        return self._collisions(ego, agents, t) + self._red_lights(ego, prev_front, tls_states)

    def _collisions(self, ego: Ego, agents: Sequence[RoadUserReading], t: float) -> list[Detection]:
        st = ego.state
        ego_box = np.array(ego.corners())
        out = []
        for a in agents:
            if (a.x - st.x) ** 2 + (a.y - st.y) ** 2 > 100.0:
                continue
            if obb_overlap(ego_box, _box_corners(a.x, a.y, a.yaw, a.length, a.width)):
                last = self._contacts.get(a.id)
                if last is None or t - last > self.collision_reid_s:
                    k = "collision_pedestrian" if a.kind == "pedestrian" else "collision_vehicle"
                    out.append(Detection(k, a.id, relative_pose(st.x, st.y, st.yaw, a.x, a.y, a.yaw)))
                self._contacts[a.id] = t
        return out

    def _red_lights(self, ego: Ego, prev_front: tuple[float, float],
                    tls_states: Callable[[], dict[str, str]]) -> list[Detection]:
        """The front bumper crossed a signalised stop line."""
        f0 = np.asarray(prev_front)
        f1 = np.asarray(ego.front_bumper())
        if not ((f1[0] - f0[0]) ** 2 + (f1[1] - f0[1]) ** 2 > 1e-12 and len(self._sl_mid)):
            return []
        out = []
        near = np.nonzero((np.abs(self._sl_mid[:, 0] - f1[0]) < 8.0)
                          & (np.abs(self._sl_mid[:, 1] - f1[1]) < 8.0))[0]
        states_now = None
        for idx in near:
            lane, sls = self._sl_lanes[idx]
            sl = sls[0]
            # only a line we drive over in its own direction (not the opposite lane's line
            # clipped in a turn)
            if math.cos(ego.state.yaw) * self._sl_dir[idx, 0] \
                    + math.sin(ego.state.yaw) * self._sl_dir[idx, 1] < 0.5:
                continue
            if not _segments_cross(f0, f1, sl.p0, sl.p1):
                continue
            if states_now is None:
                states_now = tls_states()
            route_link = self._route_links.get(lane)
            if route_link is not None:
                states = [states_now.get(route_link[0], "")[route_link[1]:route_link[1] + 1]]
            else:
                states = [states_now.get(s.tls, "")[s.link_index:s.link_index + 1] for s in sls]
            if states and all(c in ("r", "R", "u") for c in states):
                out.append(Detection("red_light", sl.tls))
        return out

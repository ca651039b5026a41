"""What an episode reads from SUMO each simulation step: the road users around the ego, and (for the
dataset) the ego's actual future poses as waypoints."""
from __future__ import annotations

import math
from typing import NamedTuple

from .ego import EGO_ID

__all__ = ["RoadUserReading", "RoadUserReader", "future_waypoints"]


class RoadUserReading(NamedTuple):
    """One road user as SUMO reports it (world frame; the centre of its footprint)."""

    id: str
    kind: str  # "vehicle" | "pedestrian"
    x: float
    y: float
    yaw: float  # rad, counter-clockwise from east
    length: float
    width: float
    height: float
    speed: float
    braking: bool  # brake lights on


class RoadUserReader:
    """Vehicles through a context subscription around the ego, pedestrians by distance."""

    def __init__(self, world, radius: float):
        self.world = world
        self.radius = radius
        self._types: dict[str, tuple[float, float, float]] = {}

    def subscribe(self) -> None:
        """(Again) after the ego was inserted into SUMO."""
        import traci.constants as tc

        self.world.traci.vehicle.subscribeContext(
            EGO_ID, tc.CMD_GET_VEHICLE_VARIABLE, self.radius,
            [tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_SPEED, tc.VAR_TYPE, tc.VAR_SIGNALS])

    def _type_dims(self, vtype: str) -> tuple[float, float, float]:
        d = self._types.get(vtype)
        if d is None:
            vt = self.world.traci.vehicletype
            d = (vt.getLength(vtype), vt.getWidth(vtype), vt.getHeight(vtype))
            self._types[vtype] = d
        return d

    def read(self, ex: float, ey: float) -> list[RoadUserReading]:
        """Road users around the ego at (ex, ey), vehicles then pedestrians, each sorted by id."""
        import traci.constants as tc

        tr = self.world.traci
        out = []
        res = tr.vehicle.getContextSubscriptionResults(EGO_ID) or {}
        for vid in sorted(res):
            if vid == EGO_ID:
                continue
            r = res[vid]
            L, W, H = self._type_dims(r[tc.VAR_TYPE])
            fx, fy = r[tc.VAR_POSITION]
            yaw = math.radians(90.0 - r[tc.VAR_ANGLE])
            out.append(RoadUserReading(vid, "vehicle", fx - math.cos(yaw) * L / 2,
                                       fy - math.sin(yaw) * L / 2, yaw, L, W, H,
                                       float(r[tc.VAR_SPEED]), bool(int(r[tc.VAR_SIGNALS]) & 8)))
        R2 = self.radius ** 2
        pers = tr.person
        for pid in sorted(pers.getIDList()):
            px, py = pers.getPosition(pid)
            if (px - ex) ** 2 + (py - ey) ** 2 > R2:
                continue
            yaw = math.radians(90.0 - pers.getAngle(pid))
            out.append(RoadUserReading(pid, "pedestrian", px, py, yaw, 0.5, 0.6, 1.75,
                                       float(pers.getSpeed(pid)), False))
        return out


def future_waypoints(poses: list, i: int, lag: int, K: int) -> list[list[float]]:
    """The poses at i + lag, ..., i + K * lag (clamped to the last) in base_link of pose i."""
    x0, y0, yaw0 = poses[i]
    c, s = math.cos(yaw0), math.sin(yaw0)
    out = []
    for k in range(1, K + 1):
        x, y, _ = poses[min(i + k * lag, len(poses) - 1)]
        dx, dy = x - x0, y - y0
        out.append([round(c * dx + s * dy, 4), round(-s * dx + c * dy, 4)])
    return out

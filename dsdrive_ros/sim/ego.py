"""The ego car: a kinematic bicycle model stepped by us and pushed into SUMO each step.

Reference point: the centre of the car's footprint at ground level (= `base_link`, like CARLA's actor
location). Internally the kinematic bicycle is written at that point with slip angle
beta = atan(lr / L * tan(delta)), lr = L / 2. SUMO wants the FRONT bumper position and its own angle
(degrees clockwise from north): `Ego.push()` converts.

Controls, two kinds (both accepted by `Ego.step`):
  * CARLA-like: steer in [-1, 1] (positive = left, fraction of `max_steer`), throttle and brake in
    [0, 1]; throttle -> accel = throttle * max_accel (minus drag), brake -> decel = brake * max_decel.
  * direct: `accel` (m/s^2, negative brakes) and `steer_rate` (rad/s) or `steer_angle` (rad).
The steering angle follows its command with a rate limit (`max_steer_rate`), like a real actuator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EgoParams", "Control", "EgoState", "Ego", "EGO_ID"]

EGO_ID = "ego"


@dataclass
class EgoParams:
    wheelbase: float = 2.9
    length: float = 4.6
    width: float = 1.9
    height: float = 1.6
    max_steer: float = 0.65  # rad (front wheel)
    max_steer_rate: float = 1.2  # rad/s
    max_accel: float = 3.0  # m/s^2 at full throttle
    max_decel: float = 8.0  # m/s^2 at full brake
    max_speed: float = 20.0  # m/s
    drag: float = 0.02  # 1/s: accel -= drag * v at zero throttle (rolling/air resistance)


@dataclass
class Control:
    steer: float = 0.0  # [-1, 1], + = left
    throttle: float = 0.0  # [0, 1]
    brake: float = 0.0  # [0, 1]
    accel: float | None = None  # m/s^2: if set, replaces throttle/brake
    steer_rate: float | None = None  # rad/s: if set, replaces steer (integrates the wheel angle)
    steer_angle: float | None = None  # rad: if set, replaces steer (wheel angle command)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class EgoState:
    x: float  # centre, world frame (m)
    y: float
    yaw: float  # rad, counter-clockwise from east
    speed: float  # m/s (>= 0, no reversing)
    steer: float = 0.0  # front wheel angle (rad)
    accel: float = 0.0  # last longitudinal acceleration (m/s^2)

    def copy(self) -> "EgoState":
        return EgoState(self.x, self.y, self.yaw, self.speed, self.steer, self.accel)


def _clip(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


class Ego:
    def __init__(self, state: EgoState, params: EgoParams | None = None):
        self.p = params or EgoParams()
        self.state = state

    # -- dynamics
    def step(self, control: Control, dt: float) -> EgoState:
        p, s = self.p, self.state
        # steering actuator
        if control.steer_rate is not None:
            target = s.steer + control.steer_rate * dt
        elif control.steer_angle is not None:
            target = control.steer_angle
        else:
            target = _clip(control.steer, -1.0, 1.0) * p.max_steer
        target = _clip(target, -p.max_steer, p.max_steer)
        ds = _clip(target - s.steer, -p.max_steer_rate * dt, p.max_steer_rate * dt)
        steer = s.steer + ds
        # longitudinal
        if control.accel is not None:
            a = _clip(control.accel, -p.max_decel, p.max_accel)
        else:
            thr = _clip(control.throttle, 0.0, 1.0)
            brk = _clip(control.brake, 0.0, 1.0)
            a = thr * p.max_accel - brk * p.max_decel - p.drag * s.speed
        v0 = s.speed
        v1 = _clip(v0 + a * dt, 0.0, p.max_speed)
        if v0 + a * dt < 0.0:  # stops within the step
            a = -v0 / dt if dt > 0 else 0.0
        v_mid = 0.5 * (v0 + v1)
        # kinematic bicycle at the centre (lr = L/2), midpoint integration
        lr = 0.5 * p.wheelbase
        beta = math.atan(lr / p.wheelbase * math.tan(steer))
        yaw_rate = v_mid / lr * math.sin(beta)
        yaw_mid = s.yaw + 0.5 * yaw_rate * dt
        x = s.x + v_mid * math.cos(yaw_mid + beta) * dt
        y = s.y + v_mid * math.sin(yaw_mid + beta) * dt
        yaw = math.atan2(math.sin(s.yaw + yaw_rate * dt), math.cos(s.yaw + yaw_rate * dt))
        self.state = EgoState(x, y, yaw, v1, steer, a)
        return self.state

    # -- geometry
    def front_bumper(self) -> tuple[float, float]:
        s = self.state
        h = 0.5 * self.p.length
        return s.x + h * math.cos(s.yaw), s.y + h * math.sin(s.yaw)

    def rear_axle(self) -> tuple[float, float]:
        s = self.state
        h = 0.5 * self.p.wheelbase
        return s.x - h * math.cos(s.yaw), s.y - h * math.sin(s.yaw)

    def corners(self) -> list[tuple[float, float]]:
        s = self.state
        c, si = math.cos(s.yaw), math.sin(s.yaw)
        hl, hw = 0.5 * self.p.length, 0.5 * self.p.width
        return [(s.x + c * dx - si * dy, s.y + si * dx + c * dy)
                for dx, dy in ((hl, hw), (hl, -hw), (-hl, -hw), (-hl, hw))]

    # -- SUMO
    def add_to_sumo(self, traci, route_edges: list[str], route_id: str = "ego_route") -> None:
        if EGO_ID in traci.vehicle.getIDList():
            traci.vehicle.remove(EGO_ID)
        # A fresh id on every insertion: SUMO keeps route ids until the end, and a count-based
        # suffix repeats once other routes are gone ("Could not add route").
        existing, base, n = set(traci.route.getIDList()), route_id, 0
        while route_id in existing:
            n += 1
            route_id = f"{base}_{n}"
        traci.route.add(route_id, list(route_edges))
        traci.vehicle.add(EGO_ID, route_id, typeID="ego", depart="now", departSpeed="0")
        traci.vehicle.setSpeedMode(EGO_ID, 0)
        traci.vehicle.setLaneChangeMode(EGO_ID, 0)
        self.push(traci)

    def push(self, traci) -> None:
        """Place the SUMO vehicle where the model says (front bumper, SUMO angle)."""
        fx, fy = self.front_bumper()
        angle = (90.0 - math.degrees(self.state.yaw)) % 360.0
        traci.vehicle.moveToXY(EGO_ID, "", -1, fx, fy, angle, keepRoute=2)
        traci.vehicle.setSpeed(EGO_ID, self.state.speed)

"""LMDrive's PID path follower: waypoints (base_link) + speed -> CARLA-like steer/throttle/brake.

Port of opendilab/LMDrive `leaderboard/team_code/controller.py` + the agent's post-processing
(`lmdriver_agent.py`), with the gains of `lmdriver_config.py`:

  * steering PID  KP 1.25, KI 0.75, KD 0.3, window 40 samples; integral = mean of the window,
    derivative = difference of the last two errors (a per-step PID: no dt; LMDrive runs it once per
    model step, 10 Hz);
  * aim point = mean of waypoints 0 and 1; angle error = (90 deg - atan2(forward, right)) / 90 in
    LMDrive's frame (x right, y forward), i.e. the aim's bearing to the RIGHT of straight ahead in
    units of 90 deg, CARLA's positive steer = right. In our base_link (x forward, y left) that is
    bearing_right = atan2(-y, x). We wrap it to (-180, 180] deg: identical to LMDrive for any aim
    point ahead or beside the car; for an aim point behind, LMDrive's unwrapped value (up to 3)
    steers away from it, ours steers towards it. The error is 0 while the car stands (speed <
    0.01 m/s), so it does not accumulate in the integral;
  * steer = clip(PID, -1, 1) * 0.8, then sign-flipped: our `Control.steer` is + = LEFT;
  * speed: desired = |wp1 - wp0| / dt (LMDrive: 2 |wp0 - wp1| for dt = 0.5 s; `dt` comes from the
    model's config.json "waypoints.dt_s"); delta = clip(desired - speed, 0, 0.35); throttle =
    clip(speed PID(delta), 0, 0.75) (KP 5, KI 0.5, KD 1.0, window 40); brake (1.0, throttle 0)
    when desired < 0.1 m/s or speed / desired > 1.1.

Output: `ego.Control(steer, throttle, brake)` in the ego model's CARLA-like units (steer fraction of
`EgoParams.max_steer`, + = left; throttle -> accel = throttle * max_accel; brake -> decel = brake *
max_decel). Pure Python + numpy, no simulator or ROS.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..sim.ego import Control

__all__ = ["PIDController", "PIDParams", "WaypointController"]


class PIDController:
    """LMDrive's discrete PID: integral = mean of the last `n` errors, derivative = last difference."""

    def __init__(self, kp: float = 1.0, ki: float = 0.0, kd: float = 0.0, n: int = 20):
        self.kp, self.ki, self.kd, self.n = float(kp), float(ki), float(kd), int(n)
        self.reset()

    def reset(self) -> None:
        self._window: deque = deque([0.0] * self.n, maxlen=self.n)

    def step(self, error: float) -> float:
        self._window.append(float(error))
        if len(self._window) >= 2:
            integral = float(np.mean(self._window))
            derivative = self._window[-1] - self._window[-2]
        else:
            integral = derivative = 0.0
        return self.kp * error + self.ki * integral + self.kd * derivative


@dataclass
class PIDParams:
    turn_kp: float = 1.25
    turn_ki: float = 0.75
    turn_kd: float = 0.3
    turn_n: int = 40
    speed_kp: float = 5.0
    speed_ki: float = 0.5
    speed_kd: float = 1.0
    speed_n: int = 40
    max_throttle: float = 0.75
    brake_speed: float = 0.1  # desired speed (m/s) below which the car brakes
    brake_ratio: float = 1.1  # speed / desired above which the car brakes
    clip_delta: float = 0.35  # max speed error (m/s) fed to the speed PID
    steer_scale: float = 0.8  # LMDrive's agent: control.steer = steer * 0.8
    standstill: float = 0.01  # m/s: below it the angle error is 0


@dataclass
class WaypointController:
    """Waypoints (K, 2) in base_link, spaced `dt` seconds (first at +dt) -> `Control`."""

    dt: float = 0.5
    params: PIDParams = field(default_factory=PIDParams)

    def __post_init__(self) -> None:
        if not self.dt > 0:
            raise ValueError(f"waypoint spacing dt must be > 0, got {self.dt}")
        p = self.params
        self.turn = PIDController(p.turn_kp, p.turn_ki, p.turn_kd, p.turn_n)
        self.speed = PIDController(p.speed_kp, p.speed_ki, p.speed_kd, p.speed_n)
        self.last: dict = {}

    def reset(self) -> None:
        self.turn.reset()
        self.speed.reset()
        self.last = {}

    def control(self, waypoints, speed: float) -> Control:
        p = self.params
        wp = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
        if len(wp) < 2 or not np.all(np.isfinite(wp[:2])):
            raise ValueError(f"need >= 2 finite waypoints, got {wp.tolist()}")
        speed = float(speed)
        desired = float(np.linalg.norm(wp[1] - wp[0])) / self.dt
        brake = desired < p.brake_speed or speed / max(desired, 1e-4) > p.brake_ratio

        aim = 0.5 * (wp[0] + wp[1])
        # bearing of the aim point to the right of straight ahead, in units of 90 deg
        angle = math.degrees(math.atan2(-aim[1], aim[0])) / 90.0
        if speed < p.standstill:
            angle = 0.0
        steer_right = float(np.clip(self.turn.step(angle), -1.0, 1.0))

        delta = float(np.clip(desired - speed, 0.0, p.clip_delta))
        throttle = float(np.clip(self.speed.step(delta), 0.0, p.max_throttle))
        if brake:
            throttle = 0.0
        steer = -steer_right * p.steer_scale  # + = left (ego.Control)
        self.last = {"desired_speed": desired, "angle": angle, "aim": aim.tolist(), "delta": delta,
                     "brake": bool(brake), "steer": steer, "throttle": throttle}
        return Control(steer=steer, throttle=throttle, brake=1.0 if brake else 0.0)

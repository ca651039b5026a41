"""Closed-loop agents that drive through waypoints + LMDrive's PID (ROS-free ones).

All implement the `Policy` protocol of sim/episode.py (`reset(info)`, `act(state, images) ->
Control`). The ROS bridge to the real dsdrive_node is `closed_loop.RosBridgePolicy` (imports rclpy).

  * `WaypointPolicy`: base class. Subclasses return waypoints (K, 2) in base_link, spaced `dt`;
    the base turns them into control with `controller.WaypointController` and keeps per-step stats.
  * `ConstantVelocityPolicy`: the "blind" baseline: keeps the current heading and speed (straight
    waypoints at max(speed, min_speed)). With min_speed 0 it never leaves the start (the ego starts at
    rest), so it has a floor (default 4 m/s).
  * `ExpertPlanPolicy`: the privileged rule-based expert (policies/expert.py). mode "control": its own
    actuator commands (the sim/scoring sanity check, an upper bound); mode "pid": its online plan
    (`state.planned_waypoints`, 0.5 s apart) through the same PID as the model (the ceiling of the
    PID path follower with perfect waypoints).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .controller import PIDParams, WaypointController
from ..sim.ego import Control
from ..sim.scene import SceneState

__all__ = ["WaypointPolicy", "ConstantVelocityPolicy", "ExpertPlanPolicy", "transform_waypoints"]


def transform_waypoints(wp: np.ndarray, from_pose: tuple[float, float, float],
                        to_pose: tuple[float, float, float]) -> np.ndarray:
    """Waypoints in base_link at `from_pose` (world x, y, yaw) -> base_link at `to_pose`."""
    wp = np.asarray(wp, dtype=np.float64).reshape(-1, 2)
    x0, y0, a0 = from_pose
    x1, y1, a1 = to_pose
    c0, s0 = math.cos(a0), math.sin(a0)
    wx = x0 + c0 * wp[:, 0] - s0 * wp[:, 1]
    wy = y0 + s0 * wp[:, 0] + c0 * wp[:, 1]
    c1, s1 = math.cos(a1), math.sin(a1)
    dx, dy = wx - x1, wy - y1
    return np.stack([c1 * dx + s1 * dy, -s1 * dx + c1 * dy], 1)


class WaypointPolicy:
    """Waypoints -> LMDrive PID -> Control. Subclasses implement `plan(state, images)`."""

    name = "waypoints"

    def __init__(self, dt: float = 0.5, count: int = 5, pid: Optional[PIDParams] = None):
        self.dt = float(dt)
        self.count = int(count)
        self.controller = WaypointController(self.dt, pid or PIDParams())
        self.last_waypoints: Optional[np.ndarray] = None
        self._last_plan: Optional[tuple[np.ndarray, tuple[float, float, float]]] = None
        self.stats: dict = {}
        self.trace: list[dict] = []

    def reset(self, info) -> None:
        self.controller.reset()
        self.last_waypoints = None
        self._last_plan = None
        self.stats = {"steps": 0}
        self.trace = []

    def plan(self, state: SceneState, images: dict) -> np.ndarray:
        raise NotImplementedError

    def _keep(self, wp: np.ndarray, pose: tuple[float, float, float]) -> None:
        """Remember a model plan and the pose it was made at (for `_reuse`)."""
        self._last_plan = (np.asarray(wp, dtype=np.float64), pose)

    def _reuse(self, pose: tuple[float, float, float]) -> np.ndarray:
        """The last kept plan in base_link at `pose` (no new plan this step); none yet: stand still."""
        if self._last_plan is None:
            return np.zeros((self.count, 2))
        old, old_pose = self._last_plan
        return transform_waypoints(old, old_pose, pose)

    def act(self, state: SceneState, images: dict) -> Control:
        wp = np.asarray(self.plan(state, images), dtype=np.float64).reshape(-1, 2)
        self.last_waypoints = wp
        ctrl = self.controller.control(wp, state.speed)
        self.stats["steps"] = self.stats.get("steps", 0) + 1
        c = self.controller.last
        self.trace.append({"t": state.t, "speed": round(state.speed, 3),
                           "desired": round(c["desired_speed"], 3), "steer": round(ctrl.steer, 4),
                           "throttle": round(ctrl.throttle, 4), "brake": ctrl.brake})
        return ctrl


class ConstantVelocityPolicy(WaypointPolicy):
    name = "constant-velocity"

    def __init__(self, dt: float = 0.5, count: int = 5, min_speed: float = 4.0,
                 pid: Optional[PIDParams] = None):
        super().__init__(dt, count, pid)
        self.min_speed = float(min_speed)

    def plan(self, state: SceneState, images: dict) -> np.ndarray:
        v = max(float(state.speed), self.min_speed)
        t = self.dt * np.arange(1, self.count + 1)
        return np.stack([v * t, np.zeros_like(t)], 1)


class ExpertPlanPolicy(WaypointPolicy):
    """The privileged expert, by its own control ("control") or by its plan through the PID ("pid")."""

    def __init__(self, mode: str = "control", dt: float = 0.5, count: int = 5,
                 pid: Optional[PIDParams] = None, expert=None):
        if mode not in ("control", "pid"):
            raise ValueError(f"mode must be 'control' or 'pid', got {mode!r}")
        super().__init__(dt, count, pid)
        from .expert import Expert

        self.mode = mode
        self.name = "expert" if mode == "control" else "expert-pid"
        self.expert = expert or Expert()

    def reset(self, info) -> None:
        super().reset(info)
        self.expert.reset(info)

    def act(self, state: SceneState, images: dict) -> Control:
        ctrl = self.expert.act(state, images)
        if self.mode == "control":
            self.stats["steps"] = self.stats.get("steps", 0) + 1
            self.last_waypoints = np.asarray(state.planned_waypoints or [[0.0, 0.0]] * 2)
            return ctrl
        return super().act(state, images)

    def plan(self, state: SceneState, images: dict) -> np.ndarray:
        wp = state.planned_waypoints
        if not wp or len(wp) < 2:
            return np.zeros((self.count, 2))
        return np.asarray(wp, dtype=np.float64)

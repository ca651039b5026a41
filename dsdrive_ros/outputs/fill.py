""":class:`PlanOutput` -> ROS messages (nav_msgs/Path, dsdrive_ros/DrivingPlan, dsdrive_ros/Reasoning,
std_msgs/String). RViz markers: ``markers.py``.

In the style of openpilot's ``fill_model_msg``: pure functions that copy already-validated numbers into
messages, no policy. The path's stamp is the anchor camera's stamp (not "now"), so a consumer can
tell exactly which images the plan was made from; each pose is stamped ``stamp + t_i``. Orientation
of each pose is the heading along the path (segment from the previous point, the first from the
origin of base_link), as a quaternion from ``transforms3d``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from transforms3d.euler import euler2quat

from dsdrive_ros.outputs.parse import PlanOutput

__all__ = [
    "path_headings",
    "heading_quaternions",
    "ns_to_time",
    "time_to_ns",
    "fill_path",
    "fill_plan",
    "fill_reasoning",
    "fill_reasoning_stamped",
]

# Segments shorter than this keep the previous heading (a stopped car predicts points on top of
# each other: atan2 of noise would spin the poses).
_MIN_SEGMENT_M = 1e-3


def path_headings(waypoints: np.ndarray, min_segment_m: float = _MIN_SEGMENT_M) -> np.ndarray:
    """Yaw (rad, base_link, CCW from x) of each waypoint along the path from the origin."""
    wp = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
    yaws = np.zeros(wp.shape[0], dtype=np.float64)
    prev_pt = np.zeros(2)
    prev_yaw = 0.0
    for i, pt in enumerate(wp):
        d = pt - prev_pt
        if math.hypot(d[0], d[1]) >= min_segment_m:
            prev_yaw = math.atan2(d[1], d[0])
        yaws[i] = prev_yaw
        prev_pt = pt
    return yaws


def heading_quaternions(waypoints: np.ndarray) -> np.ndarray:
    """(K, 4) quaternions (w, x, y, z) for a rotation about z by each waypoint's heading."""
    return np.array([euler2quat(0.0, 0.0, yaw, "sxyz") for yaw in path_headings(waypoints)],
                    dtype=np.float64).reshape(-1, 4)


def ns_to_time(stamp_ns: int, time_cls: Any = None) -> Any:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    if time_cls is None:
        from builtin_interfaces.msg import Time as time_cls  # noqa: N813
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        stamp_ns = 0
    return time_cls(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def time_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (or anything with sec/nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def fill_path(plan: PlanOutput, msg: Any = None) -> Any:
    """nav_msgs/Path: header = (anchor camera stamp, plan.frame_id), one PoseStamped per waypoint."""
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path

    if msg is None:
        msg = Path()
    msg.header.stamp = ns_to_time(plan.stamp_ns)
    msg.header.frame_id = plan.frame_id
    quats = heading_quaternions(plan.waypoints)
    poses = []
    for (x, y), t, q in zip(plan.waypoints, plan.times_s, quats):
        ps = PoseStamped()
        ps.header.stamp = ns_to_time(plan.stamp_ns + int(round(float(t) * 1e9)))
        ps.header.frame_id = plan.frame_id
        ps.pose.position.x = float(x)
        ps.pose.position.y = float(y)
        ps.pose.position.z = 0.0
        ps.pose.orientation.w = float(q[0])
        ps.pose.orientation.x = float(q[1])
        ps.pose.orientation.y = float(q[2])
        ps.pose.orientation.z = float(q[3])
        poses.append(ps)
    msg.poses = poses
    return msg


def fill_reasoning(text: str, msg: Any = None) -> Any:
    """std_msgs/String with the reasoning text."""
    from std_msgs.msg import String

    if msg is None:
        msg = String()
    msg.data = str(text)
    return msg


def fill_reasoning_stamped(text: str, *, stamp_ns: int, frame_id: str, generation_ms: float,
                           generated_ns: int, msg: Any = None) -> Any:
    """dsdrive_ros/msg/Reasoning: ``text`` generated from the frame set stamped ``stamp_ns``,
    finished at ``generated_ns`` (node clock) after ``generation_ms`` of wall time."""
    if msg is None:
        from dsdrive_ros.msg import Reasoning

        msg = Reasoning()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.text = str(text)
    msg.generated_stamp = ns_to_time(generated_ns)
    msg.generation_ms = float(generation_ms)
    return msg


def _set_if_present(msg: Any, fields: dict[str, str], name: str, value: Any) -> None:
    if name not in fields:
        return
    kind = fields[name]
    if kind in ("float", "double"):
        value = float(value)
    elif kind.startswith(("int", "uint")) and "[" not in kind and "sequence" not in kind:
        value = int(value)
        if kind.startswith("uint"):
            value = max(0, value)
    elif kind == "boolean":
        value = bool(value)
    elif kind == "string":
        value = str(value)
    elif kind == "builtin_interfaces/Time":
        value = ns_to_time(value)
    elif "sequence<double" in kind or "sequence<float" in kind:
        value = [float(v) for v in np.asarray(value).reshape(-1)]
    setattr(msg, name, value)


def fill_plan(plan: PlanOutput, msg: Any = None, path: Any = None) -> Any:
    """dsdrive_ros/msg/DrivingPlan from a PlanOutput (``path``: an already filled Path to reuse)."""
    if msg is None:
        from dsdrive_ros.msg import DrivingPlan

        msg = DrivingPlan()
    fields = msg.get_fields_and_field_types()
    msg.header.stamp = ns_to_time(plan.stamp_ns)
    msg.header.frame_id = plan.frame_id
    msg.path = path if path is not None else fill_path(plan)
    values = {
        "waypoint_times_s": plan.times_s,
        "instruction": plan.instruction,
        "reasoning": plan.reasoning,
        "reasoning_stamp": plan.reasoning_stamp_ns,
        "end_probability": plan.end_prob,
        "end_of_instruction": plan.instruction_completed,
        "model_latency_ms": plan.latency_ms,
        "frame_age_ms": plan.frame_age_ms,
        "frames_dropped": plan.frames_dropped,
        "backend": plan.backend,
    }
    for name, value in values.items():
        _set_if_present(msg, fields, name, value)
    return msg

"""dsdrive_ros/msg/DrivingPlan: built by colcon, serialized by rclpy and by rosbags alike."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MSG_FILE = REPO_ROOT / "msg" / "DrivingPlan.msg"
MSG_TYPE = "dsdrive_ros/msg/DrivingPlan"

rclpy = pytest.importorskip("rclpy", reason="needs the ROS 2 wheels (make venv)")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

try:
    from dsdrive_ros.msg import DrivingPlan
except ImportError as exc:  # rclpy is here, so the build is expected to be too
    pytest.fail(
        f"dsdrive_ros.msg is not importable ({exc}): run `make build` and `. scripts/ros_env.sh`",
        pytrace=False,
    )

STAMP = (1_700_000_123, 456_000_000)
WAYPOINTS = [(1.0, 0.0), (2.1, 0.05), (3.3, 0.2), (4.6, 0.45), (6.0, 0.8)]
TIMES = [0.5, 1.0, 1.5, 2.0, 2.5]


def _yaw_quat(yaw: float) -> tuple[float, float]:
    return math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def make_plan() -> DrivingPlan:
    from geometry_msgs.msg import PoseStamped

    plan = DrivingPlan()
    plan.header.stamp.sec, plan.header.stamp.nanosec = STAMP
    plan.header.frame_id = "base_link"
    plan.path.header = plan.header
    prev = (0.0, 0.0)
    for (x, y), t in zip(WAYPOINTS, TIMES):
        ps = PoseStamped()
        ns = STAMP[1] + int(round(t * 1e9))
        ps.header.stamp.sec, ps.header.stamp.nanosec = STAMP[0] + ns // 10**9, ns % 10**9
        ps.header.frame_id = "base_link"
        ps.pose.position.x, ps.pose.position.y = x, y
        ps.pose.orientation.z, ps.pose.orientation.w = _yaw_quat(math.atan2(y - prev[1], x - prev[0]))
        prev = (x, y)
        plan.path.poses.append(ps)
    plan.waypoint_times_s = TIMES
    plan.instruction = "Turn left at the next intersection."
    plan.reasoning = "A car ahead is braking; slow down, then turn left. Ümlaut ok."
    plan.end_probability = 0.125
    plan.end_of_instruction = False
    plan.model_latency_ms = 12.5
    plan.frame_age_ms = 31.25
    plan.frames_dropped = 3
    plan.backend = "onnxruntime/fp32"
    return plan


def _rosbags_typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(MSG_FILE.read_text(), MSG_TYPE))
    return store


def _values_from_ros(plan) -> dict:
    return {
        "stamp": (plan.header.stamp.sec, plan.header.stamp.nanosec),
        "frame_id": plan.header.frame_id,
        "path_frame_id": plan.path.header.frame_id,
        "poses": [
            (
                (p.header.stamp.sec, p.header.stamp.nanosec),
                p.header.frame_id,
                (p.pose.position.x, p.pose.position.y, p.pose.position.z),
                (p.pose.orientation.x, p.pose.orientation.y, p.pose.orientation.z,
                 p.pose.orientation.w),
            )
            for p in plan.path.poses
        ],
        "waypoint_times_s": [float(t) for t in plan.waypoint_times_s],
        "instruction": plan.instruction,
        "reasoning": plan.reasoning,
        "end_probability": float(plan.end_probability),
        "end_of_instruction": bool(plan.end_of_instruction),
        "model_latency_ms": float(plan.model_latency_ms),
        "frame_age_ms": float(plan.frame_age_ms),
        "frames_dropped": int(plan.frames_dropped),
        "backend": plan.backend,
    }


def test_fields_match_msg_file():
    """The generated class carries exactly the fields of msg/DrivingPlan.msg, in order."""
    declared = []
    for line in MSG_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            declared.append(line.split()[1])
    assert list(DrivingPlan.get_fields_and_field_types()) == declared
    assert declared[:2] == ["header", "path"]


def test_rclpy_round_trip():
    plan = make_plan()
    data = serialize_message(plan)
    back = deserialize_message(data, DrivingPlan)
    assert back == plan
    assert len(back.path.poses) == 5
    assert back.frames_dropped == 3


def test_rclpy_and_rosbags_agree():
    plan = make_plan()
    expected = _values_from_ros(plan)
    store = _rosbags_typestore()

    # rclpy bytes -> rosbags
    rclpy_bytes = serialize_message(plan)
    rb = store.deserialize_cdr(rclpy_bytes, MSG_TYPE)
    from_rosbags = {
        "stamp": (rb.header.stamp.sec, rb.header.stamp.nanosec),
        "frame_id": rb.header.frame_id,
        "path_frame_id": rb.path.header.frame_id,
        "poses": [
            (
                (p.header.stamp.sec, p.header.stamp.nanosec),
                p.header.frame_id,
                (p.pose.position.x, p.pose.position.y, p.pose.position.z),
                (p.pose.orientation.x, p.pose.orientation.y, p.pose.orientation.z,
                 p.pose.orientation.w),
            )
            for p in rb.path.poses
        ],
        "waypoint_times_s": [float(t) for t in rb.waypoint_times_s],
        "instruction": rb.instruction,
        "reasoning": rb.reasoning,
        "end_probability": float(rb.end_probability),
        "end_of_instruction": bool(rb.end_of_instruction),
        "model_latency_ms": float(rb.model_latency_ms),
        "frame_age_ms": float(rb.frame_age_ms),
        "frames_dropped": int(rb.frames_dropped),
        "backend": rb.backend,
    }
    assert from_rosbags == expected

    # rosbags bytes (as dsdrive-replay writes them into a bag) -> rclpy
    rosbags_bytes = bytes(store.serialize_cdr(rb, MSG_TYPE))
    assert len(rosbags_bytes) == len(rclpy_bytes)  # differ at most in alignment padding
    back = deserialize_message(rosbags_bytes, DrivingPlan)
    assert back == plan
    assert _values_from_ros(back) == expected


def test_empty_plan_round_trips():
    """A plan with no reasoning yet (still streaming) and no poses is valid."""
    plan = DrivingPlan()
    store = _rosbags_typestore()
    rb = store.deserialize_cdr(serialize_message(plan), MSG_TYPE)
    assert rb.reasoning == "" and len(rb.path.poses) == 0 and len(rb.waypoint_times_s) == 0
    assert deserialize_message(bytes(store.serialize_cdr(rb, MSG_TYPE)), DrivingPlan) == plan

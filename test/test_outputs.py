"""parse_plan / fill_* without DDS (message classes only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dsdrive_ros.outputs.markers import NAMESPACES, end_color, plan_markers
from dsdrive_ros.outputs.parse import (
    PlanOutput,
    PlanParseError,
    PlausibilityLimits,
    implausibility,
    parse_plan,
    waypoint_times,
)
from dsdrive_ros.runners.spec import ModelSpec

SPEC = ModelSpec(Path("."), {
    "cameras": ["front", "left", "right", "rear"],
    "waypoints": {"count": 5, "dt_s": 0.5, "frame_id": "base_link"},
    "end_threshold": 0.75,
})
STAMP = 1_700_000_123_456_789_012


# another model's config.json: 4 waypoints 0.25 s apart in base_footprint
SPEC_4 = ModelSpec(Path("."), {
    "cameras": ["front", "left", "right", "rear"],
    "waypoints": {"count": 4, "dt_s": 0.25, "frame_id": "base_footprint"},
    "end_threshold": 0.5,
})


def _raw(k=5, batch=True):
    wp = np.stack([np.linspace(1, 10, k), np.linspace(0, 2, k)], axis=1).astype(np.float32)
    return {"waypoints": wp[None] if batch else wp, "end_prob": np.array([0.2], np.float32),
            "reasoner_kv": np.zeros((2, 2, 1, 2, 4, 32), np.float32)}


def test_parse_ok():
    out = parse_plan(_raw(), SPEC, stamp_ns=STAMP, latency_ms=12.5, frames_dropped=3,
                     backend="onnxruntime:CPUExecutionProvider", instruction="turn left", speed=4.0)
    assert isinstance(out, PlanOutput)
    assert out.waypoints.shape == (5, 2) and out.waypoints.dtype == np.float64
    np.testing.assert_allclose(out.times_s, [0.5, 1.0, 1.5, 2.0, 2.5])
    assert out.frame_id == "base_link"
    assert out.stamp_ns == STAMP
    assert out.end_prob == pytest.approx(0.2)
    assert not out.instruction_completed
    assert out.frames_dropped == 3 and out.latency_ms == 12.5
    d = out.to_dict()
    assert d["waypoints"][0][0] == pytest.approx(1.0) and d["backend"].startswith("onnxruntime")


def test_parse_other_spec_and_unbatched():
    raw = _raw(k=4, batch=False)
    raw["end_prob"] = np.float32(0.6)
    out = parse_plan(raw, SPEC_4, stamp_ns=5)
    assert out.frame_id == "base_footprint"
    np.testing.assert_allclose(out.times_s, [0.25, 0.5, 0.75, 1.0])
    assert out.instruction_completed  # 0.6 >= 0.5


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_parse_rejects_non_finite_waypoints(bad):
    raw = _raw()
    raw["waypoints"][0, 2, 1] = bad
    with pytest.raises(PlanParseError, match="non-finite"):
        parse_plan(raw, SPEC, stamp_ns=1)


@pytest.mark.parametrize("end_prob", [np.nan, 1.5, -0.2, np.array([0.1, 0.2])])
def test_parse_rejects_bad_end_prob(end_prob):
    raw = _raw()
    raw["end_prob"] = np.asarray(end_prob, np.float32)
    with pytest.raises(PlanParseError):
        parse_plan(raw, SPEC, stamp_ns=1)


def test_parse_rejects_shapes_and_missing():
    with pytest.raises(PlanParseError, match="5 points"):
        parse_plan(_raw(k=6), SPEC, stamp_ns=1)
    with pytest.raises(PlanParseError, match=r"\(K, 2\)"):
        parse_plan({"waypoints": np.zeros((5, 3)), "end_prob": 0.1}, SPEC, stamp_ns=1)
    with pytest.raises(PlanParseError, match="waypoints"):
        parse_plan({"end_prob": 0.1}, SPEC, stamp_ns=1)
    with pytest.raises(PlanParseError, match="end_prob"):
        parse_plan({"waypoints": np.zeros((5, 2))}, SPEC, stamp_ns=1)
    with pytest.raises(PlanParseError, match="m"):
        parse_plan({"waypoints": np.full((5, 2), 1e6), "end_prob": 0.1}, SPEC, stamp_ns=1)


def test_waypoint_times():
    np.testing.assert_allclose(waypoint_times(3, 0.1), [0.1, 0.2, 0.3])


# ---- fill (needs the ROS message classes, not DDS) ----

def _plan(wp=None):
    raw = _raw()
    if wp is not None:
        raw["waypoints"] = np.asarray(wp, np.float32)
    return parse_plan(raw, SPEC, stamp_ns=STAMP, latency_ms=7.0, frames_dropped=2, backend="ort",
                      instruction="go straight", speed=3.0)


def test_headings():
    fill = pytest.importorskip("dsdrive_ros.outputs.fill")
    yaws = fill.path_headings(np.array([[1, 0], [2, 1], [2, 1], [2, 3], [1, 3]], float))
    np.testing.assert_allclose(yaws, [0, math.pi / 4, math.pi / 4, math.pi / 2, math.pi])
    q = fill.heading_quaternions(np.array([[0, 1]], float))  # straight left: yaw +90 deg
    np.testing.assert_allclose(q[0], [math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], atol=1e-12)


def test_fill_path():
    fill = pytest.importorskip("dsdrive_ros.outputs.fill")
    plan = _plan([[1, 0], [2, 0], [3, 1], [3, 2], [3, 3]])
    msg = fill.fill_path(plan)
    assert msg.header.frame_id == "base_link"
    assert fill.time_to_ns(msg.header.stamp) == STAMP
    assert len(msg.poses) == 5
    for i, ps in enumerate(msg.poses):
        assert ps.header.frame_id == "base_link"
        assert fill.time_to_ns(ps.header.stamp) == STAMP + int(round((i + 1) * 0.5e9))
        q = ps.pose.orientation
        assert q.w ** 2 + q.x ** 2 + q.y ** 2 + q.z ** 2 == pytest.approx(1.0)
        assert q.x == 0.0 and q.y == 0.0
    assert msg.poses[2].pose.position.x == pytest.approx(3.0)
    assert msg.poses[2].pose.position.y == pytest.approx(1.0)
    # heading of pose 3 (from (3,1) to (3,2)) is +90 degrees
    q = msg.poses[3].pose.orientation
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(math.pi / 2)
    # heading of pose 0 (from origin to (1,0)) is 0
    assert msg.poses[0].pose.orientation.w == pytest.approx(1.0)


def test_fill_reasoning():
    fill = pytest.importorskip("dsdrive_ros.outputs.fill")
    assert fill.fill_reasoning("slow down: pedestrian").data == "slow down: pedestrian"


def test_time_roundtrip():
    fill = pytest.importorskip("dsdrive_ros.outputs.fill")
    for ns in (0, 1, 999_999_999, 1_000_000_000, STAMP):
        assert fill.time_to_ns(fill.ns_to_time(ns)) == ns


def test_fill_plan():
    fill = pytest.importorskip("dsdrive_ros.outputs.fill")
    try:
        from dsdrive_ros.msg import DrivingPlan
    except ImportError:
        pytest.skip("dsdrive_ros.msg not built (make build; . scripts/ros_env.sh)")
    plan = _plan()
    plan.reasoning = "clear road ahead"
    plan.reasoning_stamp_ns = STAMP - 500_000_000
    plan.frame_age_ms = 33.0
    msg = fill.fill_plan(plan, DrivingPlan())
    assert fill.time_to_ns(msg.header.stamp) == STAMP and msg.header.frame_id == "base_link"
    assert len(msg.path.poses) == 5 and fill.time_to_ns(msg.path.header.stamp) == STAMP
    np.testing.assert_allclose(list(msg.waypoint_times_s), [0.5, 1.0, 1.5, 2.0, 2.5])
    assert msg.instruction == "go straight" and msg.reasoning == "clear road ahead"
    assert fill.time_to_ns(msg.reasoning_stamp) == STAMP - 500_000_000
    assert msg.end_probability == pytest.approx(0.2) and msg.end_of_instruction is False
    assert msg.model_latency_ms == pytest.approx(7.0) and msg.frame_age_ms == pytest.approx(33.0)
    assert msg.frames_dropped == 2 and msg.backend == "ort"
    # serialises (all field types right)
    from rclpy.serialization import deserialize_message, serialize_message

    back = deserialize_message(serialize_message(msg), DrivingPlan)
    assert back.path.poses[4].pose.position.x == pytest.approx(10.0)


def test_fill_reasoning_stamped():
    fill = pytest.importorskip("dsdrive_ros.outputs.fill")
    try:
        from dsdrive_ros.msg import Reasoning
    except ImportError:
        pytest.skip("dsdrive_ros.msg not built (make build; . scripts/ros_env.sh)")
    from rclpy.serialization import deserialize_message, serialize_message

    msg = fill.fill_reasoning_stamped("stop: red light", stamp_ns=STAMP, frame_id="base_link",
                                      generation_ms=123.5, generated_ns=STAMP + 2_000_000_000)
    back = deserialize_message(serialize_message(msg), Reasoning)
    assert fill.time_to_ns(back.header.stamp) == STAMP and back.header.frame_id == "base_link"
    assert back.text == "stop: red light" and back.generation_ms == pytest.approx(123.5)
    assert fill.time_to_ns(back.generated_stamp) == STAMP + 2_000_000_000


LIMITS = PlausibilityLimits(max_first_waypoint_m=5.0, max_speed_mps=20.0)
TIMES = np.array([0.5, 1.0, 1.5])


@pytest.mark.parametrize("wp, why", [
    ([[2.0, 0.0], [4.0, 0.5], [6.0, 1.0]], ""),                 # 4 m/s along a gentle curve
    ([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], ""),                 # standing still
    ([[5.5, 0.0], [7.0, 0.0], [9.0, 0.0]], "first waypoint 5.5 m"),
    ([[3.0, 4.1], [4.0, 4.1], [5.0, 4.1]], "first waypoint 5.1 m"),  # lateral distance counts
    ([[2.0, 0.0], [4.0, 0.0], [14.5, 0.0]], "waypoints 2->3 imply 21.0 m/s"),
])
def test_implausibility(wp, why):
    got = implausibility(np.array(wp), TIMES, LIMITS)
    assert (why in got) if why else got == "", got


def test_end_color_goes_green_to_red():
    assert end_color(0.0)[:3] == pytest.approx((0.0, 1.0, 0.1))
    assert end_color(0.5)[:3] == pytest.approx((1.0, 1.0, 0.1))
    assert end_color(1.0)[:3] == pytest.approx((1.0, 0.0, 0.1))
    assert end_color(7.0) == end_color(1.0) and end_color(0.3, 0.5).a == 0.5


def test_plan_markers_layout():
    plan = _plan()
    specs = plan_markers(plan)
    assert [m.ns for m in specs] == list(NAMESPACES)
    line, spheres, reasoning, instruction = specs
    assert line.kind == "LINE_STRIP" and line.points[0] == (0.0, 0.0, 0.0)  # starts at the ego
    assert line.points[1:] == spheres.points and len(spheres.points) == 5
    assert spheres.points[-1] == pytest.approx((10.0, 2.0, 0.0))
    assert spheres.color == pytest.approx(end_color(0.2))
    assert reasoning.delete, "no reasoning yet: the text marker is removed"
    assert instruction.kind == "TEXT_VIEW_FACING" and "go straight" in instruction.text
    assert "0.20" in instruction.text and "done" not in instruction.text
    plan.reasoning = "a pedestrian is crossing ahead, so I slow down and wait " * 20
    plan.end_prob = 0.9
    reasoning, instruction = plan_markers(plan)[2:]
    lines = reasoning.text.split("\n")
    assert not reasoning.delete and 1 < len(lines) <= 8 and lines[-1].endswith("...")
    assert reasoning.position[2] > instruction.position[2] > 0.0  # above base_link, text on top
    assert "(done)" in instruction.text


def test_fill_markers_carry_the_plan_header():
    pytest.importorskip("visualization_msgs.msg", reason="needs the ROS 2 wheels (make venv)")
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import Marker, MarkerArray

    from dsdrive_ros.outputs.fill import time_to_ns
    from dsdrive_ros.outputs.markers import fill_markers

    plan = _plan()
    plan.reasoning = "clear road"
    msg = deserialize_message(serialize_message(fill_markers(plan)), MarkerArray)
    assert [(m.ns, m.id) for m in msg.markers] == [(ns, 0) for ns in NAMESPACES]
    for m in msg.markers:
        assert time_to_ns(m.header.stamp) == STAMP and m.header.frame_id == "base_link"
        assert m.action == Marker.ADD and m.pose.orientation.w == 1.0
    types = [m.type for m in msg.markers]
    assert types == [Marker.LINE_STRIP, Marker.SPHERE_LIST, Marker.TEXT_VIEW_FACING, Marker.TEXT_VIEW_FACING]
    assert len(msg.markers[0].points) == 6 and msg.markers[2].text == "clear road"
    assert msg.markers[1].points[4].x == pytest.approx(10.0) and msg.markers[1].color.a == 1.0


def test_rviz_config_shows_the_node_topics(repo_root):
    yaml = pytest.importorskip("yaml")
    from dsdrive_ros.node import topics as node
    doc = yaml.safe_load((repo_root / "config" / "dsdrive.rviz").read_text())
    manager = doc["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "base_link"  # every marker's frame
    shown = {d["Class"].split("/")[-1]: d["Topic"]["Value"] for d in manager["Displays"]
             if d.get("Enabled") and "Topic" in d}
    assert shown == {"Path": "/" + node.TOPICS["path"], "MarkerArray": "/" + node.TOPICS["markers"],
                     "Image": "/" + node.camera_topic("front")}

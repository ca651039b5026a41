"""What the node publishes besides the plan, and its input/output guards, over DDS with the REAL
node in a subprocess: dsdrive/markers (RViz), dsdrive/reasoning_stamped, dsdrive/debug_image,
max_frame_age_ms and drop_implausible_plans (both counted in /diagnostics).

Generous timeouts (model load + discovery on a busy machine), no timing assertions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build; . scripts/ros_env.sh)")

from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from dsdrive_ros.msg import Reasoning  # noqa: E402
from ros_harness import DriveRig, NodeProcess, stamp_ns_of  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

OUTPUT_TIMEOUT = 60.0
INSTRUCTION = "turn right at the next intersection"


def time_ns(t: object) -> int:
    return int(t.sec) * 10**9 + int(t.nanosec)


def _set_params(rig: DriveRig, **values: object) -> None:
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(rig.h.node, "dsdrive_node")
    assert client.wait_for_services(timeout_sec=20.0)
    fut = client.set_parameters([Parameter(k.replace("__", "."), value=v) for k, v in values.items()])
    assert rig.h.wait_for(fut.done, 20.0)
    assert all(r.successful for r in fut.result().results), [r.reason for r in fut.result().results]


def test_markers_stamped_reasoning_and_debug_image(model_dir: Path, tmp_path: Path) -> None:
    rig = DriveRig("dsdrive_views_rig")
    subs = [rig.h.subscribe("/dsdrive/markers", MarkerArray, 100),
            rig.h.subscribe("/dsdrive/reasoning_stamped", Reasoning, 100),
            rig.h.subscribe("/dsdrive/debug_image", Image, 20)]
    rig.h.subscribe("/dsdrive/reasoning", String, 100)
    rig.send_instruction(INSTRUCTION)
    node = NodeProcess(model_dir, tmp_path, ["reasoning.max_rate_hz:=5.0", "reasoning.max_tokens:=8",
                                             "debug_image.enabled:=true"])
    try:
        rig.wait_discovery(node)
        assert rig.h.wait_for(lambda: all(s.get_publisher_count() > 0 for s in subs), 30.0)
        # stream until a few texts came back (each explains one earlier plan's frame set) and the
        # latched instruction is in the plans
        def enough() -> bool:
            return (len(rig.h.got("/dsdrive/reasoning_stamped")) >= 3
                    and any(p.instruction == INSTRUCTION for p in rig.plans())
                    and any(p.reasoning for p in rig.plans()))  # a text reaches later plans only

        deadline = time.monotonic() + OUTPUT_TIMEOUT
        while not enough() and time.monotonic() < deadline:
            rig.send_set(seed=rig.sent % 5)
            time.sleep(0.2)
        assert enough(), node.log()[-3000:]
        assert rig.h.wait_for(lambda: len(rig.h.got("/dsdrive/markers")) >= len(rig.plans()), 10.0)

        plans = {stamp_ns_of(p): p for p in rig.plans()}
        # ---- markers: one array per plan, under the plan's header ----
        arrays = rig.h.got("/dsdrive/markers")
        assert {stamp_ns_of(a.markers[0]) for a in arrays} == set(plans)
        for a in arrays:
            stamp = stamp_ns_of(a.markers[0])
            assert all(stamp_ns_of(m) == stamp and m.header.frame_id == "base_link" for m in a.markers)
            by_ns = {m.ns: m for m in a.markers}
            line, spheres, text = by_ns["path"], by_ns["waypoints"], by_ns["instruction"]
            assert line.type == Marker.LINE_STRIP and spheres.type == Marker.SPHERE_LIST
            plan = plans[stamp]
            xy = [(ps.pose.position.x, ps.pose.position.y) for ps in plan.path.poses]
            np.testing.assert_allclose([(p.x, p.y) for p in line.points], [(0.0, 0.0)] + xy, atol=1e-6)
            np.testing.assert_allclose([(p.x, p.y) for p in spheres.points], xy, atol=1e-6)
            assert (plan.instruction or "(no instruction)") in text.text  # the latched one comes late
            assert f"{plan.end_probability:.2f}" in text.text
            reasoning = by_ns["reasoning"]
            assert reasoning.type == Marker.TEXT_VIEW_FACING and reasoning.pose.position.z > 0.0
            if plan.reasoning:
                assert reasoning.action == Marker.ADD
                assert reasoning.text.replace("\n", " ").startswith(plan.reasoning.split()[0])
        assert INSTRUCTION in arrays[-1].markers[3].text
        # ---- stamped reasoning: the stamp of a published plan, the text of dsdrive/reasoning ----
        # (DDS does not order messages across topics: a text may arrive before its plan does)
        stamped = rig.h.got("/dsdrive/reasoning_stamped")
        assert rig.h.wait_for(lambda: {stamp_ns_of(r) for r in stamped} <= rig.path_stamps(), 10.0), \
            "reasoning for a frame set that no plan came from"
        plans = {stamp_ns_of(p): p for p in rig.plans()}
        texts = {m.data for m in rig.h.got("/dsdrive/reasoning")}
        for r in stamped:
            assert r.header.frame_id == "base_link" and r.text in texts and r.generation_ms > 0
            assert stamp_ns_of(r) < time_ns(r.generated_stamp)
        # ---- DrivingPlan.reasoning names its source frame: an earlier plan's stamp ----
        by_stamp = {stamp_ns_of(r): r.text for r in stamped}
        with_text = [p for p in plans.values() if p.reasoning]
        assert with_text, "no plan carried a reasoning text"
        for p in with_text:
            src = time_ns(p.reasoning_stamp)
            assert src < stamp_ns_of(p) and src in plans
            if src in by_stamp:
                assert by_stamp[src] == p.reasoning
        assert all(time_ns(p.reasoning_stamp) == 0 for p in plans.values() if not p.reasoning)

        # ---- debug image: the anchor frame the plan came from, drawn on ----
        images = rig.h.got("/dsdrive/debug_image")
        assert images and all(stamp_ns_of(im) in plans for im in images)
        assert images[-1].encoding == "rgb8" and images[-1].width >= 640
        assert len(images[-1].data) == images[-1].step * images[-1].height
    finally:
        node.stop()
        rig.close()


def test_stale_sets_and_implausible_plans_are_dropped_and_counted(model_dir: Path, tmp_path: Path) -> None:
    rig = DriveRig("dsdrive_guards_rig")
    node = NodeProcess(model_dir, tmp_path, ["max_frame_age_ms:=1000.0", "diagnostics_period_s:=0.25",
                                             "reasoning.enabled:=false", "stale_after_ms:=3000.0"])
    try:
        rig.wait_discovery(node)
        # ---- a set stamped 5 s ago (a paused replay, a stalled driver): dropped, counted ----
        # (sent until one is counted: the first best-effort frames after discovery may be lost)
        mark = rig.mark()
        old: set[int] = set()
        deadline = time.monotonic() + OUTPUT_TIMEOUT
        while time.monotonic() < deadline and int(rig.last_diag()[2].get("sets_too_old", "0")) < 1:
            old.add(rig.send_set(stamp_ns=time.time_ns() - 5 * 10**9))
            time.sleep(0.2)
        level, msg, values = rig.wait_diag(lambda lv, m, v: int(v.get("sets_too_old", "0")) >= 1,
                                           since=mark, timeout=5.0)
        assert int(values.get("sets_too_old", "0")) >= 1, (msg, values, node.log()[-3000:])
        assert level >= 1 and "older than max_frame_age_ms" in msg, (level, msg)
        assert not (old & rig.path_stamps()), "a set older than max_frame_age_ms was planned on"
        # fresh sets still plan; a plan after the dropped set says one set was skipped
        fresh = rig.serves(timeout=OUTPUT_TIMEOUT)
        assert fresh, node.log()[-3000:]
        first = lambda: [p for p in rig.plans() if stamp_ns_of(p) == fresh]  # noqa: E731
        assert rig.h.wait_for(lambda: bool(first()), 10.0)
        assert first()[0].frames_dropped >= 1

        # ---- drop_implausible_plans, switched on at run time with bounds no real path keeps ----
        _set_params(rig, drop_implausible_plans=True, plausibility__max_first_waypoint_m=0.0,
                    plausibility__max_speed_mps=0.0)
        mark = rig.mark()
        deadline = time.monotonic() + OUTPUT_TIMEOUT
        while time.monotonic() < deadline and int(rig.last_diag()[2].get("implausible_plans", "0")) < 1:
            rig.send_set()
            time.sleep(0.2)
        sent = set()  # planned after a plan was seen dropped: every one under the new bounds
        for _ in range(3):
            sent.add(rig.send_set())
            time.sleep(0.3)
        level, msg, values = rig.wait_diag(lambda lv, m, v: int(v.get("implausible_plans", "0")) >= 3,
                                           since=mark, timeout=30.0)
        assert int(values.get("implausible_plans", "0")) >= 3, (msg, values, node.log()[-3000:])
        assert level >= 1 and "implausible plans dropped" in msg, (level, msg)
        assert values.get("invalid_outputs") == "0", "implausible is not a model failure"
        time.sleep(1.0)
        assert not (sent & rig.path_stamps()), "an implausible plan was published"
        # ---- off again: plans flow ----
        _set_params(rig, drop_implausible_plans=False)
        assert rig.serves(timeout=OUTPUT_TIMEOUT), node.log()[-3000:]
        assert node.alive() and "Traceback" not in node.log(), node.log()[-3000:]
    finally:
        node.stop()
        rig.close()

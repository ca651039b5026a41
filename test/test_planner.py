"""The Planner's own seams, ROS-free: input checks (stamps, image sizes, instruction, odometry),
plan_next (frame age, reasoning text, drops), the reasoning hand-off, the timing hooks, plan_frames."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dsdrive_ros.frames.reduce import ReducedFrame
from dsdrive_ros.outputs.parse import PlanParseError
from dsdrive_ros.planner.inputs import MAX_INSTRUCTION_CHARS, PlannerLog
from dsdrive_ros.planner.planner import Planner
from dsdrive_ros.planner.types import FrameTiming
from test_node_core import CAMS, SPEC, FakeClock, FakeSession, _img

NOW_NS = 1_000_000_000_000  # the stamps' clock


class Lines:
    """PlannerLog sinks that keep the lines."""

    def __init__(self) -> None:
        self.info: list[str] = []
        self.warn: list[str] = []
        self.error: list[str] = []

    def log(self) -> PlannerLog:
        return PlannerLog(self.info.append, self.warn.append, self.error.append)


class TalkingSession(FakeSession):
    """Generates its text a decode step at a time, as PlannerSession.reason does."""

    def reason(self, raw, max_tokens=64, before_step=None):
        if before_step is not None:
            before_step()
        return "ok"


def _planner(lines: Lines, **kw) -> Planner:
    return Planner(SPEC, TalkingSession(), backend="fake", clock=FakeClock(), stamp_clock=lambda: NOW_NS,
                   log=lines.log(), **kw)


def _frame(h: int = 20, w: int = 30) -> ReducedFrame:
    return ReducedFrame(_img(), h, w, 0.5)


def test_on_image_checks_the_stamp_before_decoding_and_the_size_after() -> None:
    lines = Lines()
    p = _planner(lines)
    decoded: list[str] = []

    def decode() -> ReducedFrame:
        decoded.append("x")
        return _frame()

    assert not p.on_image("front", 0, decode)
    assert not p.on_image("front", NOW_NS + 2_000_000_000, decode)
    assert decoded == [], "a frame with a bad stamp is never decoded"
    assert p.counters.get("zero_stamps") == 1 and p.counters.get("future_stamps") == 1

    def bad() -> ReducedFrame:
        raise ValueError("truncated JPEG")

    assert not p.on_image("front", NOW_NS, bad)
    assert not p.on_image("left", NOW_NS, lambda: _frame(h=2))  # < 1/4 of the model's 16 px height
    assert not p.on_image("left", NOW_NS, lambda: _frame(w=9000))
    assert p.counters.get("decode_errors") == 3 and p.camera_errors["left"] == 2
    assert any("zero stamp" in w for w in lines.warn) and any("ahead of" in w for w in lines.warn)
    assert any("truncated JPEG" in w for w in lines.warn) and any("implausible" in w for w in lines.warn)
    done = [p.on_image(c, NOW_NS, _frame) for c in CAMS]
    assert done == [False, False, False, True]


def test_instruction_and_odometry_rules() -> None:
    lines = Lines()
    p = _planner(lines)
    p.on_instruction("bad \ufffd text")
    assert p.counters.get("bad_instruction") == 1 and p.instruction == ""
    p.on_instruction("x" * (MAX_INSTRUCTION_CHARS + 5))
    assert p.counters.get("long_instruction") == 1 and len(p.instruction) == MAX_INSTRUCTION_CHARS
    p.on_instruction("  turn left  ")
    assert p.instruction == "turn left" and lines.info[-1] == "instruction: 'turn left'"
    p.on_instruction("   ")
    assert p.counters.get("empty_instruction") == 1 and p.instruction == ""
    p.on_odom_velocity(3.0, 4.0)
    assert p.current_speed() == 5.0
    p.on_odom_velocity(float("nan"), 0.0)
    assert p.counters.get("bad_odom") == 1 and any("unusable speed" in w for w in lines.warn)


def test_plan_next_fills_frame_age_and_reasoning_and_explain_hands_off() -> None:
    lines = Lines()
    timings: list[FrameTiming] = []
    p = _planner(lines, frame_timer=timings.append)
    texts: list[tuple[str, int]] = []
    got = threading.Event()

    def on_text(text: str, stamp_ns: int, gen_ms: float) -> None:
        texts.append((text, stamp_ns))
        got.set()

    p.start_reasoning(on_text, max_rate_hz=0.0)
    try:
        stamp = NOW_NS - 30_000_000
        for c in CAMS:
            p.on_image(c, stamp, _frame)
        assert [t.camera for t in timings] == CAMS and timings[0].resize_ms == 0.5
        step = p.plan_next(0)
        assert step is not None and step.frames.stamp_ns == stamp
        assert step.output.frame_age_ms == pytest.approx(30.0) and step.output.reasoning == ""
        assert step.output.timings is not None and step.output.timings.ready_mono == 100.0
        p.explain(step)
        assert got.wait(5.0) and texts == [("ok", stamp)]
        for c in CAMS:
            p.on_image(c, stamp + 100_000_000, _frame)
        step = p.plan_next(0)
        assert step.output.reasoning == "ok" and step.output.reasoning_stamp_ns == stamp
        p.update("reasoning.enabled", False)
        for c in CAMS:
            p.on_image(c, stamp + 200_000_000, _frame)
        assert p.plan_next(0).output.reasoning == "", "no text while reasoning is off"
    finally:
        p.stop()


def test_plan_next_drops_what_it_cannot_plan() -> None:
    lines = Lines()
    p = _planner(lines, max_frame_age_ms=100.0)
    assert p.plan_next(0) is None  # nothing waits
    for c in CAMS:
        p.on_image(c, NOW_NS - 500_000_000, _frame)
    assert p.plan_next(0) is None and p.counters.get("sets_too_old") == 1
    p.session.fail = True
    for c in CAMS:
        p.on_image(c, NOW_NS, _frame)
    assert p.plan_next(0) is None and p.counters.get("inference_errors") == 1
    assert any("inference failed" in e for e in lines.error)


def test_plan_frames_runs_one_set_and_checks_the_output() -> None:
    p = _planner(Lines())
    out = p.plan_frames({c: _img() for c in CAMS}, "go", 2.0, stamp_ns=7)
    assert out.stamp_ns == 7 and out.waypoints.shape == (5, 2) and out.speed == 2.0
    p.session.next = {"waypoints": np.full((5, 2), np.nan), "end_prob": 0.1}
    with pytest.raises(PlanParseError):
        p.plan_frames({c: _img() for c in CAMS}, "go", 2.0)
    assert p.counters.get("plans") == 0, "plan_frames keeps no counters"

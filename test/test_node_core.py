"""The node's logic without DDS: the Planner (sync, keep-latest, parse), ReasoningWorker,
diagnostics levels, parameter table. Fake sessions; no rclpy except the descriptor test."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dsdrive_ros.planner.planner import Planner
from dsdrive_ros.planner.reasoning import LatestSlot, ReasoningWorker
from dsdrive_ros.runners.spec import ModelSpec
from dsdrive_ros.node.diagnostics import ERROR, OK, WARN, DiagnosticsState, evaluate
from dsdrive_ros.node.params import PARAMS, ConfigError, NodeConfig, check_cameras, validate_update
from dsdrive_ros.outputs.parse import ImplausiblePlan, PlanParseError, PlausibilityLimits

CAMS = ["front", "left", "right", "rear"]
SPEC = ModelSpec(Path("."), {
    "cameras": CAMS,
    "image": {"height": 16, "width": 24, "channel_order": "rgb", "mean": [0.5] * 3, "std": [0.25] * 3,
              "scale": 255.0},
    "waypoints": {"count": 5, "dt_s": 0.5, "frame_id": "base_link"},
    "end_threshold": 0.75,
})


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeSession:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls = []
        self.resets = 0
        self.delay = delay
        self.next: dict | None = None
        self.fail = False

    def reset(self) -> None:
        self.resets += 1

    def step(self, images, instruction, speed):
        assert images.shape == (1, 4, 3, 16, 24) and images.dtype == np.float32
        self.calls.append((instruction, speed))
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("CUDA error: out of memory")
        if self.next is not None:
            out, self.next = self.next, None
            return out
        return {"waypoints": np.cumsum(np.ones((5, 2), np.float32), axis=0), "end_prob": 0.1,
                "reasoner_kv": np.ones((2, 2, 1, 2, 4, 8), np.float32)}

    def reason(self, raw, max_tokens=64):
        return "ok"


def _img(v: int = 0) -> np.ndarray:
    return np.full((20, 30, 3), v, np.uint8)


def _send(core: Planner, stamp_ns: int) -> bool:
    done = False
    for cam in CAMS:
        done = core.on_frame(cam, stamp_ns, _img(stamp_ns % 250)) or done
    return done


def test_latest_slot():
    s: LatestSlot[int] = LatestSlot()
    assert s.get(0.01) is None
    assert s.put(1) is False and s.put(2) is True
    assert s.get(0) == 2 and s.get(0) is None
    s.close()
    assert s.get(5.0) is None  # returns at once when closed


def test_core_plans_one_set():
    clock = FakeClock()
    sess = FakeSession()
    core = Planner(SPEC, sess, backend="fake", clock=clock)
    assert core.set_instruction("turn left") is True
    assert core.set_speed(4.0)
    assert _send(core, 1_000_000_000)
    pending = core.next_set(0)
    out, raw, _ = core.plan(pending)
    assert out.stamp_ns == 1_000_000_000 and out.frame_id == "base_link"
    assert out.waypoints.shape == (5, 2) and out.backend == "fake"
    assert out.instruction == "turn left" and out.speed == 4.0
    assert sess.calls == [("turn left", 4.0)]
    assert core.counters.get("plans") == 1 and core.latency.count == 1


def test_core_times_each_stage():
    clock = FakeClock()
    core = Planner(SPEC, FakeSession(), clock=clock)
    assert _send(core, 1_000_000_000)
    clock.t += 0.004  # the set waits 4 ms in the keep-latest slot
    out = core.plan(core.next_set(0)).output
    stages = out.timings.stages_ms()
    assert set(stages) == {"queue_wait", "preprocess", "inference", "parse"}
    assert stages["queue_wait"] == pytest.approx(4.0)
    snap = core.snapshot()
    assert snap.stages_p50_ms["queue_wait"] == pytest.approx(4.0)
    assert set(snap.stages_p99_ms) == set(stages)


def test_core_keep_latest_drops_and_counts():
    core = Planner(SPEC, FakeSession(), clock=FakeClock())
    for i in range(3):  # three complete sets while the planner is busy
        assert _send(core, (i + 1) * 100_000_000)
    pending = core.next_set(0)
    assert pending.frameset.stamp_ns == 300_000_000, "planner must get the NEWEST set"
    out = core.plan(pending).output
    assert out.frames_dropped == 2
    assert core.counters.get("sets_dropped") == 2
    assert core.next_set(0) is None, "no stale set left queued"
    _send(core, 400_000_000)
    out = core.plan(core.next_set(0)).output
    assert out.frames_dropped == 0  # per plan, not cumulative


def test_core_planner_idle_only_when_no_set_waits_or_plans():
    sess = FakeSession()
    core = Planner(SPEC, sess, clock=FakeClock())
    assert core.planner_idle.is_set()
    core.on_frame("front", 1, _img())
    assert core.planner_idle.is_set(), "an incomplete set is no work yet"
    assert _send(core, 1)
    assert not core.planner_idle.is_set()
    pending = core.next_set(0)
    _send(core, 2)  # a newer set arrives while the first is planned: still busy afterwards
    core.plan(pending)
    assert not core.planner_idle.is_set()
    sess.fail = True  # a failing plan frees the CPU as well
    with pytest.raises(RuntimeError):
        core.plan(core.next_set(0))
    assert core.planner_idle.is_set()
    _send(core, 3)
    core.reset_inputs()
    assert core.planner_idle.is_set()


def test_generate_runs_before_step_before_every_token():
    from dsdrive_ros.runners.generate import generate

    class CountingRunner:
        def decode(self, ids, past):
            logits = np.zeros((1, 1, 8), np.float32)
            logits[0, -1, 3] = 1.0  # never eos (7): runs to max_tokens
            return logits, past

    calls = []
    ids = generate(CountingRunner(), np.zeros((2, 2, 1, 2, 1, 4), np.float32), 0, 7, 5,
                   before_step=lambda: calls.append(1))
    assert ids == [3] * 5 and len(calls) == 5


def test_core_invalid_output_and_failure_are_counted():
    sess = FakeSession()
    core = Planner(SPEC, sess, clock=FakeClock())
    _send(core, 1)
    sess.next = {"waypoints": np.full((5, 2), np.nan, np.float32), "end_prob": 0.2}
    with pytest.raises(PlanParseError):
        core.plan(core.next_set(0))
    assert core.counters.get("invalid_outputs") == 1 and core.consecutive_failures == 1
    _send(core, 2)
    sess.fail = True
    with pytest.raises(RuntimeError):
        core.plan(core.next_set(0))
    assert core.counters.get("inference_errors") == 1 and "out of memory" in core.last_error
    sess.fail = False
    _send(core, 3)
    core.plan(core.next_set(0))
    assert core.consecutive_failures == 0


def test_core_drops_sets_older_than_max_frame_age():
    core = Planner(SPEC, FakeSession(), clock=FakeClock(), max_frame_age_ms=200.0)
    now_ns = 50 * 10**9
    _send(core, now_ns - 150_000_000)
    fresh = core.next_set(0)
    assert core.too_old(fresh, now_ns) is None
    _send(core, now_ns - 100_000_000)  # completes a newer set: the planning thread takes that one
    assert core.too_old(core.next_set(0), now_ns + 300_000_000) == pytest.approx(400.0)
    assert core.counters.get("sets_too_old") == 1 and core.planner_idle.is_set()
    assert core.too_old(fresh, 0) is None, "no clock yet (sim time before /clock): never dropped"
    out = core.plan(fresh).output
    assert out.frames_dropped == 1, "a set dropped as too old counts as skipped in the next plan"
    core.set_limits(max_frame_age_ms=0.0)  # off
    _send(core, 1)
    assert core.too_old(core.next_set(0), now_ns) is None and core.counters.get("sets_too_old") == 1


def test_core_drops_implausible_plans_when_enabled():
    sess = FakeSession()  # plans (1,1), (2,2), ... (5,5): first waypoint 1.41 m, 2.83 m/s
    core = Planner(SPEC, sess, clock=FakeClock(),
                        plausibility=PlausibilityLimits(max_first_waypoint_m=1.0, max_speed_mps=2.0))
    _send(core, 1)
    core.plan(core.next_set(0))  # off by default: published whatever the bounds
    core.set_plausibility(drop=True)
    _send(core, 2)
    with pytest.raises(ImplausiblePlan, match="first waypoint 1.4 m"):
        core.plan(core.next_set(0))
    core.set_plausibility(max_first_waypoint_m=2.0)
    _send(core, 3)
    with pytest.raises(ImplausiblePlan, match="imply 2.8 m/s"):
        core.plan(core.next_set(0))
    assert core.counters.get("implausible_plans") == 2 and core.counters.get("plans") == 1
    assert core.consecutive_failures == 0 and core.counters.get("invalid_outputs") == 0
    core.set_plausibility(max_speed_mps=3.0)
    _send(core, 4)
    core.plan(core.next_set(0))
    assert core.counters.get("plans") == 2
    st = evaluate(core.snapshot(), 1e9, DiagnosticsState())[0]
    assert st.values["implausible_plans"] == "2" and "implausible plans dropped: 2" in st.message


def test_core_speed_odom_validation_and_staleness():
    clock = FakeClock()
    core = Planner(SPEC, FakeSession(), clock=clock, stale_after_ms=500)
    assert not core.set_speed(float("nan")) and not core.set_speed(float("inf"))
    assert core.counters.get("bad_odom") == 2
    assert core.current_speed() is None
    core.set_speed(3.0)
    assert core.current_speed() == 3.0
    clock.t += 1.0
    assert core.current_speed() is None  # stale odometry -> unknown (the planner gets 0)


def test_core_time_jump_resets_history():
    sess = FakeSession()
    core = Planner(SPEC, sess, clock=FakeClock())
    _send(core, 10_000_000_000)
    core.plan(core.next_set(0))
    _send(core, 1_000_000_000)  # bag loop: 9 s back
    core.plan(core.next_set(0))
    assert sess.resets >= 1 and core.counters.get("resets") >= 1


def test_core_counts_history_resets_by_the_end_of_instruction_probability():
    sess = FakeSession()
    sess.end_resets = 0
    core = Planner(SPEC, sess, clock=FakeClock())

    def ending_step(images, instruction, speed):  # as PlannerSession.step past end_threshold
        sess.end_resets += 1
        return FakeSession.step(sess, images, instruction, speed)

    for i, step in enumerate((sess.step, ending_step, sess.step)):
        sess.step = step
        _send(core, (i + 1) * 100_000_000)
        core.plan(core.next_set(0))
    assert core.counters.get("end_resets") == 1 and core.counters.get("resets") == 0
    values = evaluate(core.snapshot(), 1e9, DiagnosticsState())[0].values
    assert values["end_of_instruction_resets"] == "1" and values["history_resets"] == "0"


def test_core_bad_frames_counted_per_camera():
    core = Planner(SPEC, FakeSession(), clock=FakeClock())
    core.on_bad_frame("left", "data length 5 != step*height")
    core.on_bad_frame("left", "x")
    assert core.counters.get("decode_errors") == 2 and core.camera_errors["left"] == 2
    assert core.on_frame("nope", 1, _img()) is False and core.counters.get("unknown_camera") == 1


def test_reasoning_worker_latest_only_and_rate_limited():
    seen = []
    started = threading.Event()

    def generate(raw, max_tokens):
        started.set()
        time.sleep(0.2)
        return f"text {int(raw['reasoner_kv'].sum())}"

    done = threading.Event()

    def on_text(text, stamp, ms):
        seen.append((text, stamp))
        done.set()

    w = ReasoningWorker(generate, on_text, max_rate_hz=0.0).start()
    try:
        w.submit({"reasoner_kv": np.ones(1)}, 1)
        assert started.wait(5)
        for i in range(2, 6):  # submitted while generating: only the last survives
            w.submit({"reasoner_kv": np.full(1, i)}, i)
        deadline = time.time() + 5
        while len(seen) < 2 and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert seen == [("text 1", 1), ("text 5", 5)]
        assert w.counters.get("skipped") == 3
        assert (w.last.text, w.last.stamp_ns) == ("text 5", 5) and w.last.gen_ms > 0
    finally:
        w.stop()


def test_reasoning_worker_does_not_block_submit_and_copies_kv():
    gate = threading.Event()
    got = []

    def generate(raw, max_tokens):
        gate.wait(5)
        return str(raw["reasoner_kv"][0])

    w = ReasoningWorker(generate, lambda t, s, ms: got.append(t), max_rate_hz=100.0).start()
    try:
        kv = np.zeros(2)
        t0 = time.monotonic()
        for _ in range(50):
            w.submit({"reasoner_kv": kv}, 1)  # the planning thread: must never wait
        assert time.monotonic() - t0 < 1.0
        kv[0] = 7.0  # a runner reusing its output buffer must not change the queued request
        gate.set()
        deadline = time.time() + 5
        while not got and time.time() < deadline:
            time.sleep(0.02)
        assert got and got[0] == "0.0"
    finally:
        w.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_reasoning_worker_runs_at_lower_priority():
    seen = []

    def generate(raw, max_tokens):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return "t"

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    w = ReasoningWorker(generate, lambda *a: None, max_rate_hz=0.0, nice=5).start()
    try:
        w.submit({"reasoner_kv": np.zeros(1)}, 1)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen and seen[0] == min(19, before + 5)
        # only the worker thread: the caller (the planning/executor side) keeps its priority
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    finally:
        w.stop()


def test_reasoning_worker_rate_limit():
    calls = []
    w = ReasoningWorker(lambda raw, n: calls.append(time.monotonic()) or "t", lambda *a: None,
                        max_rate_hz=5.0).start()
    try:
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            w.submit({"reasoner_kv": np.zeros(1)}, 1)
            time.sleep(0.01)
        time.sleep(0.1)
        assert 2 <= len(calls) <= 7  # ~5 per second, not ~100
        gaps = np.diff(calls)
        assert np.all(gaps >= 0.19)
    finally:
        w.stop()


# ---- diagnostics ----

def test_diagnostics_levels():
    clock = FakeClock()
    core = Planner(SPEC, FakeSession(), backend="fake", clock=clock, stale_after_ms=500)
    state = DiagnosticsState()
    # nothing yet, but within stale_after: cameras missing -> WARN
    st = evaluate(core.snapshot(), 500, state)
    assert st[0].level == WARN and "stale camera" in st[0].message
    # no plan for longer than stale_after -> ERROR
    clock.t += 1.0
    st = evaluate(core.snapshot(), 500, state)
    assert st[0].level == ERROR and "no plan yet" in st[0].message
    # frames at 10 Hz and plans: OK
    for i in range(10):
        clock.t += 0.1
        _send(core, (i + 1) * 100_000_000)
        core.plan(core.next_set(0))
    st = evaluate(core.snapshot(), 500, state)
    assert st[0].level == OK, st[0].message
    assert st[0].values["plans"] == "10" and st[0].values["backend"] == "fake"
    assert {s.name for s in st} >= {f"dsdrive_node: camera {c}" for c in CAMS}
    # a bad frame -> WARN for one report, counted forever
    core.on_bad_frame("rear", "truncated JPEG")
    st = evaluate(core.snapshot(), 500, state)
    assert st[0].level == WARN and "decode_errors" in st[0].message
    cam = next(s for s in st if s.name == "dsdrive_node: camera rear")
    assert cam.level == WARN and cam.values["decode_errors"] == "1"
    st = evaluate(core.snapshot(), 500, state)
    assert st[0].level == OK and st[0].values["decode_errors"] == "1"
    # planning slower than the frame period -> WARN
    for _ in range(50):
        core.latency.add(250.0)
    st = evaluate(core.snapshot(), 500, state)
    assert st[0].level == WARN and "slower" in st[0].message
    # cameras go silent -> stale (WARN) and no plan (ERROR)
    clock.t += 2.0
    st = evaluate(core.snapshot(), 500, state)
    assert st[0].level == ERROR and "stale camera" in st[0].message and "no plan" in st[0].message
    # model failure -> ERROR
    assert evaluate(core.snapshot(), 500, state, fatal="model failed to load")[0].level == ERROR


# ---- parameters ----

def test_node_config_validation():
    cfg = NodeConfig.from_dict({"model_dir": "/m", "reasoning.max_tokens": 10, "qos.depth": 3})
    assert cfg.reasoning_max_tokens == 10 and cfg.qos_depth == 3 and cfg.anchor == "front"
    with pytest.raises(ConfigError, match="model_dir"):
        NodeConfig.from_dict({})
    with pytest.raises(ConfigError, match="backend"):
        NodeConfig.from_dict({"model_dir": "/m", "backend": "tflite"})
    with pytest.raises(ConfigError, match="image_transport"):
        NodeConfig.from_dict({"model_dir": "/m", "image_transport": "theora"})
    with pytest.raises(ConfigError, match="unknown parameter"):
        NodeConfig.from_dict({"model_dir": "/m", "frobnicate": 1})
    with pytest.raises(ConfigError, match="anchor_camera"):
        NodeConfig.from_dict({"model_dir": "/m", "anchor_camera": "roof"})
    cfg = NodeConfig.from_dict({"model_dir": "/m", "plausibility.max_speed_mps": 30.0})
    assert cfg.plausibility == PlausibilityLimits(max_first_waypoint_m=20.0, max_speed_mps=30.0)
    with pytest.raises(ConfigError, match="max_frame_age_ms"):
        NodeConfig.from_dict({"model_dir": "/m", "max_frame_age_ms": -1.0})


def test_check_cameras():
    assert check_cameras([], CAMS) == CAMS
    assert check_cameras(CAMS, CAMS) == CAMS
    with pytest.raises(ConfigError, match="different order"):
        check_cameras(["left", "front", "right", "rear"], CAMS)
    with pytest.raises(ConfigError, match=r"missing \['rear'\]"):
        check_cameras(["front", "left", "right"], CAMS)


def test_validate_update():
    assert validate_update("model_dir", "/x") is not None  # read-only
    assert validate_update("max_camera_skew_ms", 20.0) is None
    assert validate_update("use_sim_time", True) is None  # not ours


def test_params_yaml_matches_table(repo_root):
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((repo_root / "config" / "dsdrive.params.yaml").read_text())
    params = doc["dsdrive_node"]["ros__parameters"]

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    values = dict(flat(params))
    assert set(values) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert type(values[p.name]) is type(p.default), f"{p.name}: yaml {values[p.name]!r} vs {p.default!r}"
        assert values[p.name] == p.default, p.name


@pytest.mark.ros
def test_parameters_declared_with_descriptors():
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context

    from dsdrive_ros.node.params import declare_parameters, load_config

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("param_test", context=ctx, parameter_overrides=[
            rclpy.parameter.Parameter("model_dir", value="/models/x")], start_parameter_services=False)
        declare_parameters(node)
        cfg = load_config(node)
        assert cfg.model_dir == "/models/x" and cfg.cameras == CAMS
        d = node.describe_parameter("max_camera_skew_ms")
        assert d.description and d.floating_point_range[0].to_value == pytest.approx(2000.0)
        assert node.describe_parameter("model_dir").read_only
        assert node.describe_parameter("reasoning.max_tokens").integer_range[0].from_value == 1
        # out of range is refused by rclpy itself
        res = node.set_parameters([rclpy.parameter.Parameter("reasoning.max_tokens", value=0)])
        assert not res[0].successful
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


@pytest.mark.ros
@pytest.mark.parametrize("kind", ["plain", "lifecycle"])
def test_node_that_fails_to_start_is_destroyed_before_the_error_leaves(kind: str):
    """A bad startup parameter raises ConfigError with the half-built node already destroyed (its
    DDS entities freed in order), not left for a GC pass after rclpy shutdown."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context
    from rclpy.exceptions import InvalidHandle

    from dsdrive_ros.node.dsdrive_node import DSDriveNode
    from dsdrive_ros.node.lifecycle_node import DSDriveLifecycleNode

    base = {"plain": DSDriveNode, "lifecycle": DSDriveLifecycleNode}[kind]
    made: list = []

    class Probe(base):  # keeps a handle on the node the failing constructor built
        def _planner_init(self) -> None:
            made.append(self)
            super()._planner_init()

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        with pytest.raises(ConfigError, match=r"reasoning\.max_tokens"):
            Probe(context=ctx, parameter_overrides=[
                rclpy.parameter.Parameter("model_dir", value="/models/x"),
                rclpy.parameter.Parameter("reasoning.max_tokens", value=5000)])
        [node] = made
        assert not list(node.publishers) and not list(node.services)
        with pytest.raises(InvalidHandle):
            node.get_fully_qualified_name()
    finally:
        rclpy.try_shutdown(context=ctx)


# ---- robustness additions (see test_faults.py for the same over DDS) ----

def test_diagnostics_robustness_counters():
    clock = FakeClock()
    core = Planner(SPEC, FakeSession(), backend="fake", clock=clock, stale_after_ms=500)
    state = DiagnosticsState()
    for i in range(5):
        clock.t += 0.1
        _send(core, (i + 1) * 100_000_000)
        core.plan(core.next_set(0))
    assert evaluate(core.snapshot(), 500, state)[0].level == OK
    core.counters.inc("future_stamps", 4)
    core.counters.inc("zero_stamps")
    st = evaluate(core.snapshot(), 500, state)[0]
    assert st.level == WARN and "4 future_stamps" in st.message and "1 zero_stamps" in st.message
    core.counters.inc("qos_incompatible")
    core.counters.inc("empty_instruction")
    core.counters.inc("transport_lost", 3)
    st = evaluate(core.snapshot(), 500, state, {"qos_incompatible_last": "instruction: RELIABILITY"})[0]
    assert st.level == WARN
    assert "incompatible QoS: 1 endpoint(s) (instruction: RELIABILITY)" in st.message
    assert "empty instruction" in st.message and "never reached the node (transport or queue): 3" in st.message
    assert st.values["qos_incompatible"] == "1" and st.values["transport_lost"] == "3"
    core.set_instruction("x" * 5000)
    st = evaluate(core.snapshot(), 500, state)[0]
    assert st.level == OK and len(st.values["instruction"]) < 250  # counted once, text clipped


def test_reset_inputs_discards_held_frames_and_waiting_set():
    clock = FakeClock()
    core = Planner(SPEC, FakeSession(), clock=clock)
    assert _send(core, 100_000_000)
    core.on_frame("front", 200_000_000, _img())  # held, waiting for the others
    core.reset_inputs()
    assert core.next_set(0) is None
    assert core.counters.get("sets_dropped") == 1
    for cam in CAMS[1:]:  # the others alone cannot complete the discarded anchor's set
        assert core.on_frame(cam, 200_000_000, _img()) is False
    assert _send(core, 300_000_000)
    out = core.plan(core.next_set(0)).output
    assert out.frames_dropped == 1


def test_log_throttle():
    from dsdrive_ros.planner.inputs import LogThrottle

    clock = FakeClock()
    t = LogThrottle(period_s=2.0, max_keys=3, clock=clock)
    assert t("a") == 0 and t("a") is None and t("a") is None and t("b") == 0
    clock.t += 2.5
    assert t("a") == 2  # two suppressed since the last line
    for k in "cdef":
        t(k)
    assert t("a") == 0  # bounded: the table was reset, not grown


def test_parameter_updates_refuse_non_finite():
    assert "finite" in validate_update("max_camera_skew_ms", float("nan"))
    assert "finite" in validate_update("reasoning.max_rate_hz", float("inf"))
    assert validate_update("max_camera_skew_ms", 80.0) is None

"""Simulated time: `dsdrive-replay --clock` and the node under use_sim_time.

What "sensible" means here (node/diagnostics.py):
- frame_age_ms is the node's ROS clock (sim time) minus the frame's stamp: a paused clock does not
  age a frame, half speed halves the age of a frame that waits the same wall time;
- camera / plan ages in /diagnostics are steady-clock: they watch the data flow, /diagnostics keeps
  coming when /clock stops; at half speed a 10 Hz camera still arrives every 200 ms, so nothing is
  stale;
- "no plan" is an ERROR only when the plan is overdue in sim time too: while /clock stands still
  (paused, ended, not yet started) or crawls, it is a WARN that says so ("/clock paused or slow");
  with the clock running and no input it stays an ERROR.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dsdrive_ros.planner.planner import Planner
from dsdrive_ros.node.diagnostics import ERROR, WARN, SimSincePlan, evaluate
from dsdrive_ros.replay.clock import PlaybackClock


class FakeMono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# ---- ROS-free ----

def test_playback_clock_runs_at_rate_and_never_passes_the_next_message() -> None:
    mono = FakeMono()
    clock = PlaybackClock(0.5, monotonic=mono)
    assert clock.now_ns() is None
    clock.hold(1_000_000_000)  # standing at the first message until it is published
    mono.t += 3.0
    assert clock.now_ns() == 1_000_000_000
    assert clock.reach(1_000_000_000) == 1_000_000_000
    clock.hold(2_000_000_000)  # next message 1 s of bag time later: 2 s of wall time at half speed
    mono.t += 1.0
    assert clock.now_ns() == 1_500_000_000
    mono.t += 5.0  # the player fell behind: the clock waits at the message it has not published
    assert clock.now_ns() == 2_000_000_000
    assert clock.reach(2_000_000_000) == 2_000_000_000
    clock.hold(1_500_000_000)  # an older message (other topic) never moves the clock back
    assert clock.reach(1_500_000_000) == 2_000_000_000


def test_playback_clock_rate_zero_steps_with_the_messages() -> None:
    mono = FakeMono()
    clock = PlaybackClock(0.0, monotonic=mono)
    clock.hold(5)
    clock.reach(5)
    clock.hold(50)
    mono.t += 10.0
    assert clock.now_ns() == 5  # stands while the node works
    assert clock.reach(50) == 50


def test_paused_clock_turns_no_plan_into_a_warning_only() -> None:
    from test_node_core import SPEC, FakeClock, FakeSession

    sim = SimSincePlan()
    assert sim.update(0, 0) == 0.0  # no /clock yet
    assert sim.update(0, 5 * 10**9) == 0.0
    assert sim.update(0, 7 * 10**9) == 2.0
    assert sim.update(1, 8 * 10**9) == 0.0  # a plan: measured from here

    clock = FakeClock()
    core = Planner(SPEC, FakeSession(), backend="fake", clock=clock, stale_after_ms=500)
    clock.t += 2.0
    running = evaluate(core.snapshot(), 500.0)[0]
    assert running.level == ERROR and "no plan yet for 2.0 s" in running.message
    paused = evaluate(core.snapshot(), 500.0, sim_since_plan_s=0.2)[0]
    assert paused.level == WARN and "sim time 0.2 s (/clock paused or slow)" in paused.message, paused.message
    assert "stale camera(s)" in paused.message
    overdue = evaluate(core.snapshot(), 500.0, sim_since_plan_s=0.6)[0]  # overdue in sim time too
    assert overdue.level == ERROR
    failed = evaluate(core.snapshot(), 500.0, fatal="model failed to load", sim_since_plan_s=0.0)[0]
    assert failed.level == ERROR and "model failed" in failed.message  # a pause hides no failure


# ---- over DDS, the real node ----

pytest_ros = pytest.mark.ros


@pytest_ros
@pytest.mark.slow
def test_replay_clock_half_speed(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build)")
    from test_replay import START_NS, _read_outputs, _run_replay, _stamp, write_raw_bag

    bag = tmp_path / "bag"
    stamps = write_raw_bag(bag, n=20, rate_hz=10.0)  # stamps = record times, 2025 (wall age: years)
    out = tmp_path / "out"
    res = _run_replay(bag, model_dir, out, "--rate", "0.5", "--clock", "-p", "reasoning.enabled:=false")
    log = (out / "node.log").read_text() if (out / "node.log").exists() else ""
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{log[-3000:]}"
    summary = json.loads((out / "replay.json").read_text())
    assert summary["clock_messages"] > 20 and "use_sim_time:=true" in summary["node_command"]

    outs = _read_outputs(out)
    plans = [m for _, m in outs["/dsdrive/plan"]]
    assert len(plans) >= 10, (len(plans), res.stdout)
    # sim time: the age is the wait in the node at half speed, not years; the node's wall-time
    # latency (send -> Path received) bounds it: half of it, plus one clock step and DDS order
    max_e2e = max(summary["end_to_end_ms"])
    ages = [p.frame_age_ms for p in plans]
    assert all(-50.0 < a < 0.5 * max_e2e + 50.0 for a in ages), (ages, max_e2e)
    # the outputs bag is on the bag's timeline
    times = [t for t, _ in outs["/dsdrive/path"]]
    assert all(stamps[0] <= t <= stamps[-1] + 10**6 for t in times), (times, stamps[0], stamps[-1])
    assert START_NS == stamps[0]

    planner = []  # (sim stamp, level, message, values)
    for _, arr in outs["/diagnostics"]:
        for st in arr.status:
            if st.name == "dsdrive_node: planner":
                planner.append((_stamp(arr), st.level[0] if isinstance(st.level, bytes) else int(st.level),
                                st.message, {kv.key: kv.value for kv in st.values}))
    after_first = [s for s in planner if int(s[3]["plans"]) >= 1]
    assert after_first, planner
    # once planning, never an ERROR: at half speed nothing is late, and the clock standing still
    # after the bag's end (the drain) is a WARN that says why
    assert all(level < ERROR for _, level, _, _ in after_first), after_first
    running = [s for s in after_first if s[0] < stamps[-1]]  # the bag still playing
    assert running and not any(s[3]["stale_cameras"] for s in running), running
    assert any("/clock paused or slow" in m for _, _, m, _ in after_first), after_first


@pytest_ros
@pytest.mark.slow
def test_node_under_paused_and_running_sim_clock(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build)")
    from rosgraph_msgs.msg import Clock

    from ros_harness import DriveRig, NodeProcess, stamp_ns_of

    rig = DriveRig("sim_time_rig")
    clock_pub = rig.h.node.create_publisher(Clock, "/clock", 1)
    sim = {"t": 1_735_689_600 * 10**9}  # 2025: a wall-clock frame age would be a year and more

    def set_clock(t_ns: int) -> None:
        sim["t"] = t_ns
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(t_ns, 10**9)
        clock_pub.publish(msg)

    def drive(seconds: float, frames: bool = True) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            set_clock(sim["t"] + 100_000_000)
            if frames:
                rig.send_set(stamp_ns=sim["t"])
            time.sleep(0.1)

    node = NodeProcess(model_dir, tmp_path, ["use_sim_time:=true", "reasoning.enabled:=false"])
    try:
        rig.wait_discovery(node)
        set_clock(sim["t"])
        drive(1.5)
        assert rig.paths(), f"no Path under sim time:\n{node.log()[-3000:]}"
        ages = [p.frame_age_ms for p in rig.plans()]
        assert all(-150.0 < a < 2000.0 for a in ages), ages  # sim time, not a year

        # paused: clock and frames stop. /diagnostics keeps coming (steady timer) and says why
        mark = rig.mark()
        time.sleep(2.5)
        reports = rig.diags()[mark:]
        assert len(reports) >= 2, len(reports)
        level, message, values = rig.last_diag()
        assert level == WARN and "/clock paused or slow" in message, (level, message)
        assert values["stale_cameras"] == "front,left,right,rear", values

        # a set arriving while the clock stands at t + 0.4 s, stamped t + 0.1 s: 300 ms old, however
        # long it waits in wall time
        t = sim["t"]
        set_clock(t + 400_000_000)
        time.sleep(0.3)
        stamp = rig.send_set(stamp_ns=t + 100_000_000)
        assert rig.h.wait_for(lambda: stamp in {stamp_ns_of(p) for p in rig.plans()}, 20.0), node.log()[-3000:]
        (plan,) = [p for p in rig.plans() if stamp_ns_of(p) == stamp]
        assert 299.0 <= plan.frame_age_ms <= 301.0, plan.frame_age_ms

        # the clock runs again without input: that is an ERROR (input missing, not a pause)
        mark = rig.mark()
        drive(2.0, frames=False)
        level, message, _ = rig.wait_diag(lambda lv, m, v: lv == ERROR, since=mark, timeout=5.0)
        assert level == ERROR and "no plan for" in message and "paused" not in message, message

        # and with input again: no longer stale nor paused
        mark = rig.mark()
        drive(2.5)
        level, message, values = rig.wait_diag(lambda lv, m, v: "no plan" not in m and not v["stale_cameras"],
                                               since=mark, timeout=5.0)
        assert "no plan" not in message and not values["stale_cameras"], (level, message)
    finally:
        node.stop()
        rig.close()

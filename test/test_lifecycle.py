"""dsdrive_lifecycle_node: the managed node driven through its lifecycle services over real DDS.

No Path before activate, Paths while active, none after deactivate; reactivation, cleanup and a
second configure (model loaded again), shutdown, and a configure that fails (missing model) and
leaves the node unconfigured with a clear log line.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rclpy.lifecycle")
pytest.importorskip("lifecycle_msgs")
pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build; . scripts/ros_env.sh)")

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

from ros_harness import DriveRig, NodeProcess  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MODULE = "dsdrive_ros.node.lifecycle_node"
PARAMS = ["diagnostics_period_s:=0.25", "reasoning.max_tokens:=8"]


class Lifecycle:
    def __init__(self, rig: DriveRig, node_name: str) -> None:
        self.rig = rig
        self.change = rig.h.node.create_client(ChangeState, f"/{node_name}/change_state")
        self.get = rig.h.node.create_client(GetState, f"/{node_name}/get_state")

    def wait(self, timeout: float = 90.0) -> None:
        assert self.change.wait_for_service(timeout_sec=timeout), "no change_state service"
        assert self.get.wait_for_service(timeout_sec=10.0), "no get_state service"

    def _call(self, client, req, timeout: float = 90.0):
        fut = client.call_async(req)
        assert self.rig.h.wait_for(fut.done, timeout), "service call timed out"
        return fut.result()

    def transition(self, tid: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=tid))).success

    def state(self) -> int:
        return self._call(self.get, GetState.Request()).current_state.id


def _no_paths_while_sending(rig: DriveRig, seconds: float = 1.0) -> None:
    before = len(rig.paths())
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        rig.send_set()
        time.sleep(0.1)
    time.sleep(0.3)
    assert len(rig.paths()) == before, "a Path was published while not active"


def test_lifecycle_transitions(model_dir: Path, tmp_path: Path) -> None:
    rig = DriveRig("lifecycle_rig")
    node = NodeProcess(model_dir, tmp_path, PARAMS, module=MODULE)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = NodeProcess(tmp_path / "no_model", bad_dir, PARAMS, module=MODULE,
                      ros_args=["-r", "__node:=dsdrive_bad"])
    lc, lc_bad = Lifecycle(rig, "dsdrive_node"), Lifecycle(rig, "dsdrive_bad")
    try:
        lc.wait()
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert all(p.get_subscription_count() == 0 for p in rig.cams.values())
        _no_paths_while_sending(rig, 0.5)

        # configure: model loaded, publishers exist but are inactive, no subscriptions yet
        t0 = time.monotonic()
        assert lc.transition(Transition.TRANSITION_CONFIGURE), node.log()[-3000:]
        configure_s = time.monotonic() - t0
        assert lc.state() == State.PRIMARY_STATE_INACTIVE
        assert "loaded in" in node.log()
        assert rig.h.wait_for(lambda: rig.path_sub.get_publisher_count() > 0, 10.0)
        assert all(p.get_subscription_count() == 0 for p in rig.cams.values())
        _no_paths_while_sending(rig, 0.5)
        level, msg, _ = rig.wait_diag(lambda lv, m, v: m.startswith("inactive"))
        assert level == 0 and msg.startswith("inactive"), (level, msg)

        # activate: Paths
        assert lc.transition(Transition.TRANSITION_ACTIVATE), node.log()[-3000:]
        assert lc.state() == State.PRIMARY_STATE_ACTIVE
        rig.wait_discovery(node, 20.0)
        assert rig.serves(), node.log()[-3000:]
        level, msg, values = rig.wait_diag(
            lambda lv, m, v: not m.startswith("inactive") and int(v.get("plans", "0")) >= 1)
        assert not msg.startswith("inactive") and int(values.get("plans", "0")) >= 1, (level, msg, values)

        # deactivate: nothing published, subscriptions gone
        assert lc.transition(Transition.TRANSITION_DEACTIVATE), node.log()[-3000:]
        assert lc.state() == State.PRIMARY_STATE_INACTIVE
        time.sleep(0.5)  # a Path planned before the transition may still be on its way
        assert rig.h.wait_for(lambda: all(p.get_subscription_count() == 0 for p in rig.cams.values()), 10.0)
        _no_paths_while_sending(rig, 1.0)
        level, msg, _ = rig.wait_diag(lambda lv, m, v: m.startswith("inactive"))
        assert msg.startswith("inactive"), (level, msg)

        # activate again: Paths again
        assert lc.transition(Transition.TRANSITION_ACTIVATE)
        rig.wait_discovery(node, 20.0)
        assert rig.serves(), node.log()[-3000:]

        # deactivate + cleanup: unconfigured, model dropped; configure + activate again
        assert lc.transition(Transition.TRANSITION_DEACTIVATE)
        assert lc.transition(Transition.TRANSITION_CLEANUP), node.log()[-3000:]
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert rig.h.wait_for(lambda: rig.path_sub.get_publisher_count() == 0, 10.0), "publishers not destroyed"
        assert lc.transition(Transition.TRANSITION_CONFIGURE), node.log()[-3000:]
        assert lc.transition(Transition.TRANSITION_ACTIVATE)
        rig.wait_discovery(node, 20.0)
        assert rig.serves(), node.log()[-3000:]

        # a configure that fails (no model): FAILURE, stays unconfigured, says why
        lc_bad.wait()
        assert not lc_bad.transition(Transition.TRANSITION_CONFIGURE)
        assert lc_bad.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert bad.alive()
        assert "configure failed: ModelSpecError: model_dir" in bad.log() and "no_model" in bad.log()

        # shutdown from active: finalized, nothing published; the process then exits on SIGINT
        assert lc.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN), node.log()[-3000:]
        assert lc.state() == State.PRIMARY_STATE_FINALIZED
        _no_paths_while_sending(rig, 0.5)
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGINT)
        rc = node.proc.wait(5.0)
        assert rc == 0 and time.monotonic() - t0 < 2.0, node.log()[-3000:]
        assert "Traceback" not in node.log() and "Traceback" not in bad.log(), node.log()[-3000:]
        print(f"configure (model load) took {configure_s:.2f} s")
    finally:
        node.stop()
        bad.stop()
        rig.close()


def test_lifecycle_bad_parameter_at_startup(model_dir: Path, tmp_path: Path) -> None:
    node = NodeProcess(model_dir, tmp_path, ["stale_after_ms:=1.0"], module=MODULE)
    try:
        rc = node.proc.wait(120)
    finally:
        node.stop()
    assert rc == 2, node.log()
    assert "configuration error: parameter 'stale_after_ms'" in node.log()

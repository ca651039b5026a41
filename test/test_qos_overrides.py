"""Camera QoS through rclpy's QoSOverridingOptions (qos_overrides./<topic>.subscription.*), over DDS
with the real node.

The graph (get_subscriptions_info_by_topic) reports a remote subscription's reliability and
durability; DDS discovery carries no history/depth (they read KEEP_LAST-unknown / 0 for every remote
endpoint), so depth is read from the node's own /diagnostics report of the profile it subscribed
with ("qos.<camera>").
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build; . scripts/ros_env.sh)")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ros_harness import DriveRig, NodeProcess  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/ego"
FRONT = f"{NS}/camera/front/image_raw"


def _override(topic: str, policy: str, value: object) -> str:
    return f"qos_overrides.{topic}.subscription.{policy}:={value}"


def _graph(rig: DriveRig, topic: str, timeout: float = 15.0) -> QoSProfile:
    """The node's subscription on `topic` as the graph reports it. The graph cache can list an
    endpoint a moment after the publishers matched it (seen under load): poll until it does."""
    def infos() -> list:
        return [i for i in rig.h.node.get_subscriptions_info_by_topic(topic) if i.node_name == "dsdrive_node"]

    rig.h.wait_for(lambda: len(infos()) == 1, timeout)
    found = infos()
    assert len(found) == 1, found
    return found[0].qos_profile


def _wait_log(node: NodeProcess, pattern: str, timeout: float = 15.0) -> None:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while not rx.search(node.log()):
        assert time.monotonic() < deadline, f"no log line matching {pattern!r}:\n{node.log()[-3000:]}"
        time.sleep(0.1)


@pytest.fixture
def started(model_dir: Path, tmp_path: Path, request: pytest.FixtureRequest):
    """(node, rig): the node in namespace /ego with the test's parameters, discovered."""
    rig = DriveRig("qos_rig", namespace=NS)
    node = NodeProcess(model_dir, tmp_path, request.param, ros_args=["-r", f"__ns:={NS}"])
    try:
        rig.wait_discovery(node)
        yield node, rig
    finally:
        node.stop()
        rig.close()


@pytest.mark.parametrize("started", [[_override(FRONT, "reliability", "reliable"),
                                      _override(FRONT, "depth", 7)]], indirect=True)
def test_override_takes_effect_and_incompatible_pairing_is_reported(started) -> None:
    node, rig = started
    # the graph: front reliable (overridden), left still SensorData's best effort
    assert _graph(rig, FRONT).reliability == ReliabilityPolicy.RELIABLE
    assert _graph(rig, f"{NS}/camera/left/image_raw").reliability == ReliabilityPolicy.BEST_EFFORT
    _, _, values = rig.wait_diag(lambda lv, m, v: "qos.front" in v)
    assert values["qos.front"] == "reliable, keep_last 7, volatile", values
    assert values["qos.left"] == "best_effort, keep_last 1, volatile", values
    assert "deprecated" not in node.log()
    assert rig.serves(), f"no Path with the rig's reliable publishers:\n{node.log()[-3000:]}"

    # a best-effort camera publisher cannot feed the now reliable subscription: reported
    before = int(rig.last_diag()[2].get("qos_incompatible", "0"))
    mark = rig.mark()
    pub = rig.h.node.create_publisher(Image, FRONT, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        _wait_log(node, r"a publisher on 'camera/front/image_raw' offers QoS incompatible .*policy "
                        rf"RELIABILITY.* -p qos_overrides\.{FRONT}\.subscription\.reliability")
        level, _, values = rig.wait_diag(
            lambda lv, m, v: int(v.get("qos_incompatible", "0")) > before, since=mark)
        assert int(values["qos_incompatible"]) > before, values
        assert values["qos_incompatible_last"] == "camera/front/image_raw: RELIABILITY", values
        assert level >= 1
    finally:
        rig.h.node.destroy_publisher(pub)


@pytest.mark.parametrize("started", [["qos.reliability:=reliable", "qos.depth:=3",
                                      _override(f"{NS}/camera/left/image_raw", "reliability",
                                                "best_effort")]], indirect=True)
def test_deprecated_parameters_warn_and_are_still_honoured(started) -> None:
    node, rig = started
    _wait_log(node, r"qos\.reliability:=reliable, qos\.depth:=3 are deprecated.*"
                    rf"qos_overrides\.{NS}/camera/front/image_raw\.subscription\.reliability")
    # honoured as every camera's default; a per-topic override still wins
    assert _graph(rig, FRONT).reliability == ReliabilityPolicy.RELIABLE
    assert _graph(rig, f"{NS}/camera/left/image_raw").reliability == ReliabilityPolicy.BEST_EFFORT
    _, _, values = rig.wait_diag(lambda lv, m, v: "qos.rear" in v)
    assert values["qos.rear"] == "reliable, keep_last 3, volatile", values
    assert values["qos.left"] == "best_effort, keep_last 3, volatile", values

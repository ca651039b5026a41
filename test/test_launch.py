"""launch/*.launch.py through the real launch system (launch + launch_ros).

A ROS 2 install's own launch where there is one, else upstream's sources beside the clone
(../shared/vendor/ros2-launch; scripts/ros_env.sh puts them on PYTHONPATH, `make test` builds the
composition_interfaces service package launch_ros needs). With neither, the tests skip and say so.

- dsdrive.launch.py runs for real (LaunchService in a subprocess, as `ros2 launch` does): a
  non-default namespace, a model whose config.json names its cameras differently, a camera topic
  prefix, one camera's own topic, a remapped instruction and typed node parameters; Paths must come
  out on the namespaced topic for sets sent on those camera topics.
- The node's actions for a model with another camera count, built by the real library.
- replay.launch.py (needs `ros2 bag`, which is not here): its description built by the real
  library and its actions checked (node include under sim time, bag play/record, rviz2).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import launch  # noqa: F401
    import launch_ros.actions  # noqa: F401 - imports composition_interfaces.srv
except ImportError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"no ROS 2 launch/launch_ros ({exc}): neither a ROS 2 install's nor "
                "../shared/vendor/ros2-launch (`make launch-support`)", allow_module_level=True)
pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build; . scripts/ros_env.sh)")

from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch import LaunchContext  # noqa: E402
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription,  # noqa: E402
                            OpaqueFunction, TimerAction)
from launch.launch_description_sources import get_launch_description_from_python_launch_file  # noqa: E402
from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from dsdrive_ros.node.params import PARAMS  # noqa: E402
from ros_harness import Harness, camera_messages, diag_values, stamp_ns_of  # noqa: E402

pytestmark = [pytest.mark.ros]

SHARE = Path(get_package_share_directory("dsdrive_ros"))
NODE_LAUNCH = SHARE / "launch" / "dsdrive.launch.py"
REPLAY_LAUNCH = SHARE / "launch" / "replay.launch.py"
# What `ros2 launch FILE a:=b ...` does, without ros2cli (not here).
RUNNER = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = LaunchService(argv=sys.argv[2:])
service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]),
    launch_arguments=[a.split(":=", 1) for a in sys.argv[2:]])]))
sys.exit(service.run())
"""


def _renamed_model(src: Path, dst: Path, cameras: list[str]) -> Path:
    """The model with other camera names (config.json is what names them; the graphs only count)."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name != "config.json":
            (dst / f.name).symlink_to(f.resolve())
    cfg = json.loads((src / "config.json").read_text())
    assert len(cameras) == len(cfg["cameras"])
    cfg["cameras"] = cameras
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _context(ld, **values: str) -> LaunchContext:
    """A launch context with the description's declared defaults, then ``values``."""
    context = LaunchContext()
    for action in ld.entities:
        if isinstance(action, DeclareLaunchArgument):
            default = action.default_value
            context.launch_configurations[action.name] = _text(context, default or "")
    context.launch_configurations.update(values)
    return context


def _text(context: LaunchContext, value) -> str:
    """A substitution, list of them or plain str, performed."""
    return perform_substitutions(context, normalize_to_list_of_substitutions(value))


def _opaque(ld, context: LaunchContext) -> list:
    return [a for action in ld.entities if isinstance(action, OpaqueFunction)
            for a in action.execute(context) or []]


@pytest.mark.slow
def test_node_launch_runs_with_namespace_model_and_camera_topics(model_dir: Path, tmp_path: Path) -> None:
    from nav_msgs.msg import Path as PathMsg
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from diagnostic_msgs.msg import DiagnosticArray

    cameras = ["cam_wide", "cam_port", "cam_starboard", "cam_aft"]
    model = _renamed_model(model_dir, tmp_path / "model", cameras)
    topics = {"cam_wide": "/front_wide/image", **{c: f"/sensors/{c}/image_raw" for c in cameras[1:]}}
    args = ["namespace:=ego_launch", f"model_dir:={model}", "camera_topic_prefix:=/sensors",
            "cam_wide_image_topic:=/front_wide/image", "instruction_topic:=/route/instruction",
            "stale_after_ms:=900", "reasoning.enabled:=false"]
    h = Harness("launch_test")
    log = open(tmp_path / "launch.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(NODE_LAUNCH), *args], cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_text() -> str:
        log.flush()
        return (tmp_path / "launch.log").read_text(errors="replace")

    try:
        node = h.node
        pubs = {c: node.create_publisher(Image, topics[c], 2) for c in cameras}
        instruction = node.create_publisher(String, "/route/instruction", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        paths = h.subscribe("/ego_launch/dsdrive/path", PathMsg)
        h.subscribe("/diagnostics", DiagnosticArray)
        ready = h.wait_for(lambda: proc.poll() is not None or (
            all(p.get_subscription_count() for p in pubs.values())
            and instruction.get_subscription_count() and paths.get_publisher_count()), 90.0)
        assert ready and proc.poll() is None, f"node not up through the launch:\n{log_text()[-4000:]}"
        instruction.publish(String(data="turn left at the next intersection"))

        sent: set[int] = set()
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not sent & {stamp_ns_of(m) for m in h.got("/ego_launch/dsdrive/path")}:
            stamp = time.time_ns()
            for cam, msg in camera_messages(stamp, seed=1, cameras=cameras).items():
                pubs[cam].publish(msg)
            sent.add(stamp)
            time.sleep(0.2)
        got = sent & {stamp_ns_of(m) for m in h.got("/ego_launch/dsdrive/path")}
        assert got, f"no Path on /ego_launch/dsdrive/path:\n{log_text()[-4000:]}"
        text = log_text()
        assert "cameras ['cam_wide', 'cam_port', 'cam_starboard', 'cam_aft']" in text, text[-3000:]
        assert "instruction: 'turn left at the next intersection'" in text, text[-3000:]
        # typed launch arguments reached the node (an int for a double parameter would fail its start)
        assert h.wait_for(lambda: any(
            diag_values(a)[2].get("reasoning.enabled") == "False" for a in h.got("/diagnostics")), 10.0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            h.close()
            log.close()
    text = (tmp_path / "launch.log").read_text(errors="replace")
    assert rc == 0 and "process has finished cleanly" in text, text[-3000:]


def test_node_launch_follows_the_model_camera_count(model_dir: Path, tmp_path: Path) -> None:
    """Two cameras named in config.json: two remap pairs, the prefix applied, every parameter an
    argument (the launch runs no node here: the actions are what the real library builds)."""
    model = tmp_path / "m2"
    model.mkdir()
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["cameras"] = ["mono_left", "mono_right"]
    (model / "config.json").write_text(json.dumps(cfg))
    ld = get_launch_description_from_python_launch_file(str(NODE_LAUNCH))
    declared = {a.name for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
    assert {"namespace", "use_sim_time", "camera_topic_prefix", "params_file"} <= declared
    assert {p.name for p in PARAMS} <= declared, {p.name for p in PARAMS} - declared

    context = _context(ld, namespace="car1", model_dir=str(model), camera_topic_prefix="/rig",
                       mono_right_image_topic="/stereo/right")
    (node,) = _opaque(ld, context)
    assert isinstance(node, Node) and node.node_executable == "dsdrive_node"
    node._perform_substitutions(context)  # what Node.execute does first
    assert node.expanded_node_namespace == "/car1"
    assert dict(node.expanded_remapping_rules) == {
        "instruction": "instruction", "odom": "odom",
        "camera/mono_left/image_raw": "/rig/mono_left/image_raw",
        "camera/mono_left/image_raw/compressed": "/rig/mono_left/image_raw/compressed",
        "camera/mono_right/image_raw": "/stereo/right",
        "camera/mono_right/image_raw/compressed": "/stereo/right/compressed",
    }
    # the node's process gets the Fast DDS profile that sizes shared memory for camera images
    env = {_text(context, k): _text(context, v) for k, v in node.additional_env}
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": context.launch_configurations["dds_profile"]}
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).name == "fastdds_large_data.xml"
    assert (SHARE / "config" / "fastdds_large_data.xml").is_file()


def test_replay_launch_description() -> None:
    ld = get_launch_description_from_python_launch_file(str(REPLAY_LAUNCH))
    context = _context(ld, bag="/data/drive_0001", record="/tmp/out", namespace="ego", rate="0.5",
                       rviz="true")

    (include,) = [a for a in ld.entities if isinstance(a, IncludeLaunchDescription)]
    source = include.launch_description_source
    included = source.get_launch_description(context)  # loads dsdrive.launch.py with the real library
    assert Path(source.location) == NODE_LAUNCH
    assert any(isinstance(a, OpaqueFunction) for a in included.entities)
    forwarded = {_text(context, k): _text(context, v) for k, v in include.launch_arguments}
    assert forwarded["use_sim_time"] == "true" and forwarded["namespace"] == "ego"

    (rviz,) = [a for a in ld.entities if isinstance(a, Node)]
    assert rviz.node_package == "rviz2" and rviz.node_executable == "rviz2"
    assert rviz.condition.evaluate(context)
    assert not rviz.condition.evaluate(_context(ld, bag="/data/drive_0001"))  # off by default
    cmd = [_text(context, part) for part in rviz.cmd[1:3]]
    assert cmd == ["-d", str(SHARE / "config" / "dsdrive.rviz")], cmd

    actions = _opaque(ld, context)
    (record,) = [a for a in actions if isinstance(a, ExecuteProcess)]
    record_cmd = [_text(context, part) for part in record.cmd]
    assert record_cmd[:3] == ["ros2", "bag", "record"] and "/ego/dsdrive/plan" in record_cmd
    (timer,) = [a for a in actions if isinstance(a, TimerAction)]
    play_cmd = [_text(context, part) for part in timer.actions[0].cmd]
    assert play_cmd == ["ros2", "bag", "play", "/data/drive_0001", "--clock", "--rate", "0.5"]
    # the player publishes the images: it, the recorder and the node run with the DDS profile
    profile = {"FASTDDS_DEFAULT_PROFILES_FILE": context.launch_configurations["dds_profile"]}
    for process in (timer.actions[0], record):
        assert {_text(context, k): _text(context, v) for k, v in process.additional_env} == profile
    assert forwarded["dds_profile"] == profile["FASTDDS_DEFAULT_PROFILES_FILE"]

"""rosbag2 IO for dsdrive-replay with `rosbags` (pure Python; no rosbag2_py): which topics of a bag
feed the node, the typestore with dsdrive_ros/msg/DrivingPlan, and small readers. ROS-free."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

__all__ = [
    "STORE",
    "T_IMAGE",
    "T_COMPRESSED",
    "T_STRING",
    "T_ODOM",
    "T_PATH",
    "T_PLAN",
    "T_REASONING",
    "T_DIAG",
    "T_MARKERS",
    "T_CAMERA_INFO",
    "GT_PATH_TOPIC",
    "BagInputs",
    "driving_plan_msg_path",
    "share_file",
    "typestore",
    "find_inputs",
    "open_reader",
    "iter_topic",
    "stamp_ns",
]

STORE = Stores.ROS2_KILTED
T_IMAGE = "sensor_msgs/msg/Image"
T_COMPRESSED = "sensor_msgs/msg/CompressedImage"
T_CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
T_STRING = "std_msgs/msg/String"
T_ODOM = "nav_msgs/msg/Odometry"
T_PATH = "nav_msgs/msg/Path"
T_PLAN = "dsdrive_ros/msg/DrivingPlan"
T_REASONING = "dsdrive_ros/msg/Reasoning"
T_DIAG = "diagnostic_msgs/msg/DiagnosticArray"
T_MARKERS = "visualization_msgs/msg/MarkerArray"
GT_PATH_TOPIC = "/ground_truth/path"

_CAMERA_RE = re.compile(r"(?:^|/)camera/([^/]+)/image_raw(/compressed)?$")
_INFO_RE = re.compile(r"(?:^|/)camera/([^/]+)/camera_info$")


def share_file(relpath: str) -> Path:
    """A file of the package's share directory (e.g. msg/DrivingPlan.msg, config/dsdrive.rviz): the
    installed share/dsdrive_ros copy, else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        p = Path(get_package_share_directory("dsdrive_ros")) / relpath
        if p.is_file():
            return p
    except Exception:  # noqa: BLE001 - ament index absent / package not installed
        pass
    p = Path(__file__).resolve().parents[2] / relpath
    if p.is_file():
        return p
    raise FileNotFoundError(f"{relpath} not found (neither installed nor in the source tree)")


def driving_plan_msg_path() -> Path:
    return share_file("msg/DrivingPlan.msg")


@lru_cache(maxsize=1)
def typestore() -> Any:
    """Kilted typestore + dsdrive_ros/msg/DrivingPlan and Reasoning."""
    ts = get_typestore(STORE)
    ts.register(get_types_from_msg(driving_plan_msg_path().read_text(), T_PLAN))
    ts.register(get_types_from_msg(share_file("msg/Reasoning.msg").read_text(), T_REASONING))
    return ts


def open_reader(bag: str | Path) -> AnyReader:
    """AnyReader over a rosbag2 directory (mcap or sqlite3) or a single .mcap/.db3 file."""
    p = Path(bag)
    if p.is_file() and p.suffix in (".mcap", ".db3") and (p.parent / "metadata.yaml").is_file():
        p = p.parent
    return AnyReader([p], default_typestore=typestore())


def stamp_ns(msg: Any) -> int:
    """header.stamp of a rosbags (or rclpy) message in integer ns."""
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


@dataclass
class BagInputs:
    """The bag's connections that feed the node, by role."""

    cameras: dict[str, Any] = field(default_factory=dict)  # camera name -> connection
    transport: str = "raw"
    camera_info: dict[str, Any] = field(default_factory=dict)
    instruction: Optional[Any] = None
    odom: Optional[Any] = None
    ground_truth: Optional[Any] = None

    def connections(self) -> list[Any]:
        conns = list(self.cameras.values())
        conns += [c for c in (self.instruction, self.odom) if c is not None]
        return conns


def find_inputs(reader: AnyReader, cameras: Sequence[str], transport: str = "auto") -> BagInputs:
    """Pick the camera/instruction/odom/ground-truth connections of a bag.

    Cameras are matched by name in ``.../camera/<name>/image_raw[/compressed]`` (any namespace);
    ``transport`` "auto" prefers raw when a bag holds both. Raises ValueError naming what is missing.
    """
    found: dict[str, dict[str, Any]] = {"raw": {}, "compressed": {}}
    info: dict[str, Any] = {}
    out = BagInputs()
    for c in reader.connections:
        m = _CAMERA_RE.search(c.topic)
        if m and c.msgtype in (T_IMAGE, T_COMPRESSED):
            kind = "compressed" if c.msgtype == T_COMPRESSED else "raw"
            found[kind].setdefault(m.group(1), c)
            continue
        m = _INFO_RE.search(c.topic)
        if m and c.msgtype == T_CAMERA_INFO:
            info.setdefault(m.group(1), c)
            continue
        if c.msgtype == T_STRING and c.topic.rstrip("/").endswith("instruction") and out.instruction is None:
            out.instruction = c
        elif c.msgtype == T_ODOM and out.odom is None:
            out.odom = c
        elif c.msgtype == T_PATH and c.topic == GT_PATH_TOPIC:
            out.ground_truth = c
    if transport == "auto":
        complete = [k for k in ("raw", "compressed") if all(cam in found[k] for cam in cameras)]
        transport = complete[0] if complete else ("raw" if found["raw"] else "compressed")
    missing = [cam for cam in cameras if cam not in found[transport]]
    if missing:
        have = {k: sorted(v) for k, v in found.items() if v}
        raise ValueError(
            f"bag has no {transport} image topic for camera(s) {missing} (model cameras "
            f"{list(cameras)}; camera topics in the bag: {have or 'none'}); expected "
            f"camera/<name>/image_raw{'/compressed' if transport == 'compressed' else ''}")
    out.transport = transport
    out.cameras = {cam: found[transport][cam] for cam in cameras}
    out.camera_info = {cam: info[cam] for cam in cameras if cam in info}
    return out


def iter_topic(reader: AnyReader, conns: Sequence[Any]) -> Iterator[tuple[Any, int, Any]]:
    """(connection, log time ns, deserialized message) for ``conns``, in log-time order."""
    for conn, t_ns, raw in reader.messages(connections=list(conns)):
        yield conn, t_ns, reader.deserialize(raw, conn.msgtype)

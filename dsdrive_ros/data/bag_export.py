"""Episode -> rosbag2 (mcap) holding the node's inputs plus ground truth, written with `rosbags`.

Topics (header stamps = `start_time_ns` + episode time; bag log time = header stamp):

| topic | type | frame_id | what |
|---|---|---|---|
| `/camera/<name>/image_raw/compressed` | sensor_msgs/CompressedImage | `camera_<name>` | JPEG, format `"rgb8; jpeg compressed bgr8"` (image_transport's spelling) |
| `/instruction` | std_msgs/String | - | at the first frame, whenever it changes, and every `instruction_period_s` |
| `/odom` | nav_msgs/Odometry | `odom` -> `base_link` | pose relative to the episode's first pose; twist.linear.x = speed, angular.z = yaw rate |
| `/ground_truth/path` | nav_msgs/Path | `base_link` | the expert's K future waypoints (x forward, y left); pose k stamped stamp + (k+1)*dt, oriented along the path |
| `/ground_truth/reasoning` | std_msgs/String | - | the teacher's chain of thought (optional) |

All topics of one frame share its stamp, so the replay report matches `/ground_truth/path` to the
node's `dsdrive/path` by header stamp (`read_ground_truth`). Message types come from the ROS 2
Kilted typestore (the rclpy wheels here are Kilted; these message definitions are unchanged since
Humble, so Jazzy/Humble readers decode them too).

Sources: a `DatasetReader` episode (`EpisodeData`: its JPEG bytes go into the bag unchanged), or an
iterable of `(SceneState, {camera: RGB uint8})` (encoded here; reasoning from an optional teacher).
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from transforms3d.euler import euler2quat

from dsdrive_ros.data.dataset import EpisodeData
from dsdrive_ros.frames.image_codec import encode_compressed
from dsdrive_ros.sim.scene import SceneState

STORE = Stores.ROS2_KILTED
DEFAULT_START_NS = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z: a plausible, deterministic epoch
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"

TOPIC_INSTRUCTION = "/instruction"
TOPIC_ODOM = "/odom"
TOPIC_GT_PATH = "/ground_truth/path"
TOPIC_GT_REASONING = "/ground_truth/reasoning"

T_COMPRESSED = "sensor_msgs/msg/CompressedImage"
T_STRING = "std_msgs/msg/String"
T_ODOM = "nav_msgs/msg/Odometry"
T_PATH = "nav_msgs/msg/Path"

_typestore = None


def typestore():
    global _typestore
    if _typestore is None:
        _typestore = get_typestore(STORE)
    return _typestore


def camera_topic(name: str) -> str:
    return f"/camera/{name}/image_raw/compressed"


@dataclass
class BagFrame:
    """What one exported frame needs (the common form of both sources)."""

    t: float
    x: float
    y: float
    yaw: float
    speed: float
    instruction: str
    waypoints: np.ndarray  # (K, 2) base_link
    images: Mapping[str, bytes | np.ndarray]  # camera -> JPEG bytes or RGB uint8
    teacher: str = ""


@dataclass
class BagSummary:
    path: Path
    frames: int
    counts: dict[str, int]
    start_ns: int
    end_ns: int
    size_bytes: int
    cameras: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def frames_from_episode(episode: EpisodeData) -> Iterator[BagFrame]:
    for fr in episode.frames(decode=False):
        r = fr.record
        yield BagFrame(
            t=float(r["t"]), x=float(r["pose"]["x"]), y=float(r["pose"]["y"]), yaw=float(r["pose"]["yaw"]),
            speed=float(r["speed"]), instruction=str(r["instruction"]),
            waypoints=np.asarray(r["waypoints"], dtype=np.float64), images=fr.jpeg, teacher=str(r.get("teacher", "")),
        )


def frames_from_states(items: Iterable[tuple[SceneState, Mapping[str, np.ndarray]]], teacher=None) -> Iterator[BagFrame]:
    for state, images in items:
        yield BagFrame(
            t=float(state.t), x=float(state.x), y=float(state.y), yaw=float(state.yaw), speed=float(state.speed),
            instruction=str(state.instruction), waypoints=np.asarray(state.waypoints, dtype=np.float64).reshape(-1, 2),
            images=images, teacher=teacher.explain(state, images) if teacher is not None else "",
        )


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _quat(yaw: float):
    """geometry_msgs Quaternion for a rotation about z (transforms3d gives w, x, y, z)."""
    w, x, y, z = euler2quat(0.0, 0.0, yaw)
    return typestore().types["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))


class _Msgs:
    """Builders for the messages, bound to one typestore."""

    def __init__(self):
        ts = typestore()
        self.ts = ts
        T = ts.types
        self.Time = T["builtin_interfaces/msg/Time"]
        self.Header = T["std_msgs/msg/Header"]
        self.String = T[T_STRING]
        self.Compressed = T[T_COMPRESSED]
        self.Odometry = T[T_ODOM]
        self.Path = T[T_PATH]
        self.PoseStamped = T["geometry_msgs/msg/PoseStamped"]
        self.Pose = T["geometry_msgs/msg/Pose"]
        self.Point = T["geometry_msgs/msg/Point"]
        self.PoseCov = T["geometry_msgs/msg/PoseWithCovariance"]
        self.TwistCov = T["geometry_msgs/msg/TwistWithCovariance"]
        self.Twist = T["geometry_msgs/msg/Twist"]
        self.Vector3 = T["geometry_msgs/msg/Vector3"]

    def header(self, ns: int, frame_id: str):
        return self.Header(stamp=self.Time(sec=int(ns // 10**9), nanosec=int(ns % 10**9)), frame_id=frame_id)

    def pose(self, x: float, y: float, yaw: float):
        return self.Pose(position=self.Point(x=float(x), y=float(y), z=0.0), orientation=_quat(yaw))

    def ser(self, msg, msgtype: str) -> bytes:
        return bytes(self.ts.serialize_cdr(msg, msgtype))


def path_message(m: _Msgs, stamp_ns: int, waypoints: np.ndarray, dt_s: float):
    poses = []
    prev = np.zeros(2)
    yaw = 0.0
    for k, (px, py) in enumerate(np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)):
        d = np.array([px, py]) - prev
        if float(np.hypot(*d)) > 1e-3:
            yaw = math.atan2(d[1], d[0])
        prev = np.array([px, py])
        poses.append(m.PoseStamped(header=m.header(stamp_ns + int(round((k + 1) * dt_s * 1e9)), "base_link"),
                                   pose=m.pose(px, py, yaw)))
    return m.Path(header=m.header(stamp_ns, "base_link"), poses=poses)


def export_bag(
    source: EpisodeData | Iterable[BagFrame] | Iterable[tuple[SceneState, Mapping[str, np.ndarray]]],
    out: str | os.PathLike,
    *,
    cameras: Sequence[str] | None = None,
    start_time_ns: int = DEFAULT_START_NS,
    instruction_period_s: float = 1.0,
    waypoint_dt_s: float = 0.5,
    jpeg_quality: int = 85,
    reasoning: bool = True,
    teacher=None,
    overwrite: bool = False,
) -> BagSummary:
    """Write one episode to a rosbag2 mcap directory `out` (topics in the module docstring)."""
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists (pass overwrite=True to replace it)")
        shutil.rmtree(out)
    if isinstance(source, EpisodeData):
        frames: Iterable[BagFrame] = frames_from_episode(source)
        if cameras is None:
            cameras = source.cameras
    else:
        frames = _normalize(source, teacher)

    m = _Msgs()
    writer = Writer(out, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns: dict[str, Any] = {}
    counts: dict[str, int] = {}

    def write(topic: str, msgtype: str, ns: int, msg) -> None:
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=m.ts)
            counts[topic] = 0
        writer.write(conns[topic], ns, m.ser(msg, msgtype))
        counts[topic] += 1

    n = 0
    first_ns = last_ns = start_time_ns
    origin: tuple[float, float, float] | None = None
    prev: tuple[int, float] | None = None
    last_instr: tuple[str, int] | None = None
    cams: list[str] | None = list(cameras) if cameras is not None else None
    try:
        for fr in frames:
            ns = start_time_ns + int(round(fr.t * 1e9))
            if prev is not None and ns <= prev[0]:
                raise ValueError(f"frame {n}: time {fr.t} s does not increase")
            if n == 0:
                first_ns = ns
            last_ns = ns
            if cams is None:
                cams = list(fr.images)
            for cam in cams:
                if cam not in fr.images:
                    raise ValueError(f"frame {n} lacks camera {cam}")
                img = fr.images[cam]
                data = bytes(img) if isinstance(img, (bytes, bytearray, memoryview)) else encode_compressed(np.asarray(img), "jpeg", jpeg_quality)
                write(camera_topic(cam), T_COMPRESSED, ns, m.Compressed(
                    header=m.header(ns, f"camera_{cam}"), format=JPEG_FORMAT, data=np.frombuffer(data, dtype=np.uint8)))
            # instruction: first frame, on change, and periodically
            if (last_instr is None or fr.instruction != last_instr[0]
                    or ns - last_instr[1] >= int(instruction_period_s * 1e9) - 1000):
                write(TOPIC_INSTRUCTION, T_STRING, ns, m.String(data=fr.instruction))
                last_instr = (fr.instruction, ns)
            # odometry relative to the first pose
            if origin is None:
                origin = (fr.x, fr.y, fr.yaw)
            ox, oy, oyaw = origin
            dx, dy = fr.x - ox, fr.y - oy
            c, s = math.cos(oyaw), math.sin(oyaw)
            lx, ly, lyaw = c * dx + s * dy, -s * dx + c * dy, _wrap(fr.yaw - oyaw)
            yaw_rate = 0.0 if prev is None else _wrap(fr.yaw - prev[1]) / ((ns - prev[0]) / 1e9)
            write(TOPIC_ODOM, T_ODOM, ns, m.Odometry(
                header=m.header(ns, "odom"), child_frame_id="base_link",
                pose=m.PoseCov(pose=m.pose(lx, ly, lyaw), covariance=np.zeros(36, dtype=np.float64)),
                twist=m.TwistCov(twist=m.Twist(linear=m.Vector3(x=float(fr.speed), y=0.0, z=0.0),
                                               angular=m.Vector3(x=0.0, y=0.0, z=float(yaw_rate))),
                                 covariance=np.zeros(36, dtype=np.float64))))
            write(TOPIC_GT_PATH, T_PATH, ns, path_message(m, ns, fr.waypoints, waypoint_dt_s))
            if reasoning and fr.teacher:
                write(TOPIC_GT_REASONING, T_STRING, ns, m.String(data=fr.teacher))
            prev = (ns, fr.yaw)
            n += 1
    except BaseException:
        writer.close()
        shutil.rmtree(out, ignore_errors=True)
        raise
    writer.close()
    if n == 0:
        shutil.rmtree(out, ignore_errors=True)
        raise ValueError("no frames to export")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return BagSummary(out, n, counts, first_ns, last_ns, size, list(cams or []))


def _normalize(source, teacher) -> Iterator[BagFrame]:
    it = iter(source)
    for item in it:
        if isinstance(item, BagFrame):
            yield item
        else:
            state, images = item
            yield from frames_from_states([(state, images)], teacher)


# --------------------------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------------------------

def iter_messages(bag: str | os.PathLike, topics: Sequence[str] | None = None) -> Iterator[tuple[str, int, Any]]:
    """(topic, log time ns, deserialized rosbags message) for `topics` (all when None), in time order."""
    ts = typestore()
    with Reader(Path(bag)) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        for conn, t_ns, raw in reader.messages(connections=conns):
            yield conn.topic, t_ns, ts.deserialize_cdr(raw, conn.msgtype)


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def read_ground_truth(bag: str | os.PathLike, topic: str = TOPIC_GT_PATH) -> dict[int, np.ndarray]:
    """{header stamp ns: (K, 2) float64 waypoints in base_link} from the ground-truth Path topic."""
    out: dict[int, np.ndarray] = {}
    for _, _, msg in iter_messages(bag, [topic]):
        pts = np.array([[p.pose.position.x, p.pose.position.y] for p in msg.poses], dtype=np.float64).reshape(-1, 2)
        out[stamp_ns(msg.header)] = pts
    return out


def read_ground_truth_reasoning(bag: str | os.PathLike) -> dict[int, str]:
    """{log time ns: teacher text} (log time = the frame's header stamp)."""
    return {t: msg.data for _, t, msg in iter_messages(bag, [TOPIC_GT_REASONING])}


def bag_topics(bag: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """{topic: (msgtype, message count)}."""
    with Reader(Path(bag)) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}

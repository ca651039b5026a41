"""Test helpers: an rclpy node spinning in a background thread, and dsdrive_node as a subprocess.

Real rclpy, real DDS, one process per side. ROS_DOMAIN_ID comes from conftest (per test process).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from dsdrive_ros.node import process
from dsdrive_ros.node.background import BackgroundNode

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "config" / "dsdrive.params.yaml"
CAMERAS = ["front", "left", "right", "rear"]


class NodeProcess(process.NodeProcess):
    """dsdrive_node in its own process (the package's launcher) with the tests' conveniences."""

    def __init__(self, model_dir: Path, workdir: Path, params: Sequence[str] = (),
                 params_file: Optional[Path] = PARAMS_FILE, ros_args: Sequence[str] = (),
                 module: str = "dsdrive_ros.node.dsdrive_node", env: Optional[dict[str, str]] = None) -> None:
        super().__init__(model_dir, workdir, params, params_file, ros_args, module, log_name="dsdrive_node.log",
                         env=env)

    def log(self) -> str:
        return self.log_tail(n=10**9)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        return super().stop(timeout, sig)

    def __enter__(self) -> "NodeProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# The test-side rclpy node (own context, background executor) that records what it receives.
Harness = BackgroundNode


def make_image(seed: int, h: int = 96, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    img[: h // 2] = (90, 140, 220)  # sky-ish upper half: compresses, still varies per seed below
    return img


def stamp_msg(msg: Any, stamp_ns: int, frame_id: str = "") -> Any:
    msg.header.stamp.sec = int(stamp_ns // 1_000_000_000)
    msg.header.stamp.nanosec = int(stamp_ns % 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


def camera_messages(stamp_ns: int, seed: int, compressed: bool = False,
                    cameras: Sequence[str] = CAMERAS) -> dict[str, Any]:
    from sensor_msgs.msg import CompressedImage, Image

    from dsdrive_ros.frames import fill_compressed_msg, fill_image_msg

    out = {}
    for i, cam in enumerate(cameras):
        rgb = make_image(seed * 10 + i)
        if compressed:
            msg = fill_compressed_msg(CompressedImage(), rgb, "jpeg", 85)
        else:
            msg = fill_image_msg(Image(), rgb, "rgb8")
        out[cam] = stamp_msg(msg, stamp_ns, f"camera_{cam}")
    return out


def stamp_ns_of(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def diag_values(arr: Any, name: str = "dsdrive_node: planner") -> tuple[int, str, dict[str, str]]:
    """(level, message, values) of one status of a DiagnosticArray (level -1 if absent)."""
    for st in arr.status:
        if st.name == name:
            level = st.level[0] if isinstance(st.level, (bytes, bytearray)) else int(st.level)
            return level, st.message, {kv.key: kv.value for kv in st.values}
    return -1, "", {}


# ---------------------------------------------------------------------------------------------
# DriveRig: the other side of a running node (used by test_faults, test_lifecycle, bench/soak.py)

def proc_rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (NodeProcess starts the node in a session of its own)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            out.append(int(d.name))
    return out


class DriveRig:
    """Test-side rclpy node: camera/instruction/odom publishers, subscriptions to every output.

    Camera messages are built once per ``seed`` and only restamped when sent (a burst of
    thousands of sets costs no encoding)."""

    def __init__(self, name: str = "dsdrive_rig", compressed: bool = False,
                 cameras: Sequence[str] = CAMERAS, image_hw: tuple[int, int] = (96, 160),
                 camera_depth: int = 2, outputs: bool = True, namespace: str = "",
                 node_name: str = "dsdrive_node") -> None:
        """``namespace``/``node_name``: those of the node under test (run it with
        ``-r __ns:=<namespace> -r __node:=<node_name>``); its /diagnostics statuses are named
        "<node_name>: planner", "<node_name>: camera <name>"."""
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from nav_msgs.msg import Path as PathMsg
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        self.h = Harness(name)
        node = self.h.node
        self.ns = namespace.rstrip("/")
        self.node_name = node_name
        self.compressed = compressed
        self.cameras = list(cameras)
        self.image_hw = image_hw
        self.latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.TRANSIENT_LOCAL)
        suffix = "/compressed" if compressed else ""
        ns = self.ns
        self.cams = {c: node.create_publisher(CompressedImage if compressed else Image,
                                              f"{ns}/camera/{c}/image_raw{suffix}", camera_depth)
                     for c in self.cameras}
        self.instruction = node.create_publisher(String, f"{ns}/instruction", self.latched)
        self.odom = node.create_publisher(Odometry, f"{ns}/odom", 5)
        self.path_sub = self.h.subscribe(f"{ns}/dsdrive/path", PathMsg, 100)
        if outputs:
            from dsdrive_ros.msg import DrivingPlan

            self.h.subscribe(f"{ns}/dsdrive/plan", DrivingPlan, 100)
            self.h.subscribe(f"{ns}/dsdrive/reasoning", String, 10)
        self.h.subscribe("/diagnostics", DiagnosticArray, 50)
        self._sets: dict[int, dict[str, Any]] = {}
        self.last_stamp = 0
        self.sent = 0

    # ---- sending ----

    def wait_discovery(self, node: Optional["NodeProcess"] = None, timeout: float = 90.0) -> None:
        def ready() -> bool:
            return (all(p.get_subscription_count() > 0 for p in self.cams.values())
                    and self.path_sub.get_publisher_count() > 0)

        ok = self.h.wait_for(lambda: (node is not None and not node.alive()) or ready(), timeout)
        if node is not None:
            assert node.alive(), f"node died during startup:\n{node.log()[-4000:]}"
        assert ok and ready(), "node not discovered in time" + (f":\n{node.log()[-4000:]}" if node else "")

    def camera_set(self, seed: int = 0) -> dict[str, Any]:
        """Prebuilt messages of one good set (cached per seed; restamped by send_set)."""
        if seed not in self._sets:
            from sensor_msgs.msg import CompressedImage, Image

            from dsdrive_ros.frames import fill_compressed_msg, fill_image_msg

            msgs = {}
            for i, cam in enumerate(self.cameras):
                rgb = make_image(seed * 10 + i, *self.image_hw)
                msg = (fill_compressed_msg(CompressedImage(), rgb, "jpeg", 85) if self.compressed
                       else fill_image_msg(Image(), rgb, "rgb8"))
                msg.header.frame_id = f"camera_{cam}"
                msgs[cam] = msg
            self._sets[seed] = msgs
        return self._sets[seed]

    def next_stamp(self) -> int:
        """Wall-clock now (the node's clock), strictly increasing across calls (``last_stamp``:
        the latest one handed out; explicit stamps given to send_set do not change it)."""
        st = max(time.time_ns(), self.last_stamp + 1_000_000)
        self.last_stamp = st
        return st

    def send_set(self, stamp_ns: Optional[int] = None, seed: int = 0,
                 cameras: Optional[Sequence[str]] = None) -> int:
        stamp_ns = self.next_stamp() if stamp_ns is None else int(stamp_ns)
        msgs = self.camera_set(seed)
        for cam in (self.cameras if cameras is None else cameras):
            msg = msgs[cam]
            stamp_msg(msg, stamp_ns, msg.header.frame_id)
            self.cams[cam].publish(msg)
        self.sent += 1
        return stamp_ns

    def send_instruction(self, text: str) -> None:
        from std_msgs.msg import String

        self.instruction.publish(String(data=text))

    def send_odom(self, vx: float, vy: float = 0.0) -> None:
        from nav_msgs.msg import Odometry

        msg = Odometry()
        msg.twist.twist.linear.x = float(vx)
        msg.twist.twist.linear.y = float(vy)
        self.odom.publish(stamp_msg(msg, time.time_ns(), "odom"))

    # ---- outputs ----

    def topic(self, name: str) -> str:
        """Absolute name of one of the node's (relative) topics, e.g. topic("dsdrive/path")."""
        return f"{self.ns}/{name.lstrip('/')}"

    def paths(self) -> list[Any]:
        return self.h.got(self.topic("dsdrive/path"))

    def plans(self) -> list[Any]:
        return self.h.got(self.topic("dsdrive/plan"))

    def path_stamps(self) -> set[int]:
        return {stamp_ns_of(p) for p in self.paths()}

    def serves(self, timeout: float = 20.0, period_s: float = 0.15, seed: int = 1) -> int:
        """Send good sets until a Path for one of them arrives; returns that stamp (0: none)."""
        sent: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent.add(self.send_set(seed=seed))
            if self.h.wait_for(lambda: bool(sent & self.path_stamps()), period_s, 0.01):
                return min(sent & self.path_stamps())
        return 0

    def diags(self) -> list[Any]:
        return self.h.got("/diagnostics")

    def mark(self) -> int:
        return len(self.diags())

    def status_name(self, what: str = "planner") -> str:
        return f"{self.node_name}: {what}"

    def last_diag(self, what: str = "planner") -> tuple[int, str, dict[str, str]]:
        """(level, message, values) of status ``what`` ("planner", "camera front") in the newest
        /diagnostics array from this rig's node."""
        name = self.status_name(what)
        for a in reversed(self.diags()):
            got = diag_values(a, name)
            if got[0] >= 0:
                return got
        return (-1, "", {})

    def wait_diag(self, pred: Callable[[int, str, dict[str, str]], bool], timeout: float = 15.0,
                  since: Optional[int] = None, what: str = "planner",
                  ) -> tuple[int, str, dict[str, str]]:
        """First status ``what`` of this rig's node received after ``since`` (a mark(); default
        now) with pred(level, message, values); else the last one received."""
        start = self.mark() if since is None else since
        name = self.status_name(what)

        def match() -> Optional[Any]:
            for a in self.diags()[start:]:
                got = diag_values(a, name)
                if got[0] >= 0 and pred(*got):
                    return a
            return None

        self.h.wait_for(lambda: match() is not None, timeout)
        a = match()
        self.matched = a
        return diag_values(a, name) if a is not None else self.last_diag(what)

    def close(self) -> None:
        self.h.close()

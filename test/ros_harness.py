"""Test helpers: an rclpy node spinning in a background thread, and dsdrive_node as a subprocess.

Real rclpy, real DDS, one process per side. ROS_DOMAIN_ID comes from conftest (per test process).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "config" / "dsdrive.params.yaml"
CAMERAS = ["front", "left", "right", "rear"]


def ros_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class NodeProcess:
    """python -m dsdrive_ros.node.dsdrive_node in its own process (cwd outside the source tree, so
    the colcon-installed dsdrive_ros — with dsdrive_ros.msg — is the one imported)."""

    def __init__(self, model_dir: Path, workdir: Path, params: Sequence[str] = (),
                 params_file: Optional[Path] = PARAMS_FILE) -> None:
        self.log_path = workdir / "dsdrive_node.log"
        cmd = [sys.executable, "-m", "dsdrive_ros.node.dsdrive_node", "--ros-args"]
        if params_file is not None:
            cmd += ["--params-file", str(params_file)]
        cmd += ["-p", f"model_dir:={model_dir}"]
        for p in params:
            cmd += ["-p", p]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=ros_env(), start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "NodeProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Harness:
    """A test-side rclpy node in its own context, spun by a background executor thread."""

    def __init__(self, name: str = "dsdrive_test") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.msgs: dict[str, list[tuple[float, Any]]] = collections.defaultdict(list)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self.ctx.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, Exception):  # noqa: BLE001 - context gone at close
            pass

    def subscribe(self, topic: str, msg_type: Any, qos: Any = 10, raw: bool = False) -> Any:
        def cb(msg: Any) -> None:
            with self.lock:
                self.msgs[topic].append((time.monotonic(), msg))

        return self.node.create_subscription(msg_type, topic, cb, qos, raw=raw)

    def got(self, topic: str) -> list[Any]:
        with self.lock:
            return [m for _, m in self.msgs[topic]]

    def clear(self, topic: Optional[str] = None) -> None:
        with self.lock:
            if topic is None:
                self.msgs.clear()
            else:
                self.msgs[topic].clear()

    def wait_for(self, pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(interval)
        return pred()

    def close(self) -> None:
        import rclpy

        try:
            self.executor.shutdown(timeout_sec=1.0)
        except Exception:  # noqa: BLE001
            pass
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        self._thread.join(2.0)


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

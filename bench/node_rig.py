#!/usr/bin/env python3
"""node_bench's rig: the bench side of a dsdrive_node over real DDS (camera publishers, output
subscriptions; a ``BackgroundNode``), the node under test as a ``bench/node_probe.py`` subprocess, and
what /proc says about that process. Used by node_bench.py and camera_res.py.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout; the installed package (with .msg) merges in

from dsdrive_ros.node.background import BackgroundNode  # noqa: E402
from dsdrive_ros.node.process import NodeProcess  # noqa: E402

PROBE = Path(__file__).resolve().parent / "node_probe.py"
PARAMS_FILE = REPO / "config" / "dsdrive.params.yaml"
STAGES_TOPIC = "dsdrive_bench/stages"  # node_probe.py publishes the per-frame stage times here
# ONNX Runtime's own defaults (every graph a spin-waiting pool of all cores), as the runner had them
# before this benchmark: the "before" run (node_probe.py applies it through ort_options.py).
UNTUNED_ORT = "planner_threads=0,reasoner_threads=0,spinning=1"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _proc_cpu_s(pid: int) -> Optional[float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _proc_mem_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


def _proc_threads_nice(pid: int) -> dict[str, int]:
    """How many of the process's threads run at each niceness (reasoning thread: +10)."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            nice = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[16]
        except (OSError, IndexError):
            continue
        out[nice] = out.get(nice, 0) + 1
    return out


def make_images(n_sets: int, cameras: list[str], h: int, w: int) -> list[dict[str, np.ndarray]]:
    """Road-like frames: sky gradient, textured ground, a few edges; different per camera and set."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    sets = []
    for s in range(n_sets):
        frames = {}
        for i, _ in enumerate(cameras):
            img = np.empty((h, w, 3), np.uint8)
            sky = (yy < h // 2)
            img[..., 0] = np.where(sky, 90 + yy, 80 + (xx * (s + i + 1)) % 60)
            img[..., 1] = np.where(sky, 140 + yy // 2, 80 + (yy * 3) % 40)
            img[..., 2] = np.where(sky, 220 - yy // 3, 70 + (xx + yy) % 30)
            noise = rng.integers(0, 24, size=(h, w, 3), dtype=np.uint8)
            img = np.clip(img.astype(np.int16) + noise - 12, 0, 255).astype(np.uint8)
            lane = (np.abs(xx - (w // 2 + (yy - h) * (i - 1.5) * 0.4 + s)) < 2) & ~sky
            img[lane] = 240
            frames[cameras[i]] = img
        sets.append(frames)
    return sets


class Rig(BackgroundNode):
    """The bench-side rclpy node: camera publishers and output subscriptions (own context/executor)."""

    def __init__(self, cameras: list[str], sets: list[dict[str, np.ndarray]]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Path as PathMsg
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        from dsdrive_ros.msg import DrivingPlan

        self.cameras = cameras
        super().__init__("dsdrive_node_bench")
        self.reset_records()
        node = self.node
        # Camera drivers publish SensorData (best effort, keep last): what the node subscribes with.
        self.pubs = {
            "raw": {c: node.create_publisher(Image, f"/camera/{c}/image_raw", qos_profile_sensor_data)
                    for c in cameras},
            "compressed": {c: node.create_publisher(CompressedImage, f"/camera/{c}/image_raw/compressed",
                                                    qos_profile_sensor_data) for c in cameras},
        }
        self._build_messages(sets)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.instruction = node.create_publisher(String, "/instruction", latched)
        out = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.path_sub = node.create_subscription(PathMsg, "/dsdrive/path", self._on_path, out)
        self.plan_sub = node.create_subscription(DrivingPlan, "/dsdrive/plan", self._on_plan, out)
        self.stage_sub = node.create_subscription(String, STAGES_TOPIC, self._on_stages, out)
        node.create_subscription(String, "/dsdrive/reasoning", self._on_reasoning, out)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self._String = String

    def _build_messages(self, sets: list[dict[str, np.ndarray]]) -> None:
        """Pre-built messages (only the stamp changes when publishing): the publisher costs little."""
        from sensor_msgs.msg import CompressedImage, Image

        from dsdrive_ros.frames import fill_compressed_msg, fill_image_msg

        self.msgs = {
            "raw": [{c: fill_image_msg(Image(), f[c], "rgb8") for c in self.cameras} for f in sets],
            "compressed": [{c: fill_compressed_msg(CompressedImage(), f[c], "jpeg", 85) for c in self.cameras}
                           for f in sets],
        }
        for kind in self.msgs:
            for s in self.msgs[kind]:
                for c, m in s.items():
                    m.header.frame_id = f"camera_{c}"
        self.jpeg_bytes = float(np.mean([len(m.data) for s in self.msgs["compressed"] for m in s.values()]))
        self.raw_bytes = int(len(self.msgs["raw"][0][self.cameras[0]].data))

    # ---- executor side ----

    @staticmethod
    def _stamp(msg: Any) -> int:
        return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)

    def _on_path(self, msg: Any) -> None:
        now = time.time_ns()
        with self.lock:
            self.paths.append((self._stamp(msg), now))

    def _on_plan(self, msg: Any) -> None:
        now = time.time_ns()
        with self.lock:
            self.plans[self._stamp(msg)] = {
                "recv_ns": now, "model_latency_ms": float(msg.model_latency_ms),
                "frame_age_ms": float(msg.frame_age_ms), "frames_dropped": int(msg.frames_dropped),
                "backend": msg.backend}

    def _on_stages(self, msg: Any) -> None:
        rec = json.loads(msg.data)
        with self.lock:
            self.stages[int(rec["stamp_ns"])] = rec

    def _on_reasoning(self, msg: Any) -> None:
        with self.lock:
            self.reasoning.append((time.time_ns(), len(msg.data)))

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            if st.name == "dsdrive_node: planner":
                with self.lock:
                    self.diags.append((time.time_ns(), {kv.key: kv.value for kv in st.values}))

    def reset_records(self) -> None:
        with self.lock:
            self.paths: list[tuple[int, int]] = []
            self.plans: dict[int, dict] = {}
            self.stages: dict[int, dict] = {}
            self.reasoning: list[tuple[int, int]] = []
            self.diags: list[tuple[int, dict]] = []

    # ---- publishing side ----

    def discovered(self, transport: str) -> bool:
        return (all(p.get_subscription_count() > 0 for p in self.pubs[transport].values())
                and self.path_sub.get_publisher_count() > 0 and self.plan_sub.get_publisher_count() > 0
                and self.stage_sub.get_publisher_count() > 0)

    def send_instruction(self, text: str) -> None:
        self.instruction.publish(self._String(data=text))

    def publish_set(self, transport: str, i: int) -> int:
        msgs = self.msgs[transport][i % len(self.msgs[transport])]
        stamp = time.time_ns()
        sec, nsec = divmod(stamp, 1_000_000_000)
        for c in self.cameras:
            m = msgs[c]
            m.header.stamp.sec, m.header.stamp.nanosec = sec, nsec
            self.pubs[transport][c].publish(m)
        return stamp

    def stream(self, transport: str, rate_hz: float, n: int) -> list[int]:
        """n camera sets at rate_hz (rate_hz <= 0: back to back); returns their stamps."""
        stamps = []
        period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        t0 = time.monotonic()
        for i in range(n):
            if period:
                delay = t0 + i * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            stamps.append(self.publish_set(transport, i))
        return stamps

    def wait_quiet(self, quiet_s: float = 0.6, timeout: float = 8.0) -> None:
        """Until no Path arrived for quiet_s (the node has drained)."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            with self.lock:
                n = len(self.paths)
            if n == last:
                return
            last = n
            time.sleep(quiet_s)

    def latest_diag(self, after_ns: int, timeout: float = 3.0) -> dict:
        def get():
            with self.lock:
                for t, v in reversed(self.diags):
                    if t > after_ns:
                        return v
            return None
        self.wait_for(lambda: get() is not None, timeout)
        return get() or {}

    def set_params(self, **values: Any) -> list[bool]:
        from rclpy.parameter import Parameter
        from rclpy.parameter_client import AsyncParameterClient

        client = AsyncParameterClient(self.node, "dsdrive_node")
        if not client.wait_for_services(timeout_sec=20.0):
            return [False]
        fut = client.set_parameters([Parameter(k.replace("__", "."), value=v) for k, v in values.items()])
        self.wait_for(fut.done, 20.0)
        res = fut.result()
        return [r.successful for r in res.results] if res is not None else [False]


def start_node(model_dir: Path, workdir: Path, params: dict[str, str], env: dict[str, str]) -> NodeProcess:
    """bench/node_probe.py (dsdrive_node + stage timing) as a subprocess."""
    return NodeProcess(model_dir, workdir, [f"{k}:={v}" for k, v in params.items()], PARAMS_FILE,
                       module=str(PROBE), env=env,
                       log_name=f"node_{params.get('backend', '')}_{params.get('image_transport', '')}.log")

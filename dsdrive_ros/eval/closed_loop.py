"""The simulator as a ROS 2 bridge to the real dsdrive_node (lock-step), and the node's process.

`RosBridgePolicy` (a `Policy` of sim/episode.py) does, every model step:

  1. stamp = the frame's sim time mapped to ROS time: route k starts at `1000 s + k * 10000 s`
     (strictly increasing across routes; the gap between routes is more than the node's
     stale_after_ms, so the node sees a discontinuity and clears the model's frame history);
  2. publishes /clock (rosgraph_msgs/Clock = stamp; the node runs with use_sim_time, so its
     frame_age_ms is measured in sim time), `odom` (nav_msgs/Odometry: pose in frame "map" = SUMO's
     world frame, twist.linear.x = speed, child_frame_id base_link), `instruction` (std_msgs/String,
     reliable + transient_local, only when it changes), then the cameras on
     `camera/<name>/image_raw` (rgb8) or `.../compressed` (jpeg), all with header.stamp = stamp;
  3. waits (bounded, `plan_timeout`) for the node's `dsdrive/path` whose header.stamp == stamp. The
     sim does not advance until that plan arrives. On a timeout the step counts as a missed plan and
     the last plan is reused (moved into the current base_link with the ego's motion since);
  4. turns the waypoints into control with LMDrive's PID (policies/controller.py).
A late plan (for an older stamp) is ignored. `dsdrive/plan` (DrivingPlan) is recorded too, for the end
flag and to check that the node planned with the instruction the sim had sent.

Before the first route the bridge waits for discovery (the node's subscriptions to every input and
its Path publisher) and then sends warm-up frames (stamps before the route, black images) until one
comes back, so that the first real frame does not pay for DDS matching or the runtime's warm-up.

`NodeProcess` starts ``python -m dsdrive_ros.node.dsdrive_node --ros-args --params-file ... -p
model_dir:=...`` in its own process (cwd outside the source tree, so that the colcon-installed
dsdrive_ros with dsdrive_ros.msg is imported), like dsdrive-replay does.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Optional, Sequence

import numpy as np

from ..node.background import BackgroundNode
from ..node.process import NodeProcess
from ..policies.waypoint_policies import WaypointPolicy
from ..policies.controller import PIDParams

__all__ = ["RosBridgePolicy", "NodeProcess", "ROUTE_TIME_BASE_S",
           "ROUTE_TIME_SPACING_S"]

ROUTE_TIME_BASE_S = 1000.0
ROUTE_TIME_SPACING_S = 10000.0
_WARMUP_OFFSET_S = 100.0  # warm-up frames are stamped this long before the route's start


def _stamp(msg_stamp: Any, ns: int) -> None:
    msg_stamp.sec = int(ns // 1_000_000_000)
    msg_stamp.nanosec = int(ns % 1_000_000_000)


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class RosBridgePolicy(WaypointPolicy):
    """Lock-step bridge: sim frame -> ROS topics -> dsdrive_node -> dsdrive/path -> PID -> Control."""

    name = "model"

    def __init__(self, cameras: Sequence[str], dt: float = 0.5, count: int = 5, *,
                 transport: str = "raw", jpeg_quality: int = 90, plan_timeout: float = 2.0,
                 startup_timeout: float = 300.0, node: Optional[NodeProcess] = None,
                 pid: Optional[PIDParams] = None, record_plans: bool = True,
                 node_name: str = "dsdrive_sim_bridge") -> None:
        super().__init__(dt, count, pid)
        if transport not in ("raw", "compressed"):
            raise ValueError(f"transport must be raw or compressed, got {transport!r}")
        self.cameras = list(cameras)
        self.transport = transport
        self.jpeg_quality = int(jpeg_quality)
        self.plan_timeout = float(plan_timeout)
        self.startup_timeout = float(startup_timeout)
        self.node_proc = node
        self.route_index = -1
        self._ready = False
        self._cond = threading.Condition()
        self._paths: dict[int, np.ndarray] = {}
        self._plans: dict[int, dict] = {}
        self._instruction: Optional[str] = None
        self._init_ros(node_name, record_plans)

    # ---------------------------------------------------------------------------------- ROS
    def _init_ros(self, node_name: str, record_plans: bool) -> None:
        from nav_msgs.msg import Odometry, Path as PathMsg
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        from dsdrive_ros.node.topics import TOPICS, camera_topic

        self._Image, self._CompressedImage = Image, CompressedImage
        self._Odometry, self._String, self._Clock = Odometry, String, Clock
        self.ros = BackgroundNode(node_name)
        self.node = self.ros.node
        reliable1 = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                               reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.VOLATILE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        outputs = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
        msg_type = CompressedImage if self.transport == "compressed" else Image
        # reliable publishers also feed best-effort subscriptions (the node's default camera QoS)
        self.pub_cam = {c: self.node.create_publisher(msg_type, camera_topic(c, self.transport),
                                                      reliable1) for c in self.cameras}
        self.pub_ins = self.node.create_publisher(String, TOPICS["instruction"], latched)
        self.pub_odom = self.node.create_publisher(Odometry, TOPICS["odom"], reliable1)
        self.pub_clock = self.node.create_publisher(Clock, "/clock", reliable1)
        self.sub_path = self.node.create_subscription(PathMsg, TOPICS["path"], self._on_path, outputs)
        self.sub_plan = None
        if record_plans:
            try:
                from dsdrive_ros.msg import DrivingPlan

                self.sub_plan = self.node.create_subscription(DrivingPlan, TOPICS["plan"],
                                                              self._on_plan, outputs)
            except ImportError:  # message package not built: Path alone is enough to drive
                self.sub_plan = None

    def _on_path(self, msg: Any) -> None:
        ns = _stamp_ns(msg.header.stamp)
        wp = np.array([[p.pose.position.x, p.pose.position.y] for p in msg.poses], dtype=np.float64)
        with self._cond:
            self._paths[ns] = wp.reshape(-1, 2)
            if len(self._paths) > 64:
                for k in sorted(self._paths)[:-32]:
                    del self._paths[k]
            self._cond.notify_all()

    def _on_plan(self, msg: Any) -> None:
        ns = _stamp_ns(msg.header.stamp)
        rec = {"instruction": str(msg.instruction), "end_probability": float(msg.end_probability),
               "end": bool(msg.end_of_instruction), "latency_ms": float(msg.model_latency_ms),
               "reasoning": str(msg.reasoning)}
        with self._cond:
            self._plans[ns] = rec
            if len(self._plans) > 64:
                for k in sorted(self._plans)[:-32]:
                    del self._plans[k]
            self._cond.notify_all()

    def close(self) -> None:
        self.ros.close()

    # ----------------------------------------------------------------------------- publishing
    def _publish_frame(self, stamp_ns: int, images: dict[str, np.ndarray], pose, speed: float,
                       instruction: Optional[str]) -> None:
        from dsdrive_ros.frames import fill_compressed_msg, fill_image_msg

        clk = self._Clock()
        _stamp(clk.clock, stamp_ns)
        self.pub_clock.publish(clk)
        od = self._Odometry()
        _stamp(od.header.stamp, stamp_ns)
        od.header.frame_id = "map"
        od.child_frame_id = "base_link"
        x, y, yaw = pose
        od.pose.pose.position.x, od.pose.pose.position.y = float(x), float(y)
        od.pose.pose.orientation.z = math.sin(0.5 * yaw)
        od.pose.pose.orientation.w = math.cos(0.5 * yaw)
        od.twist.twist.linear.x = float(speed)
        self.pub_odom.publish(od)
        if instruction is not None and instruction != self._instruction:
            self.pub_ins.publish(self._String(data=instruction))
            self._instruction = instruction
        for name in self.cameras:
            rgb = images[name]
            if self.transport == "compressed":
                msg = fill_compressed_msg(self._CompressedImage(), rgb, "jpeg", self.jpeg_quality)
            else:
                msg = fill_image_msg(self._Image(), rgb, "rgb8")
            _stamp(msg.header.stamp, stamp_ns)
            msg.header.frame_id = f"camera_{name}"
            self.pub_cam[name].publish(msg)

    def _wait_plan(self, stamp_ns: int, timeout: float) -> Optional[np.ndarray]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while stamp_ns not in self._paths:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))
                if self.node_proc is not None and not self.node_proc.alive():
                    raise RuntimeError("dsdrive_node exited:\n" + self.node_proc.log_tail())
            return self._paths[stamp_ns]

    def _plan_record(self, stamp_ns: int, wait_s: float = 0.2) -> Optional[dict]:
        """The DrivingPlan of this stamp (published right after the Path): briefly waited for."""
        if self.sub_plan is None:
            return None
        deadline = time.monotonic() + wait_s
        with self._cond:
            while stamp_ns not in self._plans and time.monotonic() < deadline:
                self._cond.wait(0.02)
            return self._plans.get(stamp_ns)

    # ------------------------------------------------------------------------------ readiness
    def wait_ready(self, shapes: dict[str, tuple[int, int]]) -> None:
        """Discovery (node subscribed to every input, Path publisher seen), then warm-up frames
        until one plan comes back."""
        t0 = time.monotonic()
        deadline = t0 + self.startup_timeout

        def check_node() -> None:
            if self.node_proc is not None and not self.node_proc.alive():
                raise RuntimeError("dsdrive_node exited during startup:\n" + self.node_proc.log_tail())

        pubs = list(self.pub_cam.values()) + [self.pub_ins, self.pub_odom]
        while True:
            check_node()
            if (all(p.get_subscription_count() > 0 for p in pubs)
                    and self.sub_path.get_publisher_count() > 0):
                break
            if time.monotonic() > deadline:
                missing = [p.topic_name for p in pubs if p.get_subscription_count() == 0]
                raise TimeoutError(f"dsdrive_node did not subscribe within {self.startup_timeout:.0f} s"
                                   f" (no subscriber on {missing}):\n"
                                   + (self.node_proc.log_tail() if self.node_proc else ""))
            time.sleep(0.1)
        self.discovery_s = time.monotonic() - t0
        images = {c: np.zeros((h, w, 3), np.uint8) for c, (h, w) in shapes.items()}
        base = int((ROUTE_TIME_BASE_S - _WARMUP_OFFSET_S) * 1e9)
        k = 0
        while True:
            check_node()
            ns = base + k * 100_000_000
            self._publish_frame(ns, images, (0.0, 0.0, 0.0), 0.0, None)
            if self._wait_plan(ns, 2.0) is not None:
                break
            k += 1
            if time.monotonic() > deadline:
                raise TimeoutError("dsdrive_node subscribed but published no plan for warm-up frames "
                                   f"within {self.startup_timeout:.0f} s:\n"
                                   + (self.node_proc.log_tail() if self.node_proc else ""))
        self.warmup_frames = k + 1
        self.startup_s = time.monotonic() - t0
        self._ready = True

    # ---------------------------------------------------------------------------------- agent
    def reset(self, info) -> None:
        super().reset(info)
        self.route_index += 1
        self._base_ns = int((ROUTE_TIME_BASE_S + self.route_index * ROUTE_TIME_SPACING_S) * 1e9)
        self.stats.update({"plans": 0, "missed": 0, "instruction_mismatch": 0, "end_predicted": 0,
                           "end_true": 0, "unrendered": 0, "latency_ms": [], "model_latency_ms": []})
        self.reasoning: list[dict] = []
        if not self._ready:
            shapes = {c.name: (c.height, c.width) for c in info.rig.cameras if c.name in self.cameras}
            missing = [c for c in self.cameras if c not in shapes]
            if missing:
                raise ValueError(f"the episode's camera rig lacks the model's cameras {missing}")
            self.wait_ready(shapes)

    def plan(self, state, images: dict) -> np.ndarray:
        pose = (state.x, state.y, state.yaw)
        if not images or any(c not in images for c in self.cameras):
            # Episode.run() calls act() once more on an unrendered frame after the route ended
            self.stats["unrendered"] = self.stats.get("unrendered", 0) + 1
            return self._reuse(pose)
        stamp_ns = self._base_ns + int(round(state.t * 1e9))
        t0 = time.monotonic()
        self._publish_frame(stamp_ns, images, pose, state.speed, state.instruction)
        wp = self._wait_plan(stamp_ns, self.plan_timeout)
        if state.end:
            self.stats["end_true"] += 1
        if wp is not None and len(wp) >= 2 and np.all(np.isfinite(wp)):
            self.stats["plans"] += 1
            self.stats["latency_ms"].append((time.monotonic() - t0) * 1000.0)
            self._keep(wp, pose)
            rec = self._plan_record(stamp_ns)
            if rec is not None:
                self.stats["model_latency_ms"].append(rec["latency_ms"])
                if rec["instruction"].strip() != state.instruction.strip():
                    self.stats["instruction_mismatch"] += 1
                if rec["end"]:
                    self.stats["end_predicted"] += 1
                if rec["reasoning"] and (not self.reasoning
                                         or self.reasoning[-1]["text"] != rec["reasoning"]):
                    self.reasoning.append({"t": state.t, "text": rec["reasoning"]})
            return wp
        self.stats["missed"] += 1
        return self._reuse(pose)

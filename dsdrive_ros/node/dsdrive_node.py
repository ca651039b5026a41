"""dsdrive_node: cameras + instruction (+ odom) -> dsdrive/path, dsdrive/plan, dsdrive/reasoning.

Thin rclpy wiring around ``PlanningCore`` / ``ReasoningWorker`` (node/core.py, ROS-free):

  executor thread   camera/<name>/image_raw[/compressed], instruction, odom callbacks: decode,
                    validate, hand to the core (never block); /diagnostics timer.
  planning thread   takes the newest complete camera set (older ones are dropped, counted),
                    runs the planner, publishes Path + DrivingPlan, hands reasoner_kv to ...
  reasoning thread  latest-only, rate-limited text generation -> dsdrive/reasoning. A Path is never
                    delayed by text generation.

Bad input (undecodable or wrong-size image, NaN odometry, non-UTF-8 instruction) is dropped with a
throttled warning and counted in /diagnostics; the node keeps running. SIGINT/SIGTERM stop it
cleanly. Run:  python -m dsdrive_ros.node.dsdrive_node --ros-args --params-file
config/dsdrive.params.yaml -p model_dir:=build/models/random-tiny
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Optional, Sequence

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from dsdrive_ros.frames import ImageDecodeError, compressed_from_msg, image_from_msg
from dsdrive_ros.node import qos as dqos
from dsdrive_ros.node.core import PlanningCore, ReasoningWorker
from dsdrive_ros.node.diagnostics import DiagnosticsState, evaluate, to_msg
from dsdrive_ros.node.params import (
    ConfigError,
    NodeConfig,
    check_cameras,
    declare_parameters,
    load_config,
    validate_update,
)
from dsdrive_ros.outputs.fill import fill_path, fill_plan, fill_reasoning, time_to_ns
from dsdrive_ros.outputs.parse import PlanParseError

__all__ = ["DSDriveNode", "main", "camera_topic", "TOPICS"]

NODE_NAME = "dsdrive_node"
TOPICS = {
    "path": "dsdrive/path",
    "plan": "dsdrive/plan",
    "reasoning": "dsdrive/reasoning",
    "diagnostics": "/diagnostics",
    "instruction": "instruction",
    "odom": "odom",
}
_THROTTLE_S = 2.0


def camera_topic(name: str, transport: str = "raw") -> str:
    base = f"camera/{name}/image_raw"
    return base + "/compressed" if transport == "compressed" else base


def load_model(cfg: NodeConfig) -> tuple[Any, Any, str]:
    """(spec, PlannerSession, backend name) for the configured model directory and backend."""
    from dsdrive_ros.runners import ModelSpec, PlannerSession, load_tokenizer, make_runner

    spec = ModelSpec.load(cfg.model_dir)
    check_cameras(cfg.cameras, spec.cameras)  # fail before the (possibly slow) runner build
    runner = make_runner(spec, backend=cfg.backend, precision=cfg.precision,
                         engine_cache_dir=cfg.engine_cache_dir or None)
    session = PlannerSession(spec, runner, load_tokenizer(spec))
    return spec, session, str(getattr(runner, "name", cfg.backend))


class DSDriveNode(Node):
    def __init__(self, *, node_name: str = NODE_NAME, model: Optional[tuple[Any, Any, str]] = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        self.cfg = load_config(self)  # ConfigError: clear message, main() exits 2
        log = self.get_logger()

        t0 = time.monotonic()
        spec, session, backend = model if model is not None else load_model(self.cfg)
        cameras = check_cameras(self.cfg.cameras, spec.cameras)
        self.spec = spec
        self.cameras = cameras
        self.core = PlanningCore(spec, session, backend=backend, cameras=cameras,
                                 anchor=self.cfg.anchor or cameras[0],
                                 max_skew_ms=self.cfg.max_camera_skew_ms,
                                 stale_after_ms=self.cfg.stale_after_ms)
        log.info(f"model {self.cfg.model_dir} loaded in {time.monotonic() - t0:.1f} s on {backend}; "
                 f"cameras {cameras} ({self.cfg.image_transport}), anchor {self.core.anchor}")

        # DrivingPlan comes from the colcon build (rosidl); without it the package is not built.
        try:
            from dsdrive_ros.msg import DrivingPlan
        except ImportError as exc:
            raise ConfigError(
                f"cannot import dsdrive_ros.msg.DrivingPlan ({exc}): build the package "
                "(`make build`) and source scripts/ros_env.sh") from exc
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry, Path
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        self._DrivingPlan = DrivingPlan
        out_qos = dqos.output_qos()
        self.pub_path = self.create_publisher(Path, TOPICS["path"], out_qos)
        self.pub_plan = self.create_publisher(DrivingPlan, TOPICS["plan"], out_qos)
        self.pub_reasoning = self.create_publisher(String, TOPICS["reasoning"], out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, TOPICS["diagnostics"],
                                              dqos.diagnostics_qos())

        self.reasoner = ReasoningWorker(
            self._generate, self._on_reasoning, max_tokens=self.cfg.reasoning_max_tokens,
            max_rate_hz=self.cfg.reasoning_max_rate_hz, on_error=self._on_reasoning_error)
        self.reasoner.enabled = bool(self.cfg.reasoning_enabled)
        self._published = {"path": 0, "plan": 0, "reasoning": 0}
        self._pub_lock = threading.Lock()
        self._diag_state = DiagnosticsState()

        # Callbacks: inputs and the diagnostics timer in separate groups (a slow decode never
        # delays /diagnostics when a multi-threaded executor is used).
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        cam_qos = dqos.camera_qos(self.cfg.qos_reliability, self.cfg.qos_depth)
        compressed = self.cfg.image_transport == "compressed"
        self._subs = []
        for name in cameras:
            self._subs.append(self.create_subscription(
                CompressedImage if compressed else Image, camera_topic(name, self.cfg.image_transport),
                self._make_camera_cb(name, compressed), cam_qos, callback_group=self._input_group))
        self._subs.append(self.create_subscription(
            String, TOPICS["instruction"], self._on_instruction, dqos.instruction_qos(),
            callback_group=self._input_group))
        self._subs.append(self.create_subscription(
            Odometry, TOPICS["odom"], self._on_odom, dqos.odom_qos(), callback_group=self._input_group))
        # Steady clock: /diagnostics keeps coming under use_sim_time even when /clock stops.
        self._diag_timer = self.create_timer(self.cfg.diagnostics_period_s, self._publish_diagnostics,
                                             callback_group=self._timer_group,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))

        self.add_on_set_parameters_callback(self._on_set_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):
            self.add_post_set_parameters_callback(self._apply_parameters)

        self._stop = threading.Event()
        self._planning_thread = threading.Thread(target=self._planning_loop, name="dsdrive-planning",
                                                 daemon=True)
        self._planning_thread.start()
        self.reasoner.start()

    # ---- inputs ----

    def _make_camera_cb(self, name: str, compressed: bool):
        decode = compressed_from_msg if compressed else image_from_msg
        core = self.core
        log = self.get_logger()

        def on_image(msg: Any) -> None:
            try:
                rgb = decode(msg)
            except (ImageDecodeError, ValueError, TypeError) as exc:
                core.on_bad_frame(name, str(exc))
                log.warning(f"camera {name}: dropped a bad frame: {exc}", throttle_duration_sec=_THROTTLE_S)
                return
            try:
                core.on_frame(name, time_to_ns(msg.header.stamp), rgb)
            except Exception as exc:  # noqa: BLE001 - never let a callback kill the executor
                core.on_bad_frame(name, str(exc))
                log.warning(f"camera {name}: frame rejected: {exc}", throttle_duration_sec=_THROTTLE_S)

        return on_image

    def _on_instruction(self, msg: Any) -> None:
        text = msg.data
        if "\ufffd" in text or "\x00" in text:
            self.core.counters.inc("bad_instruction")
            self.get_logger().warning("instruction is not valid UTF-8 text: dropped",
                                      throttle_duration_sec=_THROTTLE_S)
            return
        if self.core.set_instruction(text):
            self.get_logger().info(f"instruction: {text.strip()!r}")

    def _on_odom(self, msg: Any) -> None:
        v = msg.twist.twist.linear
        try:
            speed = float((v.x * v.x + v.y * v.y) ** 0.5)
        except (TypeError, ValueError):
            speed = float("nan")
        if not self.core.set_speed(speed):
            self.get_logger().warning(f"odom: unusable speed ({v.x}, {v.y}): dropped",
                                      throttle_duration_sec=_THROTTLE_S)

    # ---- planning thread ----

    def _planning_loop(self) -> None:
        log = self.get_logger()
        while not self._stop.is_set():
            pending = self.core.next_set(0.2)
            if pending is None:
                continue
            try:
                out, raw = self.core.plan(pending)
            except PlanParseError as exc:
                log.warning(f"model output rejected (nothing published): {exc}",
                            throttle_duration_sec=_THROTTLE_S)
                continue
            except Exception as exc:  # noqa: BLE001 - counted; /diagnostics shows ERROR
                log.error(f"inference failed: {type(exc).__name__}: {exc}",
                          throttle_duration_sec=_THROTTLE_S)
                continue
            if self._stop.is_set():
                break
            out.frame_age_ms = (self.get_clock().now().nanoseconds - out.stamp_ns) / 1e6
            out.reasoning = self.reasoner.last_text if self.reasoner.enabled else ""
            try:
                path = fill_path(out)
                plan = fill_plan(out, self._DrivingPlan(), path=path)
                self.pub_path.publish(path)
                self.pub_plan.publish(plan)
            except Exception as exc:  # noqa: BLE001 - e.g. publishing during shutdown
                if self._stop.is_set():
                    break
                log.error(f"publishing the plan failed: {exc}", throttle_duration_sec=_THROTTLE_S)
                continue
            with self._pub_lock:
                self._published["path"] += 1
                self._published["plan"] += 1
            if self.reasoner.enabled:
                self.reasoner.submit(raw, out.stamp_ns)

    # ---- reasoning thread ----

    def _generate(self, raw: dict, max_tokens: int) -> str:
        return self.core.session.reason(raw, max_tokens=max_tokens)

    def _on_reasoning(self, text: str, stamp_ns: int, gen_ms: float) -> None:
        if self._stop.is_set():
            return
        self.pub_reasoning.publish(fill_reasoning(text))
        with self._pub_lock:
            self._published["reasoning"] += 1

    def _on_reasoning_error(self, exc: BaseException) -> None:
        self.get_logger().warning(f"reasoning failed: {type(exc).__name__}: {exc}",
                                  throttle_duration_sec=_THROTTLE_S)

    # ---- diagnostics ----

    def _publish_diagnostics(self) -> None:
        try:
            with self._pub_lock:
                published = dict(self._published)
            extra = {
                "published.path": published["path"],
                "published.reasoning": published["reasoning"],
                "reasoning.enabled": self.reasoner.enabled,
                "reasoning.texts": self.reasoner.counters.get("texts"),
                "reasoning.skipped": self.reasoner.counters.get("skipped"),
                "reasoning.errors": self.reasoner.counters.get("errors"),
                "reasoning.latency_p50_ms": self.reasoner.latency.p50,
                "image_transport": self.cfg.image_transport,
            }
            statuses = evaluate(self.core.snapshot(), self.core.stale_after_ms, self._diag_state, extra)
            self.pub_diag.publish(to_msg(statuses, self.get_clock().now().to_msg()))
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"diagnostics failed: {exc}", throttle_duration_sec=_THROTTLE_S)

    # ---- parameters ----

    def _on_set_parameters(self, params: Sequence[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        for p in params:
            reason = validate_update(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        if not hasattr(self, "add_post_set_parameters_callback"):
            self._apply_parameters(params)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: Sequence[Any]) -> None:
        for p in params:
            if p.name == "max_camera_skew_ms":
                self.core.set_limits(max_skew_ms=p.value)
            elif p.name == "stale_after_ms":
                self.core.set_limits(stale_after_ms=p.value)
            elif p.name == "reasoning.enabled":
                self.reasoner.enabled = bool(p.value)
            elif p.name == "reasoning.max_tokens":
                self.reasoner.max_tokens = int(p.value)
            elif p.name == "reasoning.max_rate_hz":
                self.reasoner.max_rate_hz = float(p.value)

    # ---- shutdown ----

    def stop(self) -> None:
        """Stop the worker threads (idempotent). Call before destroy_node()."""
        self._stop.set()
        self.core.slot.close()
        self.reasoner.stop()
        if self._planning_thread.is_alive():
            self._planning_thread.join(5.0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv if argv is None else argv)
    rclpy.init(args=args)
    node: Optional[DSDriveNode] = None
    try:
        try:
            node = DSDriveNode()
        except ConfigError as exc:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"configuration error: {exc}")
            return 2
        except Exception as exc:  # noqa: BLE001 - model load failure etc.: say what and exit
            rclpy.logging.get_logger(NODE_NAME).fatal(
                f"startup failed: {type(exc).__name__}: {exc}")
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.get_logger().info("shutting down")
            node.stop()
            executor.shutdown(timeout_sec=1.0)
        return 0
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())

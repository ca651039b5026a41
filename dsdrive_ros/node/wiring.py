"""The wiring both node executables share (rclpy): the Planner (dsdrive_ros.planner, ROS-free) between
subscriptions and publishers.

  executor thread   camera/<name>/image_raw[/compressed], instruction, odom callbacks: message ->
                    Planner (which checks, decodes lazily and never blocks); /diagnostics timer.
  planning thread   ``Planner.plan_next`` (the newest complete camera set), then Path + DrivingPlan +
                    MarkerArray (+ debug image) published and the step handed to reasoning.
  reasoning thread  the Planner's ReasoningWorker -> dsdrive/reasoning(_stamped).

``PlannerNodeMixin``: ``_planner_init()`` once in __init__; ``_build_planner(cfg)`` loads the model and
creates the Planner, publishers, /diagnostics timer and threads; ``_open_inputs()`` /
``_close_inputs()`` create / destroy the subscriptions; ``_teardown_planner()`` undoes the build.
``_active`` gates publishing (False: /diagnostics says "inactive"). Bench hooks: ``_publish`` (one
planned step out) and ``_diagnostic_values`` can be extended by a subclass; the Planner's
``frame_timer`` and ``PlanOutput.timings`` carry the stage times.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Sequence

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType

from dsdrive_ros.frames.reduce import FrameReducer
from dsdrive_ros.node import qos as dqos
from dsdrive_ros.node.diagnostics import Reporter, to_msg
from dsdrive_ros.node.params import (
    ConfigError,
    NodeConfig,
    check_cameras,
    check_reasoning_tokens,
    validate_update,
)
from dsdrive_ros.node.qos_events import QosEventsMixin
from dsdrive_ros.node.topics import TOPICS, camera_topic
from dsdrive_ros.outputs.fill import fill_path, fill_plan, fill_reasoning, fill_reasoning_stamped, time_to_ns
from dsdrive_ros.outputs.markers import fill_markers
from dsdrive_ros.planner.inputs import THROTTLE_S, PlannerLog
from dsdrive_ros.planner.load import gpu_preprocessor, load_session
from dsdrive_ros.planner.planner import Planner
from dsdrive_ros.planner.types import PlanStep

if TYPE_CHECKING:
    from dsdrive_ros.runners.session import PlannerSession
    from dsdrive_ros.runners.spec import ModelSpec

__all__ = ["LoadedModel", "PlannerNodeMixin", "load_model"]


class LoadedModel(NamedTuple):
    spec: ModelSpec
    session: PlannerSession
    backend: str  # the runner's name


def load_model(cfg: NodeConfig, log: Callable[[str], None]) -> LoadedModel:
    """The configured model directory on the configured backend (``log``: auto's choice)."""
    from dsdrive_ros.runners import ModelSpec

    spec = ModelSpec.load(cfg.model_dir)
    check_cameras(cfg.cameras, spec.cameras)  # fail before the (possibly slow) runner build
    too_long = check_reasoning_tokens(cfg.reasoning_max_tokens, spec.max_reasoning_tokens)
    if too_long:
        raise ConfigError(too_long)
    session, backend = load_session(spec, cfg.backend, cfg.precision, cfg.engine_cache_dir or None,
                                    device=cfg.device, log=log)
    return LoadedModel(spec, session, backend)


class PlannerNodeMixin(QosEventsMixin):
    """Mix into an rclpy Node (``DSDriveNode``, ``DSDriveLifecycleNode``)."""

    reasoning_nice = 10  # the reasoning thread's niceness increment (ReasoningWorker)

    def _planner_init(self) -> None:
        self._built = False
        self._active = False
        self._inactive_reason = "not configured"
        self._stop = threading.Event()
        self._subs: list[Any] = []
        self._pubs: list[Any] = []
        self._diag_timer: Any = None
        self._planning_thread: Optional[threading.Thread] = None
        self._camera_qos: dict[str, str] = {}
        self._lifecycle_pubs = False

    def _build_planner(self, cfg: NodeConfig, model: Optional[LoadedModel] = None, *,
                       lifecycle: bool = False) -> None:
        """Load the model (slow) and create everything but the subscriptions."""
        log = self.get_logger()
        self.cfg = cfg
        t0 = time.monotonic()
        spec, session, backend = model if model is not None else load_model(cfg, log.info)
        cameras = check_cameras(cfg.cameras, spec.cameras)
        self.spec = spec
        self.cameras = cameras
        clock = self.get_clock()
        preprocessor = (gpu_preprocessor(spec, getattr(session, "runner", None), cameras, log.warning)
                        if cfg.preprocess_on_gpu else None)
        self.planner = Planner(spec, session, backend=backend, cameras=cameras, preprocessor=preprocessor,
                               anchor=cfg.anchor or cameras[0], max_skew_ms=cfg.max_camera_skew_ms,
                               stale_after_ms=cfg.stale_after_ms, max_frame_age_ms=cfg.max_frame_age_ms,
                               drop_implausible=cfg.drop_implausible_plans, plausibility=cfg.plausibility,
                               stamp_clock=lambda: clock.now().nanoseconds,
                               log=PlannerLog(log.info, log.warning, log.error))
        log.info(f"model {cfg.model_dir} loaded in {time.monotonic() - t0:.1f} s on {backend}; "
                 f"cameras {cameras} ({cfg.image_transport}), anchor {self.planner.anchor}")

        # DrivingPlan comes from the colcon build (rosidl); without it the package is not built.
        try:
            from dsdrive_ros.msg import DrivingPlan, Reasoning
        except ImportError as exc:
            raise ConfigError(
                f"cannot import dsdrive_ros.msg.DrivingPlan ({exc}): build the package "
                "(`make build`) and source scripts/ros_env.sh") from exc
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Path
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from visualization_msgs.msg import MarkerArray

        self._DrivingPlan = DrivingPlan
        self._lifecycle_pubs = lifecycle
        out_qos = dqos.output_qos()
        make_pub = self.create_lifecycle_publisher if lifecycle else self.create_publisher

        def pub(msg_type: Any, key: str) -> Any:
            p = make_pub(msg_type, TOPICS[key], out_qos, event_callbacks=self._pub_events(TOPICS[key], out_qos))
            self._pubs.append(p)
            return p

        self.pub_path = pub(Path, "path")
        self.pub_plan = pub(DrivingPlan, "plan")
        self.pub_reasoning = pub(String, "reasoning")
        self.pub_reasoning_stamped = pub(Reasoning, "reasoning_stamped")
        self.pub_markers = pub(MarkerArray, "markers")
        self.pub_debug_image = pub(Image, "debug_image") if cfg.debug_image_enabled else None
        # /diagnostics is a plain publisher in both variants: an inactive node still reports.
        self.pub_diag = self.create_publisher(DiagnosticArray, TOPICS["diagnostics"], dqos.diagnostics_qos())
        self._published = {"path": 0, "plan": 0, "reasoning": 0}
        self._pub_lock = threading.Lock()
        self._reporter = Reporter(self.get_name(), log)

        # Callbacks: inputs and the diagnostics timer in separate groups (a slow decode never
        # delays /diagnostics when a multi-threaded executor is used).
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        # Steady clock: /diagnostics keeps coming under use_sim_time even when /clock stops.
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics,
                                             callback_group=self._timer_group,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._stop = threading.Event()
        self.planner.start_reasoning(self._on_reasoning, enabled=cfg.reasoning_enabled,
                                     max_tokens=cfg.reasoning_max_tokens, max_rate_hz=cfg.reasoning_max_rate_hz,
                                     nice=self.reasoning_nice)
        self._planning_thread = threading.Thread(target=self._planning_loop, name="dsdrive-planning",
                                                 daemon=True)
        self._planning_thread.start()
        self._built = True

    def _open_inputs(self) -> None:
        """Subscriptions: cameras, instruction, odom (with QoS event callbacks)."""
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        cfg = self.cfg
        compressed = cfg.image_transport == "compressed"
        for name in self.cameras:
            topic = camera_topic(name, cfg.image_transport)
            qos = dqos.camera_qos(cfg.qos_reliability, cfg.qos_depth)  # one each: overrides are per topic
            self._subs.append(self._subscribe(
                CompressedImage if compressed else Image, topic,
                self._make_camera_cb(name, compressed), qos, dqos.camera_qos_overrides()))
            self._camera_qos[name] = dqos.describe(qos)  # with the qos_overrides.* applied
        example = self.resolve_topic_name(camera_topic(self.cameras[0], cfg.image_transport))
        deprecated = dqos.deprecated_camera_qos(cfg.qos_reliability, cfg.qos_depth, example)
        if deprecated:
            self.get_logger().warning(deprecated)
        planner = self.planner
        self._subs.append(self._subscribe(String, TOPICS["instruction"],
                                          lambda msg: planner.on_instruction(msg.data), dqos.instruction_qos()))
        self._subs.append(self._subscribe(
            Odometry, TOPICS["odom"],
            lambda msg: planner.on_odom_velocity(msg.twist.twist.linear.x, msg.twist.twist.linear.y),
            dqos.odom_qos()))

    def _make_camera_cb(self, name: str, compressed: bool) -> Callable[[Any, Any], None]:
        # Decoded straight to the model's input size (frames/reduce.py), lazily (after the stamp
        # checks): full-resolution work in this callback overlaps with inference of the previous set.
        reducer = FrameReducer.from_spec(self.spec.image)
        decode = reducer.compressed_msg if compressed else reducer.image_msg
        planner, count_gaps = self.planner, self._seq_gap_counter(name)

        def on_image(msg: Any, info: Any) -> None:  # two parameters: rclpy passes the message info
            count_gaps(info)
            planner.on_image(name, time_to_ns(msg.header.stamp), lambda: decode(msg))

        return on_image

    def _close_inputs(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if "planner" in self.__dict__:
            self.planner.reset_inputs()

    def _teardown_planner(self) -> None:
        """Stop the threads, destroy subscriptions, publishers and the timer, drop the model.
        Safe after a partial build (a configure that failed half-way)."""
        self._active = False
        self.stop()
        self._close_inputs()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        for pub in self._pubs:
            if self._lifecycle_pubs:
                self.destroy_lifecycle_publisher(pub)
            else:
                self.destroy_publisher(pub)
        self._pubs = []
        if getattr(self, "pub_diag", None) is not None:
            self.destroy_publisher(self.pub_diag)
        for name in ("planner", "spec", "pub_path", "pub_plan", "pub_reasoning", "pub_diag"):
            if name in self.__dict__:
                delattr(self, name)
        self._built = False

    def stop(self) -> None:
        """Stop the worker threads (idempotent). Call before destroy_node()."""
        self._stop.set()
        planner = self.__dict__.get("planner")
        if planner is not None:
            planner.stop()
        if self._planning_thread is not None and self._planning_thread.is_alive():
            self._planning_thread.join(5.0)

    # ---- planning thread ----

    def _planning_loop(self) -> None:
        stop, planner = self._stop, self.planner
        while not stop.is_set():
            try:
                step = planner.plan_next(0.2)
                if step is not None and not stop.is_set() and self._active:  # else: stopping/deactivated
                    self._publish(step)
            except Exception as exc:  # noqa: BLE001 - a bug here must not end planning silently
                self.get_logger().error(f"planning loop: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=THROTTLE_S)

    def _publish(self, step: PlanStep) -> None:
        """Path, DrivingPlan, markers (and the debug image) of one step, then reasoning gets it."""
        out = step.output
        try:
            path = fill_path(out)
            plan = fill_plan(out, self._DrivingPlan(), path=path)
            self.pub_path.publish(path)
            self.pub_plan.publish(plan)
            self.pub_markers.publish(fill_markers(out))
            if self.pub_debug_image is not None:
                self._publish_debug_image(out, step.frames.frames[self.planner.anchor])
        except Exception as exc:  # noqa: BLE001 - e.g. publishing during shutdown
            if not self._stop.is_set():
                self.planner.log.warn("publish", f"publishing the plan failed: {exc}")
            return
        with self._pub_lock:
            self._published["path"] += 1
            self._published["plan"] += 1
        self.planner.explain(step)

    def _publish_debug_image(self, out: Any, rgb: Any) -> None:
        from sensor_msgs.msg import Image

        from dsdrive_ros.frames import fill_image_msg
        from dsdrive_ros.outputs.fill import ns_to_time
        from dsdrive_ros.outputs.overlay import debug_overlay

        msg = fill_image_msg(Image(), debug_overlay(rgb, out), "rgb8")
        msg.header.stamp = ns_to_time(out.stamp_ns)
        msg.header.frame_id = f"camera_{self.planner.anchor}"
        self.pub_debug_image.publish(msg)

    # ---- reasoning thread ----

    def _on_reasoning(self, text: str, stamp_ns: int, gen_ms: float) -> None:
        if self._stop.is_set() or not self._active:
            return
        self.pub_reasoning.publish(fill_reasoning(text))
        self.pub_reasoning_stamped.publish(fill_reasoning_stamped(
            text, stamp_ns=stamp_ns, frame_id=self.spec.frame_id, generation_ms=gen_ms,
            generated_ns=self.get_clock().now().nanoseconds))
        with self._pub_lock:
            self._published["reasoning"] += 1

    # ---- diagnostics ----

    def _diagnostic_values(self) -> dict[str, Any]:
        """Node-level values of the overall status (publish counts, reasoning, QoS)."""
        with self._pub_lock:
            published = dict(self._published)
        reasoner = self.planner.reasoner
        values = {
            "published.path": published["path"],
            "published.reasoning": published["reasoning"],
            "reasoning.enabled": reasoner.enabled,
            "reasoning.texts": reasoner.counters.get("texts"),
            "reasoning.skipped": reasoner.counters.get("skipped"),
            "reasoning.errors": reasoner.counters.get("errors"),
            "reasoning.latency_p50_ms": reasoner.latency.p50,
            "image_transport": self.cfg.image_transport,
            "qos_incompatible_last": self._qos_last,
            "active": self._active,
        }
        values.update({f"qos.{cam}": text for cam, text in self._camera_qos.items()})
        return values

    def _publish_diagnostics(self) -> None:
        try:
            fatal = ""
            if self._planning_thread is not None and not self._planning_thread.is_alive() \
                    and not self._stop.is_set():
                fatal = "planning thread stopped (see the log)"
            clock = self.get_clock()
            statuses = self._reporter.statuses(
                self.planner.snapshot(), self.planner.stale_after_ms, self._diagnostic_values(), fatal=fatal,
                sim_now_ns=clock.now().nanoseconds if clock.ros_time_is_active else None,
                inactive_reason=None if self._active else self._inactive_reason)
            self.pub_diag.publish(to_msg(statuses, clock.now().to_msg()))
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"diagnostics failed: {exc}", throttle_duration_sec=THROTTLE_S)

    # ---- parameters ----

    def _on_set_parameters(self, params: Sequence[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        model_max = self.spec.max_reasoning_tokens if self._built else None
        for p in params:
            reason = validate_update(p.name, p.value)
            if not reason and p.name == "reasoning.max_tokens" and model_max is not None:
                reason = check_reasoning_tokens(p.value, model_max)
            if reason:
                self.get_logger().warning(f"parameter change refused: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        if not hasattr(self, "add_post_set_parameters_callback"):
            self._apply_parameters(params)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: Sequence[Any]) -> None:
        if self._built:  # else read by load_config() when the model is loaded
            for p in params:
                self.planner.update(p.name, p.value)

    def _watch_parameters(self) -> None:
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):
            self.add_post_set_parameters_callback(self._apply_parameters)

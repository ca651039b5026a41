"""dsdrive_node: cameras + instruction (+ odom) -> dsdrive/path, dsdrive/plan, dsdrive/reasoning
(+ dsdrive/reasoning_stamped), dsdrive/markers (RViz) and, if enabled, dsdrive/debug_image.

Thin rclpy wiring around ``PlanningCore`` / ``ReasoningWorker`` (node/core.py, ROS-free):

  executor thread   camera/<name>/image_raw[/compressed], instruction, odom callbacks: decode,
                    validate, hand to the core (never block); /diagnostics timer.
  planning thread   takes the newest complete camera set (older ones are dropped, counted; so
                    is one older than max_frame_age_ms), runs the planner, publishes Path +
                    DrivingPlan + MarkerArray, hands reasoner_kv to ...
  reasoning thread  latest-only, rate-limited text generation -> dsdrive/reasoning. A Path is never
                    delayed by text generation.

The wiring lives in ``PlannerNodeMixin`` so that the plain node (``DSDriveNode``, here) and the
managed one (``dsdrive_ros.node.lifecycle_node``) share it: build (model, core, publishers,
threads), open/close inputs, teardown.

Bad input is dropped (counted in /diagnostics, one throttled WARN line per kind of problem) and
the node keeps running: undecodable images, an image smaller than 1/4 of the model's input size
per side or larger than 8192 px, a zero stamp, a stamp more than 1 s ahead of the node's clock
(camera host's clock not synchronised), NaN/inf odometry, a non-UTF-8 instruction. An empty
instruction clears it and an instruction over 1000 characters is truncated (both WARN). Endpoints
with incompatible QoS (e.g. a best-effort instruction publisher) and camera messages that never
reached the callback (gaps in the publisher's sequence numbers: lost in transport, or replaced in
the keep-last subscription queue while the node was behind) are logged and counted. A change of the overall /diagnostics level or reason is logged too.
SIGINT/SIGTERM stop it cleanly. Run:  python -m dsdrive_ros.node.dsdrive_node --ros-args
--params-file config/dsdrive.params.yaml -p model_dir:=build/models/random-tiny
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from dsdrive_ros.frames import FrameReducer, ImageDecodeError
from dsdrive_ros.node import qos as dqos
from dsdrive_ros.node.core import PlanningCore, ReasoningWorker
from dsdrive_ros.node.diagnostics import ERROR, OK, WARN, DiagnosticsState, SimSincePlan, evaluate, to_msg
from dsdrive_ros.node.params import (
    ConfigError,
    NodeConfig,
    check_cameras,
    check_reasoning_tokens,
    declare_parameters,
    load_config,
    validate_update,
)
from dsdrive_ros.node.process import STACKS_SIGNAL
from dsdrive_ros.outputs.fill import (
    fill_path,
    fill_plan,
    fill_reasoning,
    fill_reasoning_stamped,
    time_to_ns,
)
from dsdrive_ros.outputs.markers import fill_markers
from dsdrive_ros.outputs.parse import PlanParseError, spec_value

__all__ = ["DSDriveNode", "PlannerNodeMixin", "LogThrottle", "main", "run_node", "camera_topic",
           "TOPICS"]

NODE_NAME = "dsdrive_node"
TOPICS = {
    "path": "dsdrive/path",
    "plan": "dsdrive/plan",
    "reasoning": "dsdrive/reasoning",
    "reasoning_stamped": "dsdrive/reasoning_stamped",
    "markers": "dsdrive/markers",
    "debug_image": "dsdrive/debug_image",
    "diagnostics": "/diagnostics",
    "instruction": "instruction",
    "odom": "odom",
}
_THROTTLE_S = 2.0
# Longest a reasoning decode step waits for the planner to go idle (then it runs anyway: no starvation).
_REASONING_WAIT_S = 0.1
FUTURE_STAMP_TOLERANCE_S = 1.0   # a frame stamped further ahead of the node's clock is dropped
MAX_INSTRUCTION_CHARS = 1000     # longer instructions are truncated (the model reads ~24 tokens)
MIN_IMAGE_FRACTION = 0.25        # of the model's input height/width: smaller frames are dropped
# A node that failed to start must exit, so that launch and supervisors see it. If rclpy/DDS teardown
# wedges after the FATAL line, the stacks go to stderr and the process exits with code 1 this much
# later; a wedge in native exit handlers ends by SIGALRM at twice this.
FAILED_START_EXIT_S = 15.0
MAX_IMAGE_SIDE = 8192


def camera_topic(name: str, transport: str = "raw") -> str:
    base = f"camera/{name}/image_raw"
    return base + "/compressed" if transport == "compressed" else base


def load_model(cfg: NodeConfig, log: Callable[[str], None] = lambda _line: None) -> tuple[Any, Any, str]:
    """(spec, PlannerSession, backend name) for the configured model directory and backend.
    `log` gets the one line saying which backend `auto` chose and why it passed over the others."""
    from dsdrive_ros.runners import ModelSpec, PlannerSession, RunnerOptions, load_tokenizer, select_runner

    spec = ModelSpec.load(cfg.model_dir)
    check_cameras(cfg.cameras, spec.cameras)  # fail before the (possibly slow) runner build
    too_long = check_reasoning_tokens(cfg.reasoning_max_tokens, spec.max_reasoning_tokens)
    if too_long:
        raise ConfigError(too_long)
    selection = select_runner(spec, cfg.backend, RunnerOptions(cfg.precision, cfg.engine_cache_dir or None,
                                                               device=cfg.device))
    if cfg.backend == "auto":
        log(selection.summary())
    session = PlannerSession(spec, selection.runner, load_tokenizer(spec))
    return spec, session, str(getattr(selection.runner, "name", cfg.backend))


def make_preprocessor(cfg: NodeConfig, spec: Any, runner: Any, cameras: Sequence[str],
                      warn: Callable[[str], None]) -> Optional[Callable[..., Any]]:
    """The GPU preprocessor when preprocess_on_gpu is set and the runner takes device tensors (torch);
    None: PlanningCore's OpenCV one."""
    if not cfg.preprocess_on_gpu:
        return None
    device = getattr(runner, "device", None)
    if device is None:
        warn(f"preprocess_on_gpu ignored: {getattr(runner, 'name', cfg.backend)} takes host arrays "
             "(only the torch backend reads device tensors); preprocessing on the CPU")
        return None
    from dsdrive_ros.frames.preprocess_torch import TorchPreprocessor
    return TorchPreprocessor.from_spec(spec_value(spec, "image"), cameras, device)


class LogThrottle:
    """At most one log line per key per ``period_s`` (thread-safe). ``__call__`` returns None when
    the line is to be suppressed, else how many lines of that key were suppressed before it."""

    def __init__(self, period_s: float = _THROTTLE_S, max_keys: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = float(period_s)
        self._max_keys = int(max_keys)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # key -> (time logged, suppressed since)

    def __call__(self, key: str) -> Optional[int]:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.period_s:
                self._last[key] = (last[0], last[1] + 1)
                return None
            if len(self._last) >= self._max_keys:
                self._last.clear()
            self._last[key] = (now, 0)
            return 0 if last is None else last[1]


def _kind(text: str) -> str:
    """Throttle key of a message: digits folded, so '...length 123...' and '...length 456...' are
    one kind of problem while 'unsupported encoding' and 'truncated JPEG' stay separate."""
    return re.sub(r"\d+", "#", text)[:96]


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} chars)"


class PlannerNodeMixin:
    """The wiring shared by ``DSDriveNode`` and ``DSDriveLifecycleNode`` (mix into an rclpy Node).

    ``_planner_init()`` once in __init__; ``_build_planner(cfg)`` loads the model and creates the
    core, publishers, /diagnostics timer and worker threads; ``_open_inputs()`` /
    ``_close_inputs()`` create / destroy the subscriptions; ``_teardown_planner()`` undoes the
    build. ``_active`` gates publishing (False: /diagnostics says "inactive").
    """

    # ---- setup / teardown ----

    def _planner_init(self) -> None:
        self._built = False
        self._active = False
        self._inactive_reason = "not configured"
        self._stop = threading.Event()
        self._log_throttle = LogThrottle()
        self._diag_sig: Optional[tuple[int, str]] = None
        self._subs: list[Any] = []
        self._pubs: list[Any] = []
        self._diag_timer: Any = None
        self._planning_thread: Optional[threading.Thread] = None
        self._qos_last = ""
        self._camera_qos: dict[str, str] = {}
        self._sim_since_plan = SimSincePlan()
        self._lifecycle_pubs = False

    def _build_planner(self, cfg: NodeConfig, model: Optional[tuple[Any, Any, str]] = None, *,
                       lifecycle: bool = False) -> None:
        """Load the model (slow) and create everything but the subscriptions."""
        log = self.get_logger()
        self.cfg = cfg
        t0 = time.monotonic()
        spec, session, backend = model if model is not None else load_model(cfg, log.info)
        cameras = check_cameras(cfg.cameras, spec.cameras)
        self.spec = spec
        self.cameras = cameras
        self.core = PlanningCore(spec, session, backend=backend, cameras=cameras,
                                 preprocessor=make_preprocessor(cfg, spec, getattr(session, "runner", None), cameras,
                                                                log.warning),
                                 anchor=cfg.anchor or cameras[0],
                                 max_skew_ms=cfg.max_camera_skew_ms,
                                 stale_after_ms=cfg.stale_after_ms,
                                 max_frame_age_ms=cfg.max_frame_age_ms,
                                 drop_implausible=cfg.drop_implausible_plans,
                                 plausibility=cfg.plausibility)
        image = spec_value(spec, "image")
        self._min_hw = (max(1, int(image["height"] * MIN_IMAGE_FRACTION)),
                        max(1, int(image["width"] * MIN_IMAGE_FRACTION)))
        log.info(f"model {cfg.model_dir} loaded in {time.monotonic() - t0:.1f} s on {backend}; "
                 f"cameras {cameras} ({cfg.image_transport}), anchor {self.core.anchor}")

        # DrivingPlan comes from the colcon build (rosidl); without it the package is not built.
        try:
            from dsdrive_ros.msg import DrivingPlan
        except ImportError as exc:
            raise ConfigError(
                f"cannot import dsdrive_ros.msg.DrivingPlan ({exc}): build the package "
                "(`make build`) and source scripts/ros_env.sh") from exc
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Path
        from std_msgs.msg import String

        self._DrivingPlan = DrivingPlan
        self._lifecycle_pubs = lifecycle
        out_qos = dqos.output_qos()
        make_pub = self.create_lifecycle_publisher if lifecycle else self.create_publisher
        self.pub_path = make_pub(Path, TOPICS["path"], out_qos,
                                 event_callbacks=self._pub_events(TOPICS["path"], out_qos))
        self._pubs.append(self.pub_path)
        self.pub_plan = make_pub(DrivingPlan, TOPICS["plan"], out_qos,
                                 event_callbacks=self._pub_events(TOPICS["plan"], out_qos))
        self._pubs.append(self.pub_plan)
        self.pub_reasoning = make_pub(String, TOPICS["reasoning"], out_qos,
                                      event_callbacks=self._pub_events(TOPICS["reasoning"], out_qos))
        self._pubs.append(self.pub_reasoning)
        self._make_view_publishers(make_pub, out_qos)
        # /diagnostics is a plain publisher in both variants: an inactive node still reports.
        self.pub_diag = self.create_publisher(DiagnosticArray, TOPICS["diagnostics"],
                                              dqos.diagnostics_qos())

        self.reasoner = ReasoningWorker(
            self._generate, self._on_reasoning, max_tokens=cfg.reasoning_max_tokens,
            max_rate_hz=cfg.reasoning_max_rate_hz, on_error=self._on_reasoning_error)
        self.reasoner.enabled = bool(cfg.reasoning_enabled)
        self._published = {"path": 0, "plan": 0, "reasoning": 0}
        self._pub_lock = threading.Lock()
        self._diag_state = DiagnosticsState()
        self._diag_sig = None

        # Callbacks: inputs and the diagnostics timer in separate groups (a slow decode never
        # delays /diagnostics when a multi-threaded executor is used).
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        # Steady clock: /diagnostics keeps coming under use_sim_time even when /clock stops.
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics,
                                             callback_group=self._timer_group,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._stop = threading.Event()
        self._planning_thread = threading.Thread(target=self._planning_loop, name="dsdrive-planning",
                                                 daemon=True)
        self._planning_thread.start()
        self.reasoner.start()
        self._built = True

    def _make_view_publishers(self, make_pub: Callable[..., Any], qos: Any) -> None:
        """dsdrive/reasoning_stamped, dsdrive/markers (RViz) and the optional dsdrive/debug_image."""
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        from dsdrive_ros.msg import Reasoning

        def pub(msg_type: Any, key: str) -> Any:
            p = make_pub(msg_type, TOPICS[key], qos, event_callbacks=self._pub_events(TOPICS[key], qos))
            self._pubs.append(p)
            return p

        self.pub_reasoning_stamped = pub(Reasoning, "reasoning_stamped")
        self.pub_markers = pub(MarkerArray, "markers")
        self.pub_debug_image = pub(Image, "debug_image") if self.cfg.debug_image_enabled else None

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
        self._subs.append(self._subscribe(String, TOPICS["instruction"], self._on_instruction,
                                          dqos.instruction_qos()))
        self._subs.append(self._subscribe(Odometry, TOPICS["odom"], self._on_odom, dqos.odom_qos()))

    def _close_inputs(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if "core" in self.__dict__:
            self.core.reset_inputs()

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
        for name in ("core", "reasoner", "spec", "pub_path", "pub_plan", "pub_reasoning", "pub_diag"):
            if name in self.__dict__:
                delattr(self, name)
        self._built = False

    @contextlib.contextmanager
    def _destroyed_on_failure(self) -> Iterator[None]:
        """For the constructor: a node that fails to start frees its DDS entities now, in order. Left
        to a GC pass after rclpy shutdown, the half-built node's handles can be torn down out of order,
        and the process hung at exit once (rclpy's destroy_node works around the same hang)."""
        try:
            yield
        except BaseException:
            self.stop()
            self.destroy_node()
            raise

    def stop(self) -> None:
        """Stop the worker threads (idempotent). Call before destroy_node()."""
        self._stop.set()
        core, reasoner = self.__dict__.get("core"), self.__dict__.get("reasoner")
        if core is not None:
            core.slot.close()
        if reasoner is not None:
            reasoner.stop()
        if self._planning_thread is not None and self._planning_thread.is_alive():
            self._planning_thread.join(5.0)

    # ---- QoS events ----

    def _subscribe(self, msg_type: Any, topic: str, cb: Callable[..., None], qos: Any,
                   overrides: Any = None) -> Any:
        """``overrides``: QoSOverridingOptions; rclpy applies the qos_overrides.* parameters to
        ``qos`` in place, so the incompatible-QoS report shows the QoS in effect."""
        from rclpy.event_handler import SubscriptionEventCallbacks

        def incompatible(info: Any) -> None:
            self._on_incompatible_qos(topic, "publisher", qos, info)

        return self.create_subscription(
            msg_type, topic, cb, qos, callback_group=self._input_group,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible),
            qos_overriding_options=overrides)

    def _pub_events(self, topic: str, qos: Any) -> Any:
        from rclpy.event_handler import PublisherEventCallbacks

        return PublisherEventCallbacks(
            incompatible_qos=lambda info: self._on_incompatible_qos(topic, "subscription", qos, info))

    def _on_incompatible_qos(self, topic: str, other: str, qos: Any, info: Any) -> None:
        from rclpy.qos import qos_policy_name_from_kind

        policy = qos_policy_name_from_kind(info.last_policy_kind)
        ours = (f"reliability={qos.reliability.name.lower()}, durability={qos.durability.name.lower()}")
        if other == "publisher":
            what = (f"a publisher on '{topic}' offers QoS incompatible with this node's subscription "
                    f"({ours}); policy {policy}: none of its messages will arrive")
        else:
            what = (f"a subscription on '{topic}' requests QoS incompatible with this node's publisher "
                    f"({ours}); policy {policy}: it will receive nothing")
        hint = ""
        if topic == TOPICS["instruction"]:
            hint = (" - publish the instruction reliable + transient_local (latched), e.g. "
                    "`ros2 topic pub --qos-reliability reliable --qos-durability transient_local`")
        elif topic.startswith("camera/"):
            hint = (f" - set -p qos_overrides.{self.resolve_topic_name(topic)}.subscription.reliability"
                    ":=<the publisher's>")
        if self._built:
            self.core.counters.inc("qos_incompatible", max(1, int(getattr(info, "total_count_change", 1))))
        self._qos_last = f"{topic}: {policy}"
        self.get_logger().warning(what + hint)

    def _seq_gap_counter(self, camera: str) -> Callable[[Any], None]:
        """Counts camera messages that never reached the callback, from the publisher's sequence
        numbers (rmw message info): lost in transport or replaced in the subscription's keep-last
        queue (its depth) because the executor fell behind. Neither is visible otherwise."""
        last: dict[bytes, int] = {}
        counters = self.core.counters

        def on_info(info: Any) -> None:
            seq = info.get("publication_sequence_number")
            gid = info.get("publisher_gid")
            if seq is None or not gid:
                return
            key = bytes(gid.get("data", b""))
            prev = last.get(key)
            if prev is None and len(last) >= 64:
                last.clear()
            last[key] = seq
            if prev is not None and seq > prev + 1:
                n = seq - prev - 1
                counters.inc("transport_lost", n)
                counters.inc(f"transport_lost.{camera}", n)
                self._warn(f"lost:{camera}", f"camera {camera}: {n} message(s) never reached the node "
                                             "(lost in transport or replaced in the subscription queue: "
                                             "the node fell behind)")

        return on_info

    # ---- inputs ----

    def _warn(self, key: str, text: str, error: bool = False) -> None:
        """Log ``text`` unless a line of the same kind (``key``, digits folded) was logged in the
        last 2 s; the next line that gets through says how many were suppressed."""
        suppressed = self._log_throttle(_kind(key))
        if suppressed is None:
            return
        more = f" (+{suppressed} similar suppressed)" if suppressed else ""
        # rclpy ties a severity to each call site: one call per severity
        if error:
            self.get_logger().error(text + more)
        else:
            self.get_logger().warning(text + more)

    def _make_camera_cb(self, name: str, compressed: bool):
        # Decoded straight to the model's input size (frames/reduce.py): full-resolution work in
        # this callback overlaps with inference of the previous set, and the set holds small frames.
        reducer = FrameReducer.from_spec(spec_value(self.spec, "image"))
        decode = reducer.compressed_msg if compressed else reducer.image_msg
        core = self.core
        min_h, min_w = self._min_hw
        clock = self.get_clock()
        future_ns = int(FUTURE_STAMP_TOLERANCE_S * 1e9)
        count_gaps = self._seq_gap_counter(name)

        def on_image(msg: Any, info: Any) -> None:  # two parameters: rclpy passes the message info
            count_gaps(info)
            stamp_ns = time_to_ns(msg.header.stamp)
            now_ns = clock.now().nanoseconds
            if stamp_ns == 0 and now_ns != 0:
                core.counters.inc("zero_stamps")
                self._warn(f"zero:{name}", f"camera {name}: frame with a zero stamp (header.stamp "
                                           "not set by the driver): dropped")
                return
            if now_ns > 0 and stamp_ns - now_ns > future_ns:
                core.counters.inc("future_stamps")
                self._warn(f"future:{name}", f"camera {name}: frame stamped "
                                             f"{(stamp_ns - now_ns) / 1e9:.1f} s ahead of this node's "
                                             "clock (host clocks not synchronised?): dropped")
                return
            try:
                frame = decode(msg)
            except (ImageDecodeError, ValueError, TypeError) as exc:
                core.on_bad_frame(name, str(exc))
                self._warn(f"{name}:{exc}", f"camera {name}: dropped a bad frame: {exc}")
                return
            h, w = frame.height, frame.width
            if h < min_h or w < min_w or h > MAX_IMAGE_SIDE or w > MAX_IMAGE_SIDE:
                why = (f"{w}x{h} image is implausible for the model's input (needs at least "
                       f"{min_w}x{min_h}, at most {MAX_IMAGE_SIDE} px a side)")
                core.on_bad_frame(name, why)
                self._warn(f"{name}:size", f"camera {name}: dropped a bad frame: {why}")
                return
            try:
                core.on_frame(name, stamp_ns, frame.pixels)
            except Exception as exc:  # noqa: BLE001 - never let a callback kill the executor
                core.on_bad_frame(name, str(exc))
                self._warn(f"{name}:{exc}", f"camera {name}: frame rejected: {exc}")

        return on_image

    def _on_instruction(self, msg: Any) -> None:
        text = msg.data
        if "\ufffd" in text or "\x00" in text:
            self.core.counters.inc("bad_instruction")
            self._warn("instruction:utf8", "instruction is not valid UTF-8 text: dropped")
            return
        if len(text) > MAX_INSTRUCTION_CHARS:
            self.core.counters.inc("long_instruction")
            self._warn("instruction:long", f"instruction of {len(text)} characters truncated to "
                                           f"{MAX_INSTRUCTION_CHARS} (the model reads only its first tokens)")
            text = text[:MAX_INSTRUCTION_CHARS]
        if not text.strip():
            self.core.counters.inc("empty_instruction")
            self._warn("instruction:empty", "empty instruction: planning without one until the next")
        if self.core.set_instruction(text):
            self.get_logger().info(f"instruction: {_short(text.strip())!r}")

    def _on_odom(self, msg: Any) -> None:
        v = msg.twist.twist.linear
        try:
            speed = float((v.x * v.x + v.y * v.y) ** 0.5)
        except (TypeError, ValueError, OverflowError):
            speed = float("nan")
        if not self.core.set_speed(speed):
            self._warn(f"odom:{v.x},{v.y}", f"odom: unusable speed ({v.x}, {v.y}): dropped")

    # ---- planning thread ----

    def _planning_loop(self) -> None:
        stop, core = self._stop, self.core
        while not stop.is_set():
            try:
                self._plan_once(stop, core)
            except Exception as exc:  # noqa: BLE001 - a bug here must not end planning silently
                self.get_logger().error(f"planning loop: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=_THROTTLE_S)

    def _plan_once(self, stop: threading.Event, core: PlanningCore) -> None:
        pending = core.next_set(0.2)
        if pending is None:
            return
        age_ms = core.too_old(pending, self.get_clock().now().nanoseconds)
        if age_ms is not None:
            self._warn("too_old", f"camera set {age_ms:.0f} ms old when planning started "
                                  f"(max_frame_age_ms {core.max_frame_age_ms:g}): dropped")
            return
        try:
            out, raw = core.plan(pending)
        except PlanParseError as exc:
            self._warn(f"parse:{exc}", f"model output rejected (nothing published): {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - counted; /diagnostics shows ERROR
            self._warn(f"inference:{type(exc).__name__}:{exc}",
                       f"inference failed: {type(exc).__name__}: {exc}", error=True)
            return
        if stop.is_set() or not self._active:
            return  # stopping, or deactivated while planning: publish nothing
        out.frame_age_ms = (self.get_clock().now().nanoseconds - out.stamp_ns) / 1e6
        if self.reasoner.enabled:
            last = self.reasoner.last  # one read: text and stamp of the same generation
            out.reasoning, out.reasoning_stamp_ns = last.text, last.stamp_ns
        try:
            path = fill_path(out)
            plan = fill_plan(out, self._DrivingPlan(), path=path)
            self.pub_path.publish(path)
            self.pub_plan.publish(plan)
            self.pub_markers.publish(fill_markers(out))
            if self.pub_debug_image is not None:
                self._publish_debug_image(out, pending.frameset.frames[core.anchor])
        except Exception as exc:  # noqa: BLE001 - e.g. publishing during shutdown
            if not stop.is_set():
                self._warn("publish", f"publishing the plan failed: {exc}")
            return
        with self._pub_lock:
            self._published["path"] += 1
            self._published["plan"] += 1
        if self.reasoner.enabled:
            self.reasoner.submit(raw, out.stamp_ns)

    def _publish_debug_image(self, out: Any, rgb: Any) -> None:
        from sensor_msgs.msg import Image

        from dsdrive_ros.frames import fill_image_msg
        from dsdrive_ros.outputs.fill import ns_to_time
        from dsdrive_ros.outputs.overlay import debug_overlay

        msg = fill_image_msg(Image(), debug_overlay(rgb, out), "rgb8")
        msg.header.stamp = ns_to_time(out.stamp_ns)
        msg.header.frame_id = f"camera_{self.core.anchor}"
        self.pub_debug_image.publish(msg)

    # ---- reasoning thread ----

    def _generate(self, raw: dict, max_tokens: int) -> str:
        # One decode step at a time, each after the planner went idle (bounded: text still comes
        # when camera sets arrive back to back).
        idle = self.core.planner_idle
        return self.core.session.reason(raw, max_tokens=max_tokens,
                                        before_step=lambda: idle.wait(_REASONING_WAIT_S))

    def _on_reasoning(self, text: str, stamp_ns: int, gen_ms: float) -> None:
        if self._stop.is_set() or not self._active:
            return
        self.pub_reasoning.publish(fill_reasoning(text))
        self.pub_reasoning_stamped.publish(fill_reasoning_stamped(
            text, stamp_ns=stamp_ns, frame_id=str(spec_value(self.spec, "frame_id", "base_link")),
            generation_ms=gen_ms, generated_ns=self.get_clock().now().nanoseconds))
        with self._pub_lock:
            self._published["reasoning"] += 1

    def _on_reasoning_error(self, exc: BaseException) -> None:
        self._warn(f"reasoning:{type(exc).__name__}", f"reasoning failed: {type(exc).__name__}: {exc}")

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
                "qos_incompatible_last": self._qos_last,
                "active": self._active,
            }
            extra.update({f"qos.{cam}": text for cam, text in self._camera_qos.items()})
            fatal = ""
            if self._planning_thread is not None and not self._planning_thread.is_alive() \
                    and not self._stop.is_set():
                fatal = "planning thread stopped (see the log)"
            snap, clock = self.core.snapshot(), self.get_clock()
            sim_s = (self._sim_since_plan.update(snap.plans, clock.now().nanoseconds)
                     if clock.ros_time_is_active else None)
            extra["sim_since_last_plan_s"] = sim_s
            statuses = evaluate(snap, self.core.stale_after_ms, self._diag_state, extra,
                                fatal=fatal, sim_since_plan_s=sim_s)
            if not self._active:  # configured but not active: silence is expected, not an error
                for st in statuses:
                    st.level, st.message = OK, f"inactive ({self._inactive_reason})"
            name = self.get_name()
            if name != NODE_NAME:  # several planners on one /diagnostics: statuses by node name
                for st in statuses:
                    if st.name.startswith(NODE_NAME + ":"):
                        st.name = name + st.name[len(NODE_NAME):]
            self._log_diagnostics(statuses[0])
            self.pub_diag.publish(to_msg(statuses, self.get_clock().now().to_msg()))
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"diagnostics failed: {exc}", throttle_duration_sec=_THROTTLE_S)

    def _log_diagnostics(self, status: Any) -> None:
        """One log line whenever the overall level or the kind of reason changes (not per report)."""
        sig = (status.level, re.sub(r"[0-9.]+", "#", status.message))
        if sig == self._diag_sig:
            return
        prev, self._diag_sig = self._diag_sig, sig
        log = self.get_logger()
        if status.level >= ERROR:
            log.error(f"diagnostics ERROR: {status.message}")
        elif status.level == WARN:
            log.warning(f"diagnostics WARN: {status.message}")
        elif prev is not None and prev[0] != OK:
            log.info(f"diagnostics OK: {status.message}")

    # ---- parameters ----

    def _on_set_parameters(self, params: Sequence[Any]) -> Any:
        from rcl_interfaces.msg import SetParametersResult

        for p in params:
            reason = validate_update(p.name, p.value)
            model_max = spec_value(getattr(self, "spec", None), "max_reasoning_tokens")
            if not reason and p.name == "reasoning.max_tokens" and model_max is not None:
                reason = check_reasoning_tokens(p.value, model_max)
            if reason:
                self.get_logger().warning(f"parameter change refused: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        if not hasattr(self, "add_post_set_parameters_callback"):
            self._apply_parameters(params)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: Sequence[Any]) -> None:
        if not self._built:
            return  # read by load_config() when the model is loaded
        for p in params:
            if p.name == "max_camera_skew_ms":
                self.core.set_limits(max_skew_ms=p.value)
            elif p.name == "stale_after_ms":
                self.core.set_limits(stale_after_ms=p.value)
            elif p.name == "max_frame_age_ms":
                self.core.set_limits(max_frame_age_ms=p.value)
            elif p.name == "drop_implausible_plans":
                self.core.set_plausibility(drop=p.value)
            elif p.name == "plausibility.max_first_waypoint_m":
                self.core.set_plausibility(max_first_waypoint_m=p.value)
            elif p.name == "plausibility.max_speed_mps":
                self.core.set_plausibility(max_speed_mps=p.value)
            elif p.name == "reasoning.enabled":
                self.reasoner.enabled = bool(p.value)
            elif p.name == "reasoning.max_tokens":
                self.reasoner.max_tokens = int(p.value)
            elif p.name == "reasoning.max_rate_hz":
                self.reasoner.max_rate_hz = float(p.value)

    def _watch_parameters(self) -> None:
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):
            self.add_post_set_parameters_callback(self._apply_parameters)


class DSDriveNode(PlannerNodeMixin, Node):
    """The plain node: model loaded, subscriptions open and publishing from construction on."""

    def __init__(self, *, node_name: str = NODE_NAME, model: Optional[tuple[Any, Any, str]] = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._planner_init()
        with self._destroyed_on_failure():
            declare_parameters(self)  # ConfigError (bad type / out of range): main() exits 2
            cfg = load_config(self)
            self._build_planner(cfg, model)
            self._open_inputs()
        self._active = True
        self._watch_parameters()


def run_node(make_node: Callable[[], Node], name: str, argv: Optional[Sequence[str]] = None) -> int:
    """A node process's main: rclpy.init, construct, spin until SIGINT/SIGTERM, stop the node's
    threads, exit code (0; 2 for a configuration error, 1 for any other failed start)."""
    args = list(sys.argv if argv is None else argv)
    faulthandler.register(STACKS_SIGNAL, all_threads=True)
    rclpy.init(args=args)
    node: Optional[Node] = None
    try:
        try:
            node = make_node()
        except ConfigError as exc:
            return _failed_start(name, f"configuration error: {exc}", 2)
        except Exception as exc:  # noqa: BLE001 - model load failure etc.: say what and exit
            return _failed_start(name, f"startup failed: {type(exc).__name__}: {exc}", 1)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except RuntimeError:
            # rclpy's signal handler shuts the context down from another thread; landing between
            # spin's context check and its wait-set init, SIGINT/SIGTERM surfaces as RCLError
            # "context is not valid" (ros2/rclpy#1166). A stop, not a failure, once the context is down.
            if executor.context.ok():
                raise
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


def _failed_start(name: str, message: str, code: int) -> int:
    """Log FATAL and bound what is left of the process. faulthandler's watchdog is a native thread: it
    fires where rclpy teardown holds the GIL, until interpreter finalization cancels it; SIGALRM, left
    at its default action, ends a process whose native exit handlers (DDS factories' static
    destructors) wedge after that."""
    rclpy.logging.get_logger(name).fatal(message)
    faulthandler.dump_traceback_later(FAILED_START_EXIT_S, exit=True)
    signal.alarm(math.ceil(2 * FAILED_START_EXIT_S))
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    # DSDriveNode looked up when called: bench/node_probe.py substitutes a subclass.
    return run_node(lambda: DSDriveNode(), NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())

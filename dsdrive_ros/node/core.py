"""The node's logic without DDS: frames in, PlanOutput out (ROS-free, testable in-process).

``PlanningCore``   camera frames (decoded HxWx3 uint8) -> CameraSync -> keep-latest slot ->
                   Preprocessor -> PlannerSession.step -> parse_plan -> PlanOutput.
                   Thread model: callbacks call ``on_frame``/``set_instruction``/``set_speed`` from
                   the executor; one planning thread calls ``next_set`` + ``plan``. A set that
                   arrives while the previous one is still waiting is REPLACED (counted as
                   dropped): the planner only ever sees the newest complete set. Guards, both
                   off by default and counted: a set older than ``max_frame_age_ms`` when planning
                   starts is dropped (``too_old``); with ``drop_implausible`` a plan that breaks
                   ``plausibility`` raises ImplausiblePlan (nothing is published).
``ReasoningWorker`` its own thread: latest-only, rate-limited text generation from the planner's
                   ``reasoner_kv``; never blocks planning, and runs at a lower CPU priority (Linux
                   per-thread nice) so that it does not slow planning down on a busy CPU either.
``LatestSlot``     the one-element mailbox both use.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generic, Mapping, NamedTuple, Optional, Sequence, TypeVar

import numpy as np

from dsdrive_ros.frames.sync import CameraSync, FrameSet
from dsdrive_ros.node.stats import Counters, LatencyStats, RateMeter
from dsdrive_ros.outputs.parse import (
    ImplausiblePlan,
    PlanOutput,
    PlanParseError,
    PlausibilityLimits,
    implausibility,
    parse_plan,
    spec_value,
)

__all__ = ["LatestSlot", "PlanningCore", "ReasoningWorker", "ReasoningText", "CoreSnapshot", "STAGES"]

T = TypeVar("T")
# Stages of one planning step that PlanningCore times (see CoreSnapshot.stages_*).
STAGES = ("queue_wait", "preprocess", "inference", "parse")
_log = logging.getLogger("dsdrive_ros.node.core")


class LatestSlot(Generic[T]):
    """Single-item mailbox: ``put`` replaces what is waiting (returns True if it replaced)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._has = False
        self._closed = False

    def put(self, item: T) -> bool:
        with self._cond:
            replaced = self._has
            self._item, self._has = item, True
            self._cond.notify()
            return replaced

    def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """The waiting item (removed), or None after ``timeout`` s or when closed."""
        with self._cond:
            if not self._has and not self._closed:
                self._cond.wait(timeout)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            return item

    def clear(self) -> bool:
        with self._cond:
            had, self._item, self._has = self._has, None, False
            return had

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __bool__(self) -> bool:
        return self._has


class ReasoningText(NamedTuple):
    """One generated text: from the frame set stamped ``stamp_ns``, in ``gen_ms`` of wall time."""

    text: str
    stamp_ns: int
    gen_ms: float


@dataclass
class _Pending:
    frameset: FrameSet
    ready_mono: float  # when the set became complete (monotonic s)


@dataclass
class CoreSnapshot:
    """Everything diagnostics needs, read at one instant."""

    now_mono: float
    started_mono: float
    cameras: list[str]
    anchor: str
    camera_rates: dict[str, float]
    camera_ages_s: dict[str, Optional[float]]
    camera_errors: dict[str, int]
    sync: dict[str, int]
    counters: dict[str, int]
    latency_p50_ms: Optional[float]
    latency_p99_ms: Optional[float]
    last_plan_mono: Optional[float]
    plans: int
    consecutive_failures: int
    last_error: str
    backend: str
    instruction: str
    speed: Optional[float]
    # Per-stage wall time of planning (ms, last 200 plans): queue_wait (set complete -> planning
    # starts), preprocess, inference (PlannerSession.step), parse. {stage: value or None}.
    stages_p50_ms: dict[str, Optional[float]] = field(default_factory=dict)
    stages_p99_ms: dict[str, Optional[float]] = field(default_factory=dict)


class PlanningCore:
    """Sync + keep-latest + inference + parsing. Thread-safe for one planning thread."""

    def __init__(
        self,
        spec: Any,
        session: Any,
        *,
        backend: str = "",
        preprocessor: Optional[Callable[[Mapping[str, np.ndarray]], np.ndarray]] = None,
        cameras: Optional[Sequence[str]] = None,
        anchor: Optional[str] = None,
        max_skew_ms: float = 50.0,
        stale_after_ms: float = 500.0,
        max_frame_age_ms: float = 0.0,
        drop_implausible: bool = False,
        plausibility: PlausibilityLimits = PlausibilityLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.session = session
        self.backend = backend
        self.cameras = list(cameras if cameras is not None else spec_value(spec, "cameras"))
        self.anchor = anchor or self.cameras[0]
        if preprocessor is None:  # OpenCV, imported only here: bench/gpu_core.py brings its own
            from dsdrive_ros.frames.preprocess import Preprocessor
            preprocessor = Preprocessor.from_spec(spec_value(spec, "image"), self.cameras)
        self.preprocess = preprocessor
        self._clock = clock
        self._lock = threading.Lock()  # guards sync, instruction, speed
        self.stale_after_ms = float(stale_after_ms)
        self.max_frame_age_ms = float(max_frame_age_ms)  # 0: off
        self.drop_implausible = bool(drop_implausible)
        self.plausibility = plausibility
        self.sync = CameraSync(self.cameras, max_skew_ns=int(max_skew_ms * 1e6),
                               stale_after_ns=int(stale_after_ms * 1e6), anchor=self.anchor)
        self.slot: LatestSlot[_Pending] = LatestSlot()
        # Set while no camera set waits and none is being planned: reasoning decodes only then
        # (ReasoningWorker's generate waits on it before each token), so text never delays a plan
        # by more than one decode step.
        self.planner_idle = threading.Event()
        self.planner_idle.set()
        self.rates = {c: RateMeter() for c in self.cameras}
        self.camera_errors = {c: 0 for c in self.cameras}
        self.latency = LatencyStats()
        self.stages = {name: LatencyStats() for name in STAGES}
        self.counters = Counters(
            "sets_dropped", "plans", "invalid_outputs", "inference_errors", "decode_errors",
            "bad_odom", "bad_instruction", "unknown_camera", "resets", "sets_too_old",
            "implausible_plans")
        self._instruction = ""
        self._speed: Optional[tuple[float, float]] = None  # (m/s, monotonic time)
        self._dropped_since_plan = 0
        self._seq = 0
        self.started_mono = clock()
        self.last_plan_mono: Optional[float] = None
        self.consecutive_failures = 0
        self.last_error = ""

    # ---- inputs (executor threads) ----

    def on_frame(self, camera: str, stamp_ns: int, rgb: np.ndarray) -> bool:
        """One decoded frame. Returns True when it completed a set (queued for planning)."""
        now = self._clock()
        if camera not in self.rates:
            self.counters.inc("unknown_camera")
            return False
        self.rates[camera].tick(now)
        with self._lock:
            fs = self.sync.on_frame(camera, stamp_ns, rgb)
            if fs is None:
                return False
            if self.slot.put(_Pending(fs, now)):
                self.counters.inc("sets_dropped")
                self._dropped_since_plan += 1
            self.planner_idle.clear()
        return True

    def on_bad_frame(self, camera: str, reason: str = "") -> None:
        """A frame that could not be decoded / had the wrong size: counted, dropped."""
        self.counters.inc("decode_errors")
        if camera in self.camera_errors:
            with self._lock:
                self.camera_errors[camera] += 1

    def set_instruction(self, text: str) -> bool:
        """New navigation instruction. Returns True when it differs from the current one."""
        text = str(text).strip()
        with self._lock:
            changed = text != self._instruction
            self._instruction = text
        return changed

    def set_speed(self, speed_mps: float) -> bool:
        """Ego speed (m/s). A non-finite value is rejected (counted) and returns False."""
        try:
            v = float(speed_mps)
        except (TypeError, ValueError):
            v = float("nan")
        if not np.isfinite(v) or abs(v) > 150.0:
            self.counters.inc("bad_odom")
            return False
        with self._lock:
            self._speed = (v, self._clock())
        return True

    @property
    def instruction(self) -> str:
        with self._lock:
            return self._instruction

    def current_speed(self) -> Optional[float]:
        """Latest speed if fresher than stale_after_ms, else None (the planner then gets 0)."""
        with self._lock:
            if self._speed is None:
                return None
            v, t = self._speed
        if (self._clock() - t) * 1000.0 > self.stale_after_ms:
            return None
        return v

    def reset_inputs(self) -> None:
        """Forget held frames and the set waiting for the planner (the node stopped listening,
        e.g. a lifecycle deactivate): the next set starts a fresh timeline (history reset). A
        discarded waiting set counts as dropped."""
        with self._lock:
            self.sync.reset()
            if self.slot.clear():
                self.counters.inc("sets_dropped")
                self._dropped_since_plan += 1
            self.planner_idle.set()

    def set_limits(self, max_skew_ms: Optional[float] = None, stale_after_ms: Optional[float] = None,
                   max_frame_age_ms: Optional[float] = None) -> None:
        with self._lock:
            if max_frame_age_ms is not None:
                self.max_frame_age_ms = float(max_frame_age_ms)
            if max_skew_ms is not None:
                self.sync.max_skew_ns = int(float(max_skew_ms) * 1e6)
            if stale_after_ms is not None:
                self.stale_after_ms = float(stale_after_ms)
                self.sync.stale_after_ns = int(float(stale_after_ms) * 1e6)

    # ---- planning thread ----

    def set_plausibility(self, drop: Optional[bool] = None, max_first_waypoint_m: Optional[float] = None,
                         max_speed_mps: Optional[float] = None) -> None:
        if drop is not None:
            self.drop_implausible = bool(drop)
        limits = self.plausibility
        if max_first_waypoint_m is not None:
            limits = replace(limits, max_first_waypoint_m=float(max_first_waypoint_m))
        if max_speed_mps is not None:
            limits = replace(limits, max_speed_mps=float(max_speed_mps))
        self.plausibility = limits

    def next_set(self, timeout: Optional[float] = None) -> Optional[_Pending]:
        return self.slot.get(timeout)

    def too_old(self, pending: _Pending, now_ns: int) -> Optional[float]:
        """The set's age (ms, at ``now_ns`` on the stamps' clock) when it exceeds max_frame_age_ms:
        the set is then dropped (counted ``sets_too_old``, and as skipped in the next plan's
        frames_dropped). None when it may be planned on (guard off, or no clock yet)."""
        if self.max_frame_age_ms <= 0 or now_ns <= 0:
            return None
        age_ms = (now_ns - pending.frameset.stamp_ns) / 1e6
        if age_ms <= self.max_frame_age_ms:
            return None
        self.counters.inc("sets_too_old")
        with self._lock:
            self._dropped_since_plan += 1
            if not self.slot:
                self.planner_idle.set()
        return age_ms

    def plan(self, pending: _Pending, frame_age_ms: Callable[[int], float] = lambda _ns: -1.0,
             ) -> tuple[PlanOutput, dict[str, Any]]:
        """Run the model on one set. Returns (PlanOutput, raw outputs).

        Raises PlanParseError for an unusable output (ImplausiblePlan, a subclass, for one that fails
        the plausibility guard) and re-raises runtime failures; all are counted (``invalid_outputs``
        / ``implausible_plans`` / ``inference_errors``) and leave the core usable. An implausible
        plan is not a model failure: it does not make /diagnostics an ERROR by itself.
        """
        try:
            return self._plan(pending, frame_age_ms)
        finally:
            with self._lock:
                if not self.slot:  # nothing newer waits: the CPU is free for reasoning
                    self.planner_idle.set()

    def _plan(self, pending: _Pending, frame_age_ms: Callable[[int], float]) -> tuple[PlanOutput, dict[str, Any]]:
        fs = pending.frameset
        instruction = self.instruction
        speed = self.current_speed()
        with self._lock:
            dropped, self._dropped_since_plan = self._dropped_since_plan, 0
        t0 = self._clock()
        try:
            if fs.discontinuity and hasattr(self.session, "reset"):
                self.session.reset()
                self.counters.inc("resets")
            images = self.preprocess(fs.frames)
            t_pre = self._clock()
            raw = self.session.step(images, instruction, 0.0 if speed is None else speed)
        except Exception as exc:
            self.counters.inc("inference_errors")
            self.consecutive_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        t_inf = self._clock()
        latency_ms = (t_inf - t0) * 1000.0
        try:
            out = parse_plan(raw, self.spec, stamp_ns=fs.stamp_ns, latency_ms=latency_ms,
                             frame_age_ms=frame_age_ms(fs.stamp_ns), frames_dropped=dropped,
                             backend=self.backend, instruction=instruction,
                             speed=0.0 if speed is None else speed, seq=self._seq)
        except PlanParseError as exc:
            self.counters.inc("invalid_outputs")
            self.consecutive_failures += 1
            self.last_error = f"invalid output: {exc}"
            raise
        why = implausibility(out.waypoints, out.times_s, self.plausibility) if self.drop_implausible else ""
        if why:
            self.counters.inc("implausible_plans")
            raise ImplausiblePlan(f"implausible plan dropped: {why}")
        stage_ms = {"queue_wait": (t0 - pending.ready_mono) * 1000.0,
                    "preprocess": (t_pre - t0) * 1000.0,
                    "inference": (t_inf - t_pre) * 1000.0,
                    "parse": (self._clock() - t_inf) * 1000.0}
        for name, ms in stage_ms.items():
            self.stages[name].add(ms)
        out.extra["stages_ms"] = stage_ms
        self._seq += 1
        self.latency.add(latency_ms)
        self.counters.inc("plans")
        self.consecutive_failures = 0
        self.last_plan_mono = self._clock()
        return out, raw

    # ---- diagnostics ----

    def snapshot(self) -> CoreSnapshot:
        now = self._clock()
        with self._lock:
            sync = self.sync.counters()
            cam_err = dict(self.camera_errors)
            instruction = self._instruction
        counters = self.counters.snapshot()
        return CoreSnapshot(
            now_mono=now,
            started_mono=self.started_mono,
            cameras=list(self.cameras),
            anchor=self.anchor,
            camera_rates={c: m.rate(now) for c, m in self.rates.items()},
            camera_ages_s={c: m.age(now) for c, m in self.rates.items()},
            camera_errors=cam_err,
            sync=sync,
            counters=counters,
            latency_p50_ms=self.latency.p50,
            latency_p99_ms=self.latency.p99,
            last_plan_mono=self.last_plan_mono,
            plans=counters.get("plans", 0),
            consecutive_failures=self.consecutive_failures,
            last_error=self.last_error,
            backend=self.backend,
            instruction=instruction,
            speed=self.current_speed(),
            stages_p50_ms={k: v.p50 for k, v in self.stages.items()},
            stages_p99_ms={k: v.p99 for k, v in self.stages.items()},
        )


class ReasoningWorker:
    """Generates reasoning text in its own thread: latest request only, at most ``max_rate_hz``.

    ``generate(raw, max_tokens) -> str`` is typically ``PlannerSession.reason``; ``on_text(text,
    stamp_ns, gen_ms)`` publishes. A request submitted while generating replaces the waiting one
    (older frames are never explained late).

    ``nice``: the worker thread raises its own niceness by this much (Linux: niceness is per
    thread; elsewhere nothing happens). With the default 10 the scheduler gives the planning
    thread ~10x the CPU share of text generation when both want a core, so reasoning costs
    planning little even on 2 cores. Work that generation hands to a runtime's own thread pool
    (created at model load) is not affected: give the reasoner one intra-op thread.
    """

    def __init__(self, generate: Callable[[Mapping[str, Any], int], str],
                 on_text: Callable[[str, int, float], None], *, max_tokens: int = 64,
                 max_rate_hz: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_error: Optional[Callable[[BaseException], None]] = None, nice: int = 10) -> None:
        self._generate = generate
        self._on_text = on_text
        self._on_error = on_error
        self.max_tokens = int(max_tokens)
        self.max_rate_hz = float(max_rate_hz)
        self.nice = int(nice)
        self.enabled = True
        self._clock = clock
        self._slot: LatestSlot[tuple[dict[str, Any], int]] = LatestSlot()
        self._stop = threading.Event()
        self._last_start: Optional[float] = None
        self.latency = LatencyStats()
        self.counters = Counters("texts", "errors", "skipped")
        self.last = ReasoningText("", 0, 0.0)  # replaced as a whole: text and stamp always match
        self._thread = threading.Thread(target=self._run, name="dsdrive-reasoning", daemon=True)

    def start(self) -> "ReasoningWorker":
        self._thread.start()
        return self

    def due(self) -> bool:
        """True when a request submitted now would start without waiting for the rate limit."""
        if not self.enabled:
            return False
        if self._last_start is None or self.max_rate_hz <= 0:
            return True
        return self._clock() - self._last_start >= 1.0 / self.max_rate_hz

    def submit(self, raw: Mapping[str, Any], stamp_ns: int) -> None:
        if not self.enabled or self._stop.is_set():
            return
        # Copy what generation needs: a runner may reuse its output buffers on the next step.
        req = {k: np.array(v, copy=True) for k, v in raw.items() if k == "reasoner_kv"}
        req.update({k: v for k, v in raw.items() if k != "reasoner_kv" and not isinstance(v, np.ndarray)})
        if self._slot.put((req, int(stamp_ns))):
            self.counters.inc("skipped")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _lower_priority(self) -> None:
        """Raise this (the worker) thread's niceness by ``self.nice`` (Linux only; best effort)."""
        if self.nice <= 0 or not sys.platform.startswith("linux"):
            return  # elsewhere PRIO_PROCESS with a thread id would name a process
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
        except (OSError, AttributeError) as exc:
            _log.debug("reasoning thread keeps its priority: %s", exc)

    def _run(self) -> None:
        self._lower_priority()
        while not self._stop.is_set():
            item = self._slot.get(0.2)
            if item is None:
                continue
            if self.max_rate_hz > 0 and self._last_start is not None:
                wait = 1.0 / self.max_rate_hz - (self._clock() - self._last_start)
                if wait > 0:
                    # Wait out the rate limit, but take a newer request if one arrives.
                    if self._stop.wait(wait):
                        return
                    newer = self._slot.get(0)
                    if newer is not None:
                        self.counters.inc("skipped")
                        item = newer
            req, stamp_ns = item
            self._last_start = self._clock()
            try:
                text = self._generate(req, self.max_tokens)
            except Exception as exc:  # noqa: BLE001 - reported, the worker keeps going
                self.counters.inc("errors")
                if self._on_error is not None:
                    self._on_error(exc)
                else:
                    _log.warning("reasoning failed: %s", exc)
                continue
            gen_ms = (self._clock() - self._last_start) * 1000.0
            self.latency.add(gen_ms)
            self.counters.inc("texts")
            self.last = ReasoningText(str(text), int(stamp_ns), gen_ms)
            try:
                self._on_text(str(text), stamp_ns, gen_ms)
            except Exception as exc:  # noqa: BLE001
                self.counters.inc("errors")
                if self._on_error is not None:
                    self._on_error(exc)

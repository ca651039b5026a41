"""The Planner: camera frames in, ``PlanOutput`` out (ROS-free; the node, DAgger, quantization
calibration and the benches use it).

Thread model (the node): executor callbacks call ``on_image`` / ``on_instruction`` / ``on_odom_velocity``
(validated here: ``planner.inputs``); one planning thread calls ``plan_next`` and, after publishing,
``explain``, which hands the step to the ``ReasoningWorker`` (latest-only, rate-limited text, never
delaying a plan). Per camera set: CameraSync -> keep-latest slot (a set that arrives while the
previous one still waits REPLACES it, counted as dropped) -> Preprocessor -> PlannerSession.step ->
parse_plan -> frame age and the latest reasoning text -> PlanStep. Guards, both off by default and
counted: a set older than ``max_frame_age_ms`` when planning starts is dropped (``too_old``); with
``drop_implausible`` a plan that breaks ``plausibility`` raises ImplausiblePlan (nothing published).
In-process users without threads call ``plan_frames`` (one set, synchronously).

Timing hooks for benches: ``PlanOutput.timings`` (queue wait, preprocess, inference, parse) and the
``frame_timer`` callback (each accepted frame's arrival and decode time).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import numpy as np

from dsdrive_ros.frames.sync import CameraSync
from dsdrive_ros.outputs.parse import (
    ImplausiblePlan,
    PlanOutput,
    PlanParseError,
    PlanTimings,
    PlausibilityLimits,
    implausibility,
    parse_plan,
)
from dsdrive_ros.planner.inputs import PlannerInputs, PlannerLog
from dsdrive_ros.planner.reasoning import LatestSlot, ReasoningWorker
from dsdrive_ros.planner.stats import Counters, LatencyStats, RateMeter
from dsdrive_ros.planner.types import STAGES, FrameTiming, PendingSet, PlannerSnapshot, PlanStep

if TYPE_CHECKING:  # annotations only: the Planner imports no runtime package (numpy is enough)
    from dsdrive_ros.runners.session import PlannerSession
    from dsdrive_ros.runners.spec import ModelSpec

__all__ = ["Planner"]

# Longest a reasoning decode step waits for the planner to go idle (then it runs anyway: no starvation).
_REASONING_WAIT_S = 0.1


class Planner(PlannerInputs):
    """Validation + sync + keep-latest + inference + parsing. Thread-safe for one planning thread.

    ``spec``: the model's ModelSpec; ``session``: its PlannerSession (``load_session``).
    ``stamp_clock``: now in the stamps' time base (ns; the node: its ROS clock, sim time under
    use_sim_time; 0 = no clock yet); frame ages and the future-stamp check read it.
    """

    def __init__(
        self,
        spec: ModelSpec,
        session: PlannerSession,
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
        stamp_clock: Callable[[], int] = time.time_ns,
        log: Optional[PlannerLog] = None,
        frame_timer: Optional[Callable[[FrameTiming], None]] = None,
    ) -> None:
        self.spec = spec
        self.session = session
        self.backend = backend
        self.cameras = list(cameras if cameras is not None else spec.cameras)
        self.anchor = anchor or self.cameras[0]
        if preprocessor is None:  # OpenCV, imported only here: a caller may bring its own
            from dsdrive_ros.frames.preprocess import Preprocessor
            preprocessor = Preprocessor.from_spec(spec.image, self.cameras)
        self.preprocess = preprocessor
        self._clock = clock
        self._stamp_clock = stamp_clock
        self.log = log if log is not None else PlannerLog()
        self.frame_timer = frame_timer
        self.reasoner: Optional[ReasoningWorker] = None  # start_reasoning()
        self._lock = threading.Lock()  # guards sync, instruction, speed
        self.stale_after_ms = float(stale_after_ms)
        self.max_frame_age_ms = float(max_frame_age_ms)  # 0: off
        self.drop_implausible = bool(drop_implausible)
        self.plausibility = plausibility
        self.sync = CameraSync(self.cameras, max_skew_ns=int(max_skew_ms * 1e6),
                               stale_after_ns=int(stale_after_ms * 1e6), anchor=self.anchor)
        self.slot: LatestSlot[PendingSet] = LatestSlot()
        # Set while no camera set waits and none is being planned: reasoning decodes only then
        # (each decode step waits on it), so text never delays a plan by more than one decode step.
        self.planner_idle = threading.Event()
        self.planner_idle.set()
        self.rates = {c: RateMeter() for c in self.cameras}
        self.camera_errors = {c: 0 for c in self.cameras}
        self.latency = LatencyStats()
        self.stages = {name: LatencyStats() for name in STAGES}
        self.counters = Counters(
            "sets_dropped", "plans", "invalid_outputs", "inference_errors", "decode_errors",
            "bad_odom", "bad_instruction", "unknown_camera", "resets", "end_resets", "sets_too_old",
            "implausible_plans")
        self._instruction = ""
        self._speed: Optional[tuple[float, float]] = None  # (m/s, monotonic time)
        self._dropped_since_plan = 0
        self._seq = 0
        self.started_mono = clock()
        self.last_plan_mono: Optional[float] = None
        self.consecutive_failures = 0
        self.last_error = ""

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

    def update(self, name: str, value: Any) -> None:
        """A runtime change of one setting, by its node parameter name (node/params.py)."""
        if name in ("max_camera_skew_ms", "stale_after_ms", "max_frame_age_ms"):
            key = "max_skew_ms" if name == "max_camera_skew_ms" else name
            self.set_limits(**{key: value})
        elif name == "drop_implausible_plans":
            self.set_plausibility(drop=value)
        elif name in ("plausibility.max_first_waypoint_m", "plausibility.max_speed_mps"):
            self.set_plausibility(**{name.split(".", 1)[1]: value})
        elif self.reasoner is not None and name == "reasoning.enabled":
            self.reasoner.enabled = bool(value)
        elif self.reasoner is not None and name == "reasoning.max_tokens":
            self.reasoner.max_tokens = int(value)
        elif self.reasoner is not None and name == "reasoning.max_rate_hz":
            self.reasoner.max_rate_hz = float(value)

    # ---- planning thread ----

    def plan_next(self, timeout: Optional[float] = None) -> Optional[PlanStep]:
        """The newest complete set planned, its frame age and the latest reasoning text filled in;
        None when none came within ``timeout`` s or it was dropped (too old, rejected output,
        inference failure: counted and logged)."""
        pending = self.next_set(timeout)
        if pending is None:
            return None
        age_ms = self.too_old(pending, self._stamp_clock())
        if age_ms is not None:
            self.log.warn("too_old", f"camera set {age_ms:.0f} ms old when planning started "
                                     f"(max_frame_age_ms {self.max_frame_age_ms:g}): dropped")
            return None
        try:
            step = self.plan(pending)
        except PlanParseError as exc:
            self.log.warn(f"parse:{exc}", f"model output rejected (nothing published): {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - counted; /diagnostics shows ERROR
            self.log.warn(f"inference:{type(exc).__name__}:{exc}",
                          f"inference failed: {type(exc).__name__}: {exc}", error=True)
            return None
        out = step.output
        out.frame_age_ms = (self._stamp_clock() - out.stamp_ns) / 1e6
        if self.reasoning_enabled:
            last = self.reasoner.last  # one read: text and stamp of the same generation
            out.reasoning, out.reasoning_stamp_ns = last.text, last.stamp_ns
        return step

    def plan_frames(self, frames: Mapping[str, np.ndarray], instruction: str, speed: float,
                    stamp_ns: int = 0) -> PlanOutput:
        """One camera set, synchronously (no sync, keep-latest or counters): for in-process callers
        that own the timeline (DAgger, calibration). Raises PlanParseError for an unusable output."""
        raw = self.session.step(self.preprocess(frames), instruction, speed)
        return parse_plan(raw, self.spec, stamp_ns=stamp_ns, backend=self.backend,
                          instruction=instruction, speed=speed)

    def reset_history(self) -> None:
        """A new drive: the session forgets its frame history."""
        self.session.reset()

    def next_set(self, timeout: Optional[float] = None) -> Optional[PendingSet]:
        return self.slot.get(timeout)

    def too_old(self, pending: PendingSet, now_ns: int) -> Optional[float]:
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

    def plan(self, pending: PendingSet) -> PlanStep:
        """Run the model on one set (its output's frame age and reasoning are not filled yet).

        Raises PlanParseError for an unusable output (ImplausiblePlan, a subclass, for one that fails
        the plausibility guard) and re-raises runtime failures; all are counted (``invalid_outputs``
        / ``implausible_plans`` / ``inference_errors``) and leave the core usable. An implausible
        plan is not a model failure: it does not make /diagnostics an ERROR by itself.
        """
        try:
            return self._plan(pending)
        finally:
            with self._lock:
                if not self.slot:  # nothing newer waits: the CPU is free for reasoning
                    self.planner_idle.set()

    def _plan(self, pending: PendingSet) -> PlanStep:
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
            end_resets = getattr(self.session, "end_resets", 0)
            raw = self.session.step(images, instruction, 0.0 if speed is None else speed)
            if getattr(self.session, "end_resets", 0) > end_resets:  # the model said: instruction done
                self.counters.inc("end_resets")
        except Exception as exc:
            self.counters.inc("inference_errors")
            self.consecutive_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        t_inf = self._clock()
        latency_ms = (t_inf - t0) * 1000.0
        try:
            out = parse_plan(raw, self.spec, stamp_ns=fs.stamp_ns, latency_ms=latency_ms,
                             frame_age_ms=-1.0, frames_dropped=dropped,
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
        out.timings = PlanTimings(pending.ready_mono, (t0 - pending.ready_mono) * 1000.0,
                                  (t_pre - t0) * 1000.0, (t_inf - t_pre) * 1000.0,
                                  (self._clock() - t_inf) * 1000.0)
        for name, ms in out.timings.stages_ms().items():
            self.stages[name].add(ms)
        self._seq += 1
        self.latency.add(latency_ms)
        self.counters.inc("plans")
        self.consecutive_failures = 0
        self.last_plan_mono = self._clock()
        return PlanStep(out, raw, fs)

    # ---- diagnostics ----

    def snapshot(self) -> PlannerSnapshot:
        now = self._clock()
        with self._lock:
            sync = self.sync.counters()
            cam_err = dict(self.camera_errors)
            instruction = self._instruction
        counters = self.counters.snapshot()
        return PlannerSnapshot(
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



    # ---- reasoning ----

    @property
    def reasoning_enabled(self) -> bool:
        return self.reasoner is not None and self.reasoner.enabled

    def start_reasoning(self, on_text: Callable[[str, int, float], None], *, enabled: bool = True,
                        max_tokens: int = 64, max_rate_hz: float = 1.0, nice: int = 10) -> ReasoningWorker:
        """Start the ReasoningWorker: ``on_text(text, stamp_ns, gen_ms)`` gets each text."""
        self.reasoner = ReasoningWorker(self._generate, on_text, max_tokens=max_tokens,
                                        max_rate_hz=max_rate_hz, on_error=self._on_reasoning_error,
                                        nice=nice)
        self.reasoner.enabled = bool(enabled)
        return self.reasoner.start()

    def explain(self, step: PlanStep) -> None:
        """Hand a published step to reasoning (latest only; nothing when reasoning is off)."""
        if self.reasoning_enabled:
            self.reasoner.submit(step.raw, step.output.stamp_ns)

    def stop(self) -> None:
        """Wake the planning thread for good and stop reasoning (idempotent)."""
        self.slot.close()
        if self.reasoner is not None:
            self.reasoner.stop()

    def _generate(self, raw: dict, max_tokens: int) -> str:
        # One decode step at a time, each after the planner went idle (bounded: text still comes
        # when camera sets arrive back to back).
        idle = self.planner_idle
        return self.session.reason(raw, max_tokens=max_tokens,
                                   before_step=lambda: idle.wait(_REASONING_WAIT_S))

    def _on_reasoning_error(self, exc: BaseException) -> None:
        self.log.warn(f"reasoning:{type(exc).__name__}", f"reasoning failed: {type(exc).__name__}: {exc}")

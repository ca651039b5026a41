"""Raw planner arrays -> :class:`PlanOutput` (ROS-free).

The planner returns a dict of numpy arrays (see docs/ARCHITECTURE.md, "Planner graph"). This module
turns one step's arrays into a validated, self-describing :class:`PlanOutput`; ``fill.py`` turns that
into ROS messages. Nothing here hard-codes the waypoint count, spacing or frame: they come from the
model's ``config.json`` (``ModelSpec``: ``waypoint_count``, ``waypoint_dt``, ``frame_id``, ``end_threshold``).

A non-finite or malformed output raises :class:`PlanParseError`: the caller counts it and publishes
nothing for that frame (a NaN path must never reach a controller).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

if TYPE_CHECKING:  # annotation only: the parser stays importable without the runners' packages
    from ..runners.spec import ModelSpec

__all__ = ["PlanOutput", "PlanTimings", "PlanParseError", "ImplausiblePlan", "PlausibilityLimits",
           "implausibility", "parse_plan", "waypoint_times"]

# A waypoint farther than this from the vehicle is treated as garbage (the model predicts a few
# seconds ahead: even 200 km/h for 10 s is ~560 m).
DEFAULT_MAX_ABS_M = 1000.0
# Slack when checking that end_prob is a probability (sigmoid/softmax outputs in fp16 can overshoot).
_PROB_TOL = 1e-3


class PlanParseError(ValueError):
    """The model's output for one frame is unusable (shape, NaN/Inf, out of range)."""


class ImplausiblePlan(PlanParseError):
    """A well-formed plan that fails the sanity checks of :class:`PlausibilityLimits`."""


@dataclass(frozen=True)
class PlausibilityLimits:
    """Bounds a plan must keep to be published when ``drop_implausible_plans`` is on."""

    max_first_waypoint_m: float = 20.0  # the first waypoint's distance from the ego (base_link origin)
    max_speed_mps: float = 50.0  # implied by consecutive waypoints (distance / time between them)


@dataclass(frozen=True)
class PlanTimings:
    """Where one plan's time went (ms of wall time), for /diagnostics and the benches."""

    ready_mono: float  # when the camera set became complete (time.monotonic s)
    queue_wait_ms: float  # set complete -> planning starts
    preprocess_ms: float
    inference_ms: float  # PlannerSession.step
    parse_ms: float

    def stages_ms(self) -> dict[str, float]:
        """{stage: ms} in planning order (the Planner's STAGES)."""
        return {"queue_wait": self.queue_wait_ms, "preprocess": self.preprocess_ms,
                "inference": self.inference_ms, "parse": self.parse_ms}


@dataclass
class PlanOutput:
    """One planning step, everything a message needs.

    ``waypoints`` are metres in ``frame_id`` (base_link: x forward, y left) at ``times_s`` seconds
    after ``stamp_ns`` (the anchor camera's stamp).
    """

    stamp_ns: int
    waypoints: np.ndarray  # (K, 2) float64, base_link
    times_s: np.ndarray  # (K,) float64, seconds after stamp
    end_prob: float
    latency_ms: float = 0.0  # sync-complete -> outputs parsed (preprocess + inference)
    frame_age_ms: float = 0.0  # now - camera stamp at publish time (inc. transport), -1 unknown
    frames_dropped: int = 0  # frame sets skipped (keep-latest) since the previous published plan
    backend: str = ""
    reasoning: str = ""
    reasoning_stamp_ns: int = 0  # stamp of the (earlier) plan whose frame set `reasoning` explains
    frame_id: str = "base_link"
    instruction: str = ""
    speed: float = 0.0
    end_threshold: float = 1.0
    seq: int = 0
    timings: Optional[PlanTimings] = None  # set by the Planner

    @property
    def instruction_completed(self) -> bool:
        """end_prob >= the model's end_threshold (DrivingPlan.end_of_instruction)."""
        return bool(self.end_prob >= self.end_threshold)

    @property
    def count(self) -> int:
        return int(self.waypoints.shape[0])

    def with_reasoning(self, text: str) -> "PlanOutput":
        return replace(self, reasoning=text)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (reports, logs)."""
        return {
            "stamp_ns": int(self.stamp_ns),
            "waypoints": self.waypoints.tolist(),
            "times_s": self.times_s.tolist(),
            "end_prob": float(self.end_prob),
            "instruction_completed": self.instruction_completed,
            "latency_ms": float(self.latency_ms),
            "frame_age_ms": float(self.frame_age_ms),
            "frames_dropped": int(self.frames_dropped),
            "backend": self.backend,
            "reasoning": self.reasoning,
            "reasoning_stamp_ns": int(self.reasoning_stamp_ns),
            "frame_id": self.frame_id,
            "instruction": self.instruction,
            "speed": float(self.speed),
            "seq": int(self.seq),
        }


def waypoint_times(count: int, dt_s: float) -> np.ndarray:
    """Seconds after the stamp of each waypoint: dt, 2dt, ..., K*dt."""
    return (np.arange(1, int(count) + 1, dtype=np.float64) * float(dt_s))


def implausibility(waypoints: np.ndarray, times_s: np.ndarray, limits: PlausibilityLimits) -> str:
    """Why a path breaks ``limits`` ('' when it does not): its first waypoint lies too far from
    the ego, or two consecutive waypoints are further apart than ``max_speed_mps`` allows."""
    wp = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
    if len(wp) == 0:
        return ""
    first = float(np.hypot(*wp[0]))
    if first > limits.max_first_waypoint_m:
        return f"first waypoint {first:.1f} m from the ego (limit {limits.max_first_waypoint_m:g} m)"
    if len(wp) < 2:
        return ""
    speeds = np.linalg.norm(np.diff(wp, axis=0), axis=1) / np.maximum(np.diff(times_s), 1e-9)
    i = int(np.argmax(speeds))
    if speeds[i] > limits.max_speed_mps:
        return (f"waypoints {i + 1}->{i + 2} imply {speeds[i]:.1f} m/s "
                f"(limit {limits.max_speed_mps:g} m/s)")
    return ""


def _scalar(value: Any, name: str) -> float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise PlanParseError(f"{name}: expected one value per frame, got shape {arr.shape}")
    out = float(arr.reshape(()))
    if not np.isfinite(out):
        raise PlanParseError(f"{name} is not finite ({out})")
    return out


def parse_plan(
    raw: Mapping[str, Any],
    spec: ModelSpec,
    *,
    stamp_ns: int,
    latency_ms: float = 0.0,
    frame_age_ms: float = 0.0,
    frames_dropped: int = 0,
    backend: str = "",
    reasoning: str = "",
    instruction: str = "",
    speed: float = 0.0,
    seq: int = 0,
    max_abs_m: float = DEFAULT_MAX_ABS_M,
) -> PlanOutput:
    """Validate one step's raw outputs and wrap them into a :class:`PlanOutput`.

    ``raw`` holds at least ``waypoints`` ((K, 2) or (1, K, 2)) and ``end_prob`` (scalar, (1,) or
    (1, 1)), as returned by ``PlannerSession.step`` or ``runner.plan``. Raises
    :class:`PlanParseError` when anything is malformed or not finite.
    """
    if "waypoints" not in raw:
        raise PlanParseError("model output has no 'waypoints'")
    wp = np.asarray(raw["waypoints"])
    if wp.ndim == 3 and wp.shape[0] == 1:
        wp = wp[0]
    if wp.ndim != 2 or wp.shape[1] != 2:
        raise PlanParseError(f"waypoints: expected (K, 2), got shape {tuple(np.shape(raw['waypoints']))}")
    if not np.issubdtype(wp.dtype, np.number):
        raise PlanParseError(f"waypoints: not numeric (dtype {wp.dtype})")
    if wp.shape[0] != spec.waypoint_count:
        raise PlanParseError(f"waypoints: model config says {spec.waypoint_count} points, output has {wp.shape[0]}")
    wp = wp.astype(np.float64, copy=True)
    if not np.all(np.isfinite(wp)):
        bad = int(np.count_nonzero(~np.isfinite(wp)))
        raise PlanParseError(f"waypoints: {bad} non-finite value(s)")
    if max_abs_m and float(np.max(np.abs(wp), initial=0.0)) > max_abs_m:
        raise PlanParseError(f"waypoints: |value| > {max_abs_m} m (max {float(np.max(np.abs(wp))):.3g})")

    if "end_prob" not in raw:
        raise PlanParseError("model output has no 'end_prob'")
    end_prob = _scalar(raw["end_prob"], "end_prob")
    if end_prob < -_PROB_TOL or end_prob > 1.0 + _PROB_TOL:
        raise PlanParseError(f"end_prob {end_prob} is not a probability")
    end_prob = min(max(end_prob, 0.0), 1.0)

    dt = float(spec.waypoint_dt)
    if not np.isfinite(dt) or dt <= 0:
        raise PlanParseError(f"waypoint dt {dt} from the model config is not positive")
    return PlanOutput(
        stamp_ns=int(stamp_ns),
        waypoints=wp,
        times_s=waypoint_times(wp.shape[0], dt),
        end_prob=end_prob,
        latency_ms=float(latency_ms),
        frame_age_ms=float(frame_age_ms),
        frames_dropped=int(frames_dropped),
        backend=str(backend),
        reasoning=str(reasoning),
        frame_id=spec.frame_id,
        instruction=str(instruction),
        speed=float(speed),
        end_threshold=float(spec.end_threshold),
        seq=int(seq),
    )

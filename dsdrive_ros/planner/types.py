"""What the Planner hands out: one planned step, a frame's arrival timing, a diagnostics snapshot."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

from dsdrive_ros.frames.sync import FrameSet
from dsdrive_ros.outputs.parse import PlanOutput

__all__ = ["FrameTiming", "PendingSet", "PlanStep", "PlannerSnapshot", "STAGES"]

# Stages of one planning step that the Planner times (PlanOutput.timings, PlannerSnapshot.stages_*).
STAGES = ("queue_wait", "preprocess", "inference", "parse")


class PlanStep(NamedTuple):
    """One camera set planned: the output to publish, the raw arrays (reasoning reads them) and the
    set itself (the debug image draws on its anchor frame)."""

    output: PlanOutput
    raw: dict[str, Any]
    frames: FrameSet


@dataclass
class PendingSet:
    """A complete camera set waiting for the planning thread."""

    frameset: FrameSet
    ready_mono: float  # when the set became complete (the Planner's clock, s)


@dataclass(frozen=True)
class FrameTiming:
    """One camera frame accepted by ``Planner.on_image``, for the ``frame_timer`` hook (benches)."""

    camera: str
    stamp_ns: int
    arrived_wall_ns: int  # time.time_ns() when it reached the Planner (before decoding)
    arrived_mono: float  # the Planner's clock at the same moment (PlanTimings.ready_mono's clock)
    decode_ms: float  # message -> model-sized frame (convert + resize)
    resize_ms: float  # the resize part of decode_ms


@dataclass
class PlannerSnapshot:
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

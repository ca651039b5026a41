"""The Planner's input side, ROS-free (executor threads call it): what it drops or fixes, and its
throttled log lines. ``PlannerInputs`` is mixed into ``Planner`` (planner.py), which owns the state.

Bad input is dropped (counted, one throttled WARN line per kind of problem) and planning goes on: an
undecodable image, one smaller than 1/4 of the model's input size per side or larger than 8192 px, a
zero stamp, a stamp more than 1 s ahead of the stamps' clock (camera host not synchronised), NaN/inf
odometry, a non-UTF-8 instruction. An empty instruction clears it, one over 1000 characters is
truncated (both WARN).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from dsdrive_ros.frames.sync import CameraSync
from dsdrive_ros.planner.reasoning import LatestSlot
from dsdrive_ros.planner.stats import Counters, RateMeter
from dsdrive_ros.planner.types import FrameTiming, PendingSet

if TYPE_CHECKING:
    from dsdrive_ros.runners.spec import ModelSpec

__all__ = ["FUTURE_STAMP_TOLERANCE_S", "MAX_INSTRUCTION_CHARS", "MIN_IMAGE_FRACTION", "MAX_IMAGE_SIDE",
           "LogThrottle", "PlannerLog", "PlannerInputs", "image_size_problem"]

FUTURE_STAMP_TOLERANCE_S = 1.0   # a frame stamped further ahead of the stamps' clock is dropped
MAX_INSTRUCTION_CHARS = 1000     # longer instructions are truncated (the model reads ~24 tokens)
MIN_IMAGE_FRACTION = 0.25        # of the model's input height/width: smaller frames are dropped
MAX_IMAGE_SIDE = 8192
THROTTLE_S = 2.0


def image_size_problem(height: int, width: int, model_height: int, model_width: int) -> str:
    """Why a camera image of this size is implausible for the model's input ('' when it is not)."""
    min_h = max(1, int(model_height * MIN_IMAGE_FRACTION))
    min_w = max(1, int(model_width * MIN_IMAGE_FRACTION))
    if height < min_h or width < min_w or height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        return (f"{width}x{height} image is implausible for the model's input (needs at least "
                f"{min_w}x{min_h}, at most {MAX_IMAGE_SIDE} px a side)")
    return ""


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} chars)"


class LogThrottle:
    """At most one log line per key per ``period_s`` (thread-safe). ``__call__`` returns None when
    the line is to be suppressed, else how many lines of that key were suppressed before it."""

    def __init__(self, period_s: float = THROTTLE_S, max_keys: int = 256,
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


_py_log = logging.getLogger("dsdrive_ros.planner")


class PlannerLog:
    """Where the Planner's lines go (the node: its rclpy logger; else Python logging). ``warn`` is
    throttled per kind (``key``, digits folded); the next line that gets through says how many were
    suppressed. One callable per severity: rclpy ties a severity to each call site."""

    def __init__(self, info: Callable[[str], None] = _py_log.info,
                 warning: Callable[[str], None] = _py_log.warning,
                 error: Callable[[str], None] = _py_log.error) -> None:
        self.info, self._warning, self._error = info, warning, error
        self._throttle = LogThrottle()

    def warn(self, key: str, text: str, error: bool = False) -> None:
        suppressed = self._throttle(_kind(key))
        if suppressed is None:
            return
        more = f" (+{suppressed} similar suppressed)" if suppressed else ""
        if error:  # two call sites: rclpy refuses a second severity at one
            self._error(text + more)
        else:
            self._warning(text + more)


class PlannerInputs:
    """Camera frames, instruction and odometry into the Planner: checked, counted, logged."""

    spec: ModelSpec
    log: PlannerLog
    counters: Counters
    frame_timer: Optional[Callable[[FrameTiming], None]]
    rates: dict[str, RateMeter]
    camera_errors: dict[str, int]
    sync: CameraSync
    slot: LatestSlot[PendingSet]
    planner_idle: threading.Event
    stale_after_ms: float
    _lock: threading.Lock
    _clock: Callable[[], float]
    _stamp_clock: Callable[[], int]
    _instruction: str
    _speed: Optional[tuple[float, float]]
    _dropped_since_plan: int

    # ---- as received: checked here ----

    def on_image(self, camera: str, stamp_ns: int, decode: Callable[[], Any]) -> bool:
        """One camera message: its stamp checked, then ``decode()`` (-> frames.ReducedFrame; raises
        ValueError/TypeError for a bad image) and the image size. Returns True when it completed a
        set. Every rejection is counted and logged (throttled)."""
        now_ns = self._stamp_clock()
        if stamp_ns == 0 and now_ns != 0:
            self.counters.inc("zero_stamps")
            self.log.warn(f"zero:{camera}", f"camera {camera}: frame with a zero stamp (header.stamp "
                                            "not set by the driver): dropped")
            return False
        if now_ns > 0 and stamp_ns - now_ns > int(FUTURE_STAMP_TOLERANCE_S * 1e9):
            self.counters.inc("future_stamps")
            self.log.warn(f"future:{camera}", f"camera {camera}: frame stamped "
                                              f"{(stamp_ns - now_ns) / 1e9:.1f} s ahead of this node's "
                                              "clock (host clocks not synchronised?): dropped")
            return False
        wall_ns, t0 = time.time_ns(), self._clock()
        try:
            frame = decode()
        except (ValueError, TypeError) as exc:  # frames.ImageDecodeError is a ValueError
            self.on_bad_frame(camera, str(exc))
            self.log.warn(f"{camera}:{exc}", f"camera {camera}: dropped a bad frame: {exc}")
            return False
        if self.frame_timer is not None:
            self.frame_timer(FrameTiming(camera, stamp_ns, wall_ns, t0, (self._clock() - t0) * 1e3,
                                         frame.resize_ms))
        why = image_size_problem(frame.height, frame.width, self.spec.image["height"], self.spec.image["width"])
        if why:
            self.on_bad_frame(camera, why)
            self.log.warn(f"{camera}:size", f"camera {camera}: dropped a bad frame: {why}")
            return False
        try:
            return self.on_frame(camera, stamp_ns, frame.pixels)
        except Exception as exc:  # noqa: BLE001 - never let a callback kill the executor
            self.on_bad_frame(camera, str(exc))
            self.log.warn(f"{camera}:{exc}", f"camera {camera}: frame rejected: {exc}")
            return False

    def on_instruction(self, text: str) -> None:
        """A new instruction as received: non-UTF-8 dropped, over-long truncated, empty clears it."""
        if "\ufffd" in text or "\x00" in text:
            self.counters.inc("bad_instruction")
            self.log.warn("instruction:utf8", "instruction is not valid UTF-8 text: dropped")
            return
        if len(text) > MAX_INSTRUCTION_CHARS:
            self.counters.inc("long_instruction")
            self.log.warn("instruction:long", f"instruction of {len(text)} characters truncated to "
                                              f"{MAX_INSTRUCTION_CHARS} (the model reads only its first tokens)")
            text = text[:MAX_INSTRUCTION_CHARS]
        if not text.strip():
            self.counters.inc("empty_instruction")
            self.log.warn("instruction:empty", "empty instruction: planning without one until the next")
        if self.set_instruction(text):
            self.log.info(f"instruction: {_short(text.strip())!r}")

    def on_odom_velocity(self, vx: Any, vy: Any) -> None:
        """The ego's planar velocity (odometry twist, m/s): its norm is the planner's speed input."""
        try:
            speed = float((vx * vx + vy * vy) ** 0.5)
        except (TypeError, ValueError, OverflowError):
            speed = float("nan")
        if not self.set_speed(speed):
            self.log.warn(f"odom:{vx},{vy}", f"odom: unusable speed ({vx}, {vy}): dropped")

    # ---- checked ----

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
            if self.slot.put(PendingSet(fs, now)):
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


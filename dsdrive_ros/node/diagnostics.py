"""/diagnostics for dsdrive_node: levels decided ROS-free from a PlannerSnapshot, then a DiagnosticArray.

Published on a timer, so silence is visible. Statuses:
  ``dsdrive_node: planner``        overall: OK / WARN / ERROR with the reason(s) in the message
  ``dsdrive_node: camera <name>``  per camera: rate, age of the last frame, decode errors, drops
Ages (camera, plan) are steady-clock time: they watch the data flow, and /diagnostics keeps coming
when /clock stops. A replay at half speed halves the input rates in steady time too (a 10 Hz camera
stays fresh for stale_after 500 ms down to rate 0.2).
Levels:
  ERROR  no plan for ``stale_after`` (since start or the last plan) or the model failed (the
         latest inference raised / gave an unusable output, or the model never loaded);
         under use_sim_time "no plan" is an ERROR only when sim time has advanced by
         ``stale_after`` too, else a WARN that says so (/clock paused, ended, not started or slow:
         no input is due);
  WARN   planning slower than the anchor camera's frame period (p50 latency > period, or sets
         dropped by keep-latest since the previous report), a camera stale (nothing for
         ``stale_after``), bad input messages were dropped since the previous report (undecodable
         or implausibly sized frames, zero or future stamps, NaN odometry, non-UTF-8 instruction),
         or since then: an endpoint with incompatible QoS appeared, camera messages never reached the node,
         an empty or over-long instruction arrived, a camera set older than max_frame_age_ms or an
         implausible plan was dropped;
  OK     otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from dsdrive_ros.node.topics import NODE_NAME
from dsdrive_ros.planner.types import PlannerSnapshot

__all__ = ["OK", "WARN", "ERROR", "Status", "DiagnosticsState", "Reporter", "SimSincePlan", "evaluate",
           "to_msg"]

OK, WARN, ERROR = 0, 1, 2
_LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}

# Counters whose increase since the previous report means bad input was dropped.
_BAD_INPUT = ("decode_errors", "zero_stamps", "future_stamps", "bad_odom", "bad_instruction",
              "unknown_camera")
# Counters whose increase since the previous report is worth a WARN too (not dropped input).
_NOTICES = {
    "empty_instruction": "empty instruction (planning without one)",
    "long_instruction": "over-long instruction truncated",
    "transport_lost": "camera messages that never reached the node (transport or queue)",
    "sets_too_old": "camera sets older than max_frame_age_ms dropped",
    "implausible_plans": "implausible plans dropped",
}
_MAX_TEXT = 200  # longest free text (instruction, errors) in a diagnostics value


@dataclass
class Status:
    level: int
    name: str
    message: str
    values: dict[str, str] = field(default_factory=dict)
    hardware_id: str = "dsdrive"


@dataclass
class DiagnosticsState:
    """Remembers the previous report's counters (for 'since last report' warnings)."""

    prev_counters: dict[str, int] = field(default_factory=dict)
    prev_sync: dict[str, int] = field(default_factory=dict)


class SimSincePlan:
    """Sim seconds since the last plan, seen from the /diagnostics ticks: the reference is the ROS
    time of the first tick that saw the current plan count (so it lags the plan by up to one
    period: an overdue plan under sim time is an ERROR up to one report later)."""

    def __init__(self) -> None:
        self._plans = -1
        self._ref_ns = 0

    def update(self, plans: int, ros_now_ns: int) -> float:
        if ros_now_ns <= 0:
            return 0.0  # no /clock yet: sim time has not started
        if plans != self._plans or self._ref_ns <= 0:
            self._plans, self._ref_ns = plans, ros_now_ns
        return (ros_now_ns - self._ref_ns) / 1e9


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _clip(text: str, n: int = _MAX_TEXT) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"


def evaluate(snap: PlannerSnapshot, stale_after_ms: float, state: Optional[DiagnosticsState] = None,
             extra: Optional[dict[str, Any]] = None, fatal: str = "",
             sim_since_plan_s: Optional[float] = None) -> list[Status]:
    """Statuses for one report. ``extra``: node-level values (reasoning, publish counts ...);
    ``fatal``: a reason the node cannot plan at all (e.g. the model failed to load);
    ``sim_since_plan_s``: under use_sim_time, sim seconds since the last plan (SimSincePlan)."""
    state = state if state is not None else DiagnosticsState()
    stale_s = stale_after_ms / 1000.0
    c = snap.counters
    errors: list[str] = []
    warns: list[str] = []

    if fatal:
        errors.append(fatal)
    if snap.consecutive_failures > 0:
        errors.append(f"model failed ({snap.consecutive_failures}x): {snap.last_error}")
    since_plan = snap.now_mono - (snap.last_plan_mono if snap.last_plan_mono is not None
                                  else snap.started_mono)
    if since_plan > stale_s:
        what = "no plan yet" if snap.last_plan_mono is None else "no plan"
        if sim_since_plan_s is not None and sim_since_plan_s <= stale_s:
            warns.append(f"{what} for {since_plan:.1f} s, sim time {sim_since_plan_s:.1f} s "
                         "(/clock paused or slow)")
        else:
            errors.append(f"{what} for {since_plan:.1f} s")

    stale = [cam for cam in snap.cameras
             if snap.camera_ages_s.get(cam) is None or snap.camera_ages_s[cam] > stale_s]
    if stale:
        warns.append("stale camera(s): " + ", ".join(stale))
    anchor_rate = snap.camera_rates.get(snap.anchor, 0.0)
    dropped = c.get("sets_dropped", 0) - state.prev_counters.get("sets_dropped", 0)
    slow = []
    if snap.latency_p50_ms is not None and anchor_rate > 0:
        period_ms = 1000.0 / anchor_rate
        if snap.latency_p50_ms > period_ms:
            slow.append(f"{snap.latency_p50_ms:.0f} ms > {period_ms:.0f} ms period")
    if dropped > 0:
        # sets replaced while the planner was busy: overload even when the received frame rate
        # looks low (frames the executor never took do not show in the rate)
        slow.append(f"{dropped} sets dropped since the last report")
    if slow:
        warns.append(f"planning slower than frames ({'; '.join(slow)})")
    bad = {k: c.get(k, 0) - state.prev_counters.get(k, 0) for k in _BAD_INPUT}
    bad = {k: v for k, v in bad.items() if v > 0}
    if bad:
        warns.append("dropped bad input: " + ", ".join(f"{v} {k}" for k, v in bad.items()))
    new_rejects = {k: snap.sync.get(k, 0) - state.prev_sync.get(k, 0)
                   for k in ("skew_rejects", "stale_rejects", "time_jumps", "duplicates", "out_of_order")}
    new_rejects = {k: v for k, v in new_rejects.items() if v > 0}
    if new_rejects:
        warns.append("sync: " + ", ".join(f"{v} {k}" for k, v in new_rejects.items()))
    qos_new = c.get("qos_incompatible", 0) - state.prev_counters.get("qos_incompatible", 0)
    if qos_new > 0:
        last = (extra or {}).get("qos_incompatible_last", "")
        warns.append(f"incompatible QoS: {qos_new} endpoint(s)" + (f" ({last})" if last else ""))
    for key, label in _NOTICES.items():
        n = c.get(key, 0) - state.prev_counters.get(key, 0)
        if n > 0:
            warns.append(f"{label}: {n}")

    level = ERROR if errors else WARN if warns else OK
    message = "; ".join(errors + warns) if (errors or warns) else "planning"
    values: dict[str, Any] = {
        "backend": snap.backend,
        "plans": snap.plans,
        "latency_p50_ms": snap.latency_p50_ms,
        "latency_p99_ms": snap.latency_p99_ms,
        "since_last_plan_s": since_plan,
        "frames": snap.sync.get("frames", 0),
        "anchor_frames": snap.sync.get("anchors", 0),
        "sets": snap.sync.get("sets", 0),
        "sets_dropped": c.get("sets_dropped", 0),
        "skew_rejects": snap.sync.get("skew_rejects", 0),
        "stale_rejects": snap.sync.get("stale_rejects", 0),
        "missing_rejects": snap.sync.get("missing", 0),
        "time_jumps": snap.sync.get("time_jumps", 0),
        "out_of_order": snap.sync.get("out_of_order", 0),
        "duplicates": snap.sync.get("duplicates", 0),
        "decode_errors": c.get("decode_errors", 0),
        "zero_stamps": c.get("zero_stamps", 0),
        "future_stamps": c.get("future_stamps", 0),
        "transport_lost": c.get("transport_lost", 0),
        "bad_odom": c.get("bad_odom", 0),
        "bad_instruction": c.get("bad_instruction", 0),
        "empty_instruction": c.get("empty_instruction", 0),
        "long_instruction": c.get("long_instruction", 0),
        "qos_incompatible": c.get("qos_incompatible", 0),
        "invalid_outputs": c.get("invalid_outputs", 0),
        "sets_too_old": c.get("sets_too_old", 0),
        "implausible_plans": c.get("implausible_plans", 0),
        "inference_errors": c.get("inference_errors", 0),
        "history_resets": c.get("resets", 0),  # time jumps and gaps
        "end_of_instruction_resets": c.get("end_resets", 0),  # end_prob > end_threshold
        "stale_cameras": ",".join(stale),
        "instruction": _clip(snap.instruction),
        "speed_mps": snap.speed,
        "last_error": _clip(snap.last_error),
    }
    for cam in snap.cameras:
        values[f"rate_hz.{cam}"] = snap.camera_rates.get(cam, 0.0)
    if extra:
        values.update(extra)
    statuses = [Status(level, "dsdrive_node: planner", message,
                       {k: _fmt(v) for k, v in values.items()})]

    for cam in snap.cameras:
        age = snap.camera_ages_s.get(cam)
        cam_level = WARN if cam in stale else OK
        cam_msg = ("no frames yet" if age is None else f"stale ({age:.1f} s)") if cam in stale else "ok"
        errs = snap.camera_errors.get(cam, 0)
        if errs - state.prev_counters.get(f"decode_errors.{cam}", 0) > 0:
            cam_level = max(cam_level, WARN)
            cam_msg = f"{cam_msg}; bad frames dropped" if cam_msg != "ok" else "bad frames dropped"
        statuses.append(Status(cam_level, f"dsdrive_node: camera {cam}", cam_msg, {
            "rate_hz": _fmt(snap.camera_rates.get(cam, 0.0)),
            "age_s": _fmt(age),
            "decode_errors": str(errs),
            "drops": str(snap.sync.get(f"drops.{cam}", 0)),
            "transport_lost": str(c.get(f"transport_lost.{cam}", 0)),
            "stale_rejects": str(snap.sync.get(f"stale.{cam}", 0)),
        }))

    state.prev_counters = dict(c)
    state.prev_counters.update({f"decode_errors.{cam}": n for cam, n in snap.camera_errors.items()})
    state.prev_sync = dict(snap.sync)
    return statuses


class Reporter:
    """One node's reports: levels from ``evaluate``, the node's name on its statuses, one log line
    whenever the overall level or the kind of reason changes (``log``: an rclpy logger)."""

    def __init__(self, node_name: str, log: Any) -> None:
        self.node_name = node_name
        self._log = log
        self._state = DiagnosticsState()
        self._sim_since_plan = SimSincePlan()
        self._sig: Optional[tuple[int, str]] = None

    def statuses(self, snap: PlannerSnapshot, stale_after_ms: float, extra: dict[str, Any], *,
                 fatal: str = "", sim_now_ns: Optional[int] = None,
                 inactive_reason: Optional[str] = None) -> list[Status]:
        """``sim_now_ns``: ROS time under use_sim_time (else None); ``inactive_reason``: the node is
        configured but not active (silence is expected then, not an error)."""
        sim_s = None if sim_now_ns is None else self._sim_since_plan.update(snap.plans, sim_now_ns)
        extra["sim_since_last_plan_s"] = sim_s
        statuses = evaluate(snap, stale_after_ms, self._state, extra, fatal=fatal, sim_since_plan_s=sim_s)
        if inactive_reason is not None:
            for st in statuses:
                st.level, st.message = OK, f"inactive ({inactive_reason})"
        if self.node_name != NODE_NAME:  # several planners on one /diagnostics: statuses by node name
            for st in statuses:
                if st.name.startswith(NODE_NAME + ":"):
                    st.name = self.node_name + st.name[len(NODE_NAME):]
        self._log_change(statuses[0])
        return statuses

    def _log_change(self, status: Status) -> None:
        sig = (status.level, re.sub(r"[0-9.]+", "#", status.message))
        if sig == self._sig:
            return
        prev, self._sig = self._sig, sig
        if status.level >= ERROR:
            self._log.error(f"diagnostics ERROR: {status.message}")
        elif status.level == WARN:
            self._log.warning(f"diagnostics WARN: {status.message}")
        elif prev is not None and prev[0] != OK:
            self._log.info(f"diagnostics OK: {status.message}")


def level_name(level: int) -> str:
    return _LEVEL_NAMES.get(level, str(level))


def to_msg(statuses: list[Status], stamp: Any, node_name: str = "dsdrive_node") -> Any:
    """DiagnosticArray (diagnostic_msgs) from statuses; ``stamp``: builtin_interfaces/Time."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    arr = DiagnosticArray()
    arr.header.stamp = stamp
    out = []
    for s in statuses:
        st = DiagnosticStatus()
        st.level = bytes([s.level])
        st.name = s.name
        st.message = s.message
        st.hardware_id = s.hardware_id
        st.values = [KeyValue(key=k, value=v) for k, v in s.values.items()]
        out.append(st)
    arr.status = out
    return arr

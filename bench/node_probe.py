#!/usr/bin/env python3
"""dsdrive_node with per-frame stage timing, for bench/node_bench.py (a benchmark helper, not a tool).

Runs the unmodified ``dsdrive_ros.node.dsdrive_node`` main() with thin timing wrappers around what the
node calls (no change to its logic, threads or QoS):
  * the image decode (``FrameReducer.image_msg`` / ``compressed_msg``, executor thread) -> decode time
    per camera message (convert + resize), the resize part of it (``FrameReducer.shrink``), and the
    wall time the first camera message of each stamp reached its callback;
  * ``PlanningCore.plan`` -> the core's own per-stage times (queue_wait, preprocess, inference, parse:
    ``PlanOutput.extra["stages_ms"]``) and when planning returned;
  * the DrivingPlan publisher -> time from plan() returning to the plan being published (frame age,
    fill_path, fill_plan, both publishes).
For every plan one std_msgs/String (JSON) goes to ``dsdrive_bench/stages`` after the plan itself, so the
bench can break each frame's end-to-end latency down. The wrappers cost a few microseconds per frame.
The core's stage percentiles are also added to /diagnostics (``stage.*``) when the node does not
publish them itself.

A/B switches for the benchmark (environment; unset = the node as shipped):
  DSDRIVE_BENCH_ORT="planner_threads=2,reasoner_threads=1,spinning=0"
      ONNX Runtime session options per graph (intra-op threads, thread-pool spin-waiting), applied
      where OnnxRuntimeRunner creates its sessions: the proposed runner change, measured in the node.
  DSDRIVE_BENCH_REASONING_NICE=N
      the reasoning thread's niceness increment (ReasoningWorker(nice=N); 0 = as before it had one).

    python bench/node_probe.py --ros-args --params-file config/dsdrive.params.yaml -p model_dir:=...
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from dsdrive_ros.node import dsdrive_node as dn

STAGES_TOPIC = "dsdrive_bench/stages"

_lock = threading.Lock()
_by_stamp: dict[int, dict[str, Any]] = {}  # stamp_ns -> what is known about that frame set so far


def _entry(stamp_ns: int) -> dict[str, Any]:
    e = _by_stamp.get(stamp_ns)
    if e is None:
        if len(_by_stamp) > 512:  # dropped sets never get planned: forget the oldest
            for k in sorted(_by_stamp)[:256]:
                del _by_stamp[k]
        e = _by_stamp[stamp_ns] = {"decode_ms": [], "first_cb_wall_ns": None, "first_cb_mono": None}
    return e


_shrink_ms = threading.local()  # FrameReducer.shrink's time within the decode running on this thread


def _timed_decode(fn):
    def decode(self: Any, msg: Any, *a: Any, **k: Any):
        wall, t0 = time.time_ns(), time.monotonic()
        _shrink_ms.value = 0.0
        try:
            return fn(self, msg, *a, **k)
        finally:
            ms = (time.monotonic() - t0) * 1e3
            try:
                stamp = dn.time_to_ns(msg.header.stamp)
            except Exception:  # noqa: BLE001 - a malformed message: nothing to attribute
                stamp = None
            if stamp is not None:
                with _lock:
                    e = _entry(stamp)
                    e["decode_ms"].append(ms)
                    e.setdefault("resize_ms", []).append(_shrink_ms.value)
                    if e["first_cb_wall_ns"] is None:
                        e["first_cb_wall_ns"], e["first_cb_mono"] = wall, t0
    return decode


def _timed_shrink(fn):
    def shrink(self: Any, *a: Any, **k: Any):
        t0 = time.monotonic()
        try:
            return fn(self, *a, **k)
        finally:
            _shrink_ms.value = getattr(_shrink_ms, "value", 0.0) + (time.monotonic() - t0) * 1e3
    return shrink


dn.FrameReducer.image_msg = _timed_decode(dn.FrameReducer.image_msg)
dn.FrameReducer.compressed_msg = _timed_decode(dn.FrameReducer.compressed_msg)
dn.FrameReducer.shrink = _timed_shrink(dn.FrameReducer.shrink)

_orig_evaluate = dn.evaluate


def _evaluate(snap: Any, *a: Any, **k: Any):
    statuses = _orig_evaluate(snap, *a, **k)
    if statuses:
        values = statuses[0].values
        for which in ("p50", "p99"):
            for stage, v in (getattr(snap, f"stages_{which}_ms", None) or {}).items():
                values.setdefault(f"stage.{stage}_{which}_ms", "n/a" if v is None else f"{v:.3f}")
    return statuses


dn.evaluate = _evaluate


class _PublisherProxy:
    def __init__(self, pub: Any, publish: Any) -> None:
        self._pub, self.publish = pub, publish

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pub, name)


class ProbedNode(dn.DSDriveNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from std_msgs.msg import String

        self._probe_pub = self.create_publisher(String, STAGES_TOPIC, 50)
        self._probe_String = String
        self._probe_local = threading.local()
        core_plan = self.core.plan

        def plan(pending: Any, *a: Any, **k: Any):
            out, raw = core_plan(pending, *a, **k)
            self._probe_local.info = (pending, out, time.monotonic())
            return out, raw

        self.core.plan = plan
        pub_plan = self.pub_plan

        def publish_plan(msg: Any) -> None:
            pub_plan.publish(msg)
            t_end, wall_end = time.monotonic(), time.time_ns()
            info = getattr(self._probe_local, "info", None)
            if info is None:
                return
            pending, out, t_plan = info
            with _lock:
                e = _by_stamp.pop(int(out.stamp_ns), None) or {}
            first = e.get("first_cb_mono")
            rec = {
                "stamp_ns": int(out.stamp_ns),
                "in_wall_ns": e.get("first_cb_wall_ns"),
                "decode_ms": e.get("decode_ms", []),
                "resize_ms": e.get("resize_ms", []),
                # first camera callback -> set complete (decode of all cameras + arrival spread)
                "sync_ms": None if first is None else (pending.ready_mono - first) * 1e3,
                **{f"{k}_ms": v for k, v in out.extra.get("stages_ms", {}).items()},
                "publish_ms": (t_end - t_plan) * 1e3,
                "published_wall_ns": wall_end,
            }
            self._probe_pub.publish(self._probe_String(data=json.dumps(rec)))

        self.pub_plan = _PublisherProxy(pub_plan, publish_plan)  # rclpy's Publisher has __slots__


dn.DSDriveNode = ProbedNode  # main() constructs DSDriveNode() by its module-global name


def _ort_options_from_env() -> None:
    conf = os.environ.get("DSDRIVE_BENCH_ORT", "").strip()
    if conf:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import ort_options

        ort_options.apply(conf)


def _reasoning_nice_from_env() -> None:
    nice = os.environ.get("DSDRIVE_BENCH_REASONING_NICE", "").strip()
    if not nice:
        return
    base = dn.ReasoningWorker

    class Worker(base):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.nice = int(nice)

    dn.ReasoningWorker = Worker


_ort_options_from_env()
_reasoning_nice_from_env()

if __name__ == "__main__":
    sys.exit(dn.main())

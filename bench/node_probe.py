"""dsdrive_node with per-frame stage timing, for bench/node_bench.py (a benchmark helper, not a tool).

Runs ``ProbedNode``, a DSDriveNode subclass, through the node's own ``run_node`` (logic, threads and
QoS unchanged). It reads the Planner's official timing hooks:
  * ``Planner.frame_timer`` -> per camera message the decode time (convert + resize), its resize part
    and the wall time the first camera message of each stamp reached the Planner;
  * ``PlanOutput.timings`` -> the Planner's per-stage times (queue_wait, preprocess, inference, parse)
    and when the set became complete;
  * the DrivingPlan publisher -> time from planning done to the plan being published (frame age,
    reasoning text, fill_path, fill_plan, both publishes).
For every plan one std_msgs/String (JSON) goes to ``dsdrive_bench/stages`` after the plan itself, so the
bench can break each frame's end-to-end latency down. The hooks cost a few microseconds per frame.
The Planner's stage percentiles are added to /diagnostics (``stage.*``, through the node's
``_diagnostic_values``).

A/B switches for the benchmark (environment; unset = the node as shipped):
  DSDRIVE_BENCH_ORT="planner_threads=2,reasoner_threads=1,spinning=0"
      ONNX Runtime session options per graph (intra-op threads, thread-pool spin-waiting), applied
      where OnnxRuntimeRunner creates its sessions: the proposed runner change, measured in the node.
  DSDRIVE_BENCH_REASONING_NICE=N
      the reasoning thread's niceness increment (``reasoning_nice``; 0 = as before it had one).

    python bench/node_probe.py --ros-args --params-file config/dsdrive.params.yaml -p model_dir:=...
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from dsdrive_ros.node.dsdrive_node import DSDriveNode, run_node
from dsdrive_ros.node.topics import NODE_NAME
from dsdrive_ros.planner.types import FrameTiming, PlanStep

STAGES_TOPIC = "dsdrive_bench/stages"


class _PublisherProxy:
    def __init__(self, pub: Any, publish: Any) -> None:
        self._pub, self.publish = pub, publish

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pub, name)


class ProbedNode(DSDriveNode):
    def __init__(self, **kwargs: Any) -> None:
        nice = os.environ.get("DSDRIVE_BENCH_REASONING_NICE", "").strip()
        if nice:
            self.reasoning_nice = int(nice)
        super().__init__(**kwargs)
        from std_msgs.msg import String

        self._probe_pub = self.create_publisher(String, STAGES_TOPIC, 50)
        self._probe_String = String
        self._probe_local = threading.local()
        self._lock = threading.Lock()
        self._by_stamp: dict[int, dict[str, Any]] = {}  # stamp_ns -> what is known about that set so far
        self.planner.frame_timer = self._on_frame  # before spinning: no frame has arrived yet
        self._plan_pub = self.pub_plan
        self.pub_plan = _PublisherProxy(self.pub_plan, self._publish_plan)  # rclpy's Publisher has __slots__

    def _entry(self, stamp_ns: int) -> dict[str, Any]:
        e = self._by_stamp.get(stamp_ns)
        if e is None:
            if len(self._by_stamp) > 512:  # dropped sets never get planned: forget the oldest
                for k in sorted(self._by_stamp)[:256]:
                    del self._by_stamp[k]
            e = self._by_stamp[stamp_ns] = {"decode_ms": [], "resize_ms": [], "first_cb_wall_ns": None,
                                            "first_cb_mono": None}
        return e

    def _on_frame(self, t: FrameTiming) -> None:
        with self._lock:
            e = self._entry(t.stamp_ns)
            e["decode_ms"].append(t.decode_ms)
            e["resize_ms"].append(t.resize_ms)
            if e["first_cb_wall_ns"] is None:
                e["first_cb_wall_ns"], e["first_cb_mono"] = t.arrived_wall_ns, t.arrived_mono

    def _publish(self, step: PlanStep) -> None:
        self._probe_local.step = step
        super()._publish(step)

    def _publish_plan(self, msg: Any) -> None:
        self._plan_pub.publish(msg)
        t_end, wall_end = time.monotonic(), time.time_ns()
        step = getattr(self._probe_local, "step", None)
        if step is None or step.output.timings is None:
            return
        out, timings = step.output, step.output.timings
        stages = timings.stages_ms()
        planned_mono = timings.ready_mono + sum(stages.values()) / 1e3
        with self._lock:
            e = self._by_stamp.pop(int(out.stamp_ns), None) or {}
        first = e.get("first_cb_mono")
        rec = {
            "stamp_ns": int(out.stamp_ns),
            "in_wall_ns": e.get("first_cb_wall_ns"),
            "decode_ms": e.get("decode_ms", []),
            "resize_ms": e.get("resize_ms", []),
            # first camera callback -> set complete (decode of all cameras + arrival spread)
            "sync_ms": None if first is None else (timings.ready_mono - first) * 1e3,
            **{f"{k}_ms": v for k, v in stages.items()},
            "publish_ms": (t_end - planned_mono) * 1e3,
            "published_wall_ns": wall_end,
        }
        self._probe_pub.publish(self._probe_String(data=json.dumps(rec)))

    def _diagnostic_values(self) -> dict[str, Any]:
        values = super()._diagnostic_values()
        snap = self.planner.snapshot()
        for which in ("p50", "p99"):
            for stage, v in getattr(snap, f"stages_{which}_ms").items():
                values[f"stage.{stage}_{which}_ms"] = "n/a" if v is None else f"{v:.3f}"
        return values


def _ort_options_from_env() -> None:
    conf = os.environ.get("DSDRIVE_BENCH_ORT", "").strip()
    if conf:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import ort_options

        ort_options.apply(conf)


if __name__ == "__main__":
    _ort_options_from_env()
    sys.exit(run_node(lambda: ProbedNode(), NODE_NAME))

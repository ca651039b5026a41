"""Per-graph ONNX Runtime session options for the benchmarks (the proposed OnnxRuntimeRunner change).

``apply("planner_threads=2,reasoner_threads=1,spinning=0")`` makes every session that
``dsdrive_ros.runners.onnxruntime_runner`` creates from then on use those intra-op thread counts
(per graph: the file name says planner or reasoner) and thread-pool spin-waiting setting; the rest of
the runner's options (graph optimisation level, providers) are kept. ``apply("")`` restores ORT.
"""
from __future__ import annotations

import os
from typing import Any


def parse(conf: str) -> dict[str, str]:
    return dict(kv.strip().split("=", 1) for kv in conf.split(",") if "=" in kv)


def apply(conf: str) -> None:
    import onnxruntime as ort

    from dsdrive_ros.runners import onnxruntime_runner

    if not conf.strip():
        onnxruntime_runner.ort = ort
        return
    cfg = parse(conf)

    class _OrtShim:
        """onnxruntime, with InferenceSession taking per-graph thread options."""

        def __getattr__(self, name: str) -> Any:
            return getattr(ort, name)

        @staticmethod
        def InferenceSession(path: Any, opts: Any = None, *a: Any, **k: Any) -> Any:
            role = "reasoner" if "reasoner" in os.path.basename(str(path)) else "planner"
            o = ort.SessionOptions()
            if opts is not None:
                o.graph_optimization_level = opts.graph_optimization_level
                o.intra_op_num_threads = opts.intra_op_num_threads
            if f"{role}_threads" in cfg:
                o.intra_op_num_threads = int(cfg[f"{role}_threads"])
            if "spinning" in cfg:
                o.add_session_config_entry("session.intra_op.allow_spinning", str(int(cfg["spinning"])))
            return ort.InferenceSession(path, o, *a, **k)

    onnxruntime_runner.ort = _OrtShim()

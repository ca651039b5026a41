"""ONNX Runtime: the backend every test runs; CUDA when the wheel has it, else CPU."""
from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from .base import RunnerError, check_io, zero_inputs
from .spec import ModelSpec

log = logging.getLogger(__name__)
PREFERRED_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def session_options(threads: int, spinning: bool) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spin-waiting pool threads burn the cores that the other graph, the ROS executor and other
    # processes need; on a shared 2-core CPU the planner ran 3-8x slower with it (bench/node_bench.py).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


class OnnxRuntimeRunner:
    """threads: the planner's intra-op threads (0 = one per physical core). The reasoner decodes one
    token at a time (tiny matmuls) on its caller's thread alone: no pool of its own competing with
    the planner's (its caller, the reasoning thread, runs at a lower priority)."""

    def __init__(self, spec: ModelSpec, precision: str = "fp32", threads: int = 0, warmup: bool = True,
                 reasoner_threads: int = 1, spinning: bool = False):
        if precision not in ("fp32", "int8"):
            raise RunnerError(f"ONNX Runtime runs fp32 or int8 (Q/DQ) here, not {precision!r}; "
                              "fp16 needs the TensorRT backend")
        self.spec = spec
        planner_path = spec.file("planner")
        if precision == "int8":
            planner_path = planner_path.with_suffix(".int8.onnx")
            if not planner_path.is_file():
                raise RunnerError(f"{planner_path} is missing: run export/quantize.py --onnx-dir {spec.dir}")
        providers = [p for p in PREFERRED_PROVIDERS if p in ort.get_available_providers()]
        try:
            self.planner = ort.InferenceSession(str(planner_path), session_options(threads, spinning),
                                                providers=providers)
            self.reasoner = ort.InferenceSession(str(spec.file("reasoner")),
                                                 session_options(reasoner_threads, spinning), providers=providers)
        except Exception as e:  # ORT raises its own exception types for corrupt/unsupported models
            raise RunnerError(f"ONNX Runtime cannot load the model in {spec.dir}: {e}") from e
        for graph, sess in (("planner", self.planner), ("reasoner", self.reasoner)):
            check_io(spec, graph, {i.name: i.shape for i in sess.get_inputs()},
                     {o.name: o.shape for o in sess.get_outputs()})
        self._planner_outputs = [o.name for o in self.planner.get_outputs()]
        self.name = f"onnxruntime:{self.planner.get_providers()[0]}" + (":int8" if precision == "int8" else "")
        if warmup:  # first run allocates and picks kernels; keep that off the first real frame
            self.plan(zero_inputs(spec))
        log.info("loaded %s on %s", spec.dir, self.name)

    def plan(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._planner_outputs, self.planner.run(self._planner_outputs, inputs)))

    def decode(self, input_ids: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, present = self.reasoner.run(["logits", "present_kv"], {"input_ids": input_ids, "past_kv": past_kv})
        return logits, present

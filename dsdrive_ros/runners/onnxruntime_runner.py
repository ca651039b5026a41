"""ONNX Runtime: the backend every test runs; CUDA when the wheel has it, else CPU."""
from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from .base import RunnerError, check_io, zero_inputs
from .spec import ModelSpec

log = logging.getLogger(__name__)
PREFERRED_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxRuntimeRunner:
    def __init__(self, spec: ModelSpec, precision: str = "fp32", threads: int = 0, warmup: bool = True):
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
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.planner = ort.InferenceSession(str(planner_path), opts, providers=providers)
            self.reasoner = ort.InferenceSession(str(spec.file("reasoner")), opts, providers=providers)
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

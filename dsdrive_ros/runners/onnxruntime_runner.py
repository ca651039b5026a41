"""ONNX Runtime: the backend every test runs; its CUDA provider (onnxruntime-gpu) on NVIDIA GPUs.

Decoding goes through IO binding: the KV cache that one step returns is bound, where it lies, as the
next step's input, so on CUDA it never leaves the device (only the logits come back to pick the
token). The same code runs on the CPU provider, where the tests exercise it.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import numpy as np
import onnxruntime as ort

from .base import RunnerError, check_io, zero_inputs
from .spec import ModelSpec

log = logging.getLogger(__name__)
CUDA = "CUDAExecutionProvider"


def providers_for(device: str) -> tuple[list, str, int]:
    """(providers, IO-binding device type, device id) for `device`: cpu | cuda:N."""
    if device in ("", "cpu"):
        return ["CPUExecutionProvider"], "cpu", 0
    kind, _, index = device.partition(":")
    if kind != "cuda" or not (index or "0").isdigit():
        raise RunnerError(f"onnxruntime: device must be cpu or cuda:N, not {device!r}")
    if CUDA not in ort.get_available_providers():
        raise RunnerError(f"onnxruntime {ort.__version__} has no {CUDA} (providers "
                          f"{ort.get_available_providers()}): pip install -r requirements-gpu.txt")
    device_id = int(index or 0)
    return [(CUDA, {"device_id": device_id}), "CPUExecutionProvider"], "cuda", device_id


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
                 reasoner_threads: int = 1, spinning: bool = False, device: str = "cpu"):
        if precision not in ("fp32", "int8"):
            raise RunnerError(f"ONNX Runtime runs the exported weights as they are (precision fp32; an "
                              f"`--dtype fp16` export is fp16 inside) or int8 (Q/DQ), not {precision!r}; "
                              "fp16/bf16 compute: backend tensorrt or torch")
        self.spec = spec
        planner_path = spec.file("planner")
        if precision == "int8":
            planner_path = planner_path.with_suffix(".int8.onnx")
            if not planner_path.is_file():
                raise RunnerError(f"{planner_path} is missing: run export/quantize.py --onnx-dir {spec.dir}")
        providers, self._device, self._device_id = providers_for(device)
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
        if self._device == "cuda" and self.planner.get_providers()[0] != CUDA:
            # ORT falls back to the CPU silently when the CUDA provider cannot start (driver, cuDNN)
            raise RunnerError(f"onnxruntime could not start {CUDA} on {device} (session providers "
                              f"{self.planner.get_providers()}); see ONNX Runtime's log above")
        self._planner_outputs = [o.name for o in self.planner.get_outputs()]
        self.name = (f"onnxruntime:{self.planner.get_providers()[0]}" + (":int8" if precision == "int8" else "")
                     + ("" if spec.weights_dtype == "fp32" else f":{spec.weights_dtype}-weights"))
        if warmup:  # first run allocates and picks kernels; keep that off the first real frame
            self.plan(zero_inputs(spec))
        log.info("loaded %s on %s", spec.dir, self.name)

    def plan(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._planner_outputs, self.planner.run(self._planner_outputs, inputs)))

    def decode(self, input_ids: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, present = self.reasoner.run(["logits", "present_kv"], {"input_ids": input_ids, "past_kv": past_kv})
        return logits, present

    def generate_ids(self, prefix_kv: np.ndarray, bos: int, eos: int, max_tokens: int,
                     before_step: Optional[Callable[[], object]] = None) -> list[int]:
        """Greedy ids after `bos` (see `generate`); the KV cache stays where the provider put it."""
        binding = self.reasoner.io_binding()
        past = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(prefix_kv), self._device, self._device_id)
        ids = np.empty((prefix_kv.shape[2], 1), dtype=np.int64)
        token, out = bos, []
        for _ in range(max_tokens):
            if before_step is not None:
                before_step()
            ids[:] = token
            binding.bind_cpu_input("input_ids", ids)
            binding.bind_ortvalue_input("past_kv", past)
            binding.bind_output("logits")  # to the host: the argmax is taken there
            binding.bind_output("present_kv", self._device, self._device_id)
            self.reasoner.run_with_iobinding(binding)
            logits, past = binding.get_outputs()
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
            token = int(np.argmax(logits.numpy()[0, -1]))
            if token == eos:
                break
            out.append(token)
        return out

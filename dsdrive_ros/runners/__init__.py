"""Where the model runs: one runner class per runtime behind the same plan()/decode() interface.

The runtime path (spec, ONNX Runtime, TensorRT, session) never imports torch; only `torch_runner` does.
"""
from __future__ import annotations

import importlib.util

from ..model.tokenizer import DSDriveTokenizer
from .base import Runner, RunnerError
from .generate import generate
from .session import PlannerSession
from .spec import ModelSpec, ModelSpecError

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def load_tokenizer(spec: ModelSpec) -> DSDriveTokenizer:
    return DSDriveTokenizer.load(spec.file("tokenizer"))


def make_runner(spec: ModelSpec, backend: str = "auto", precision: str = "fp32",
                engine_cache_dir: str | None = None, threads: int = 0) -> Runner:
    """`auto` takes TensorRT where it is importable (the vehicle), else ONNX Runtime."""
    if backend not in BACKENDS:
        raise RunnerError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "auto":
        backend = "tensorrt" if importlib.util.find_spec("tensorrt") is not None else "onnxruntime"
        if backend == "onnxruntime" and precision == "fp16":  # no fp16 path in ORT here: fp32 is faithful
            precision = "fp32"
    if backend == "tensorrt":
        from .tensorrt_runner import TensorRTRunner
        return TensorRTRunner(spec, precision, engine_cache_dir)
    if backend == "torch":
        from .torch_runner import TorchRunner
        return TorchRunner(spec, precision)
    from .onnxruntime_runner import OnnxRuntimeRunner
    return OnnxRuntimeRunner(spec, precision, threads)


__all__ = ["BACKENDS", "ModelSpec", "ModelSpecError", "PlannerSession", "Runner", "RunnerError",
           "generate", "load_tokenizer", "make_runner"]

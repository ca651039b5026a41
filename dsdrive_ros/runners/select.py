"""Which runtime runs the model: a named backend, or `auto`'s chain of fallbacks.

`auto` tries, in order: TensorRT, ONNX Runtime CUDA, PyTorch CUDA, ONNX Runtime CPU. A candidate
that cannot be imported, finds no GPU, or fails while loading is passed over with its reason; one
log line (Selection.summary, logged by the caller) says what was chosen and why the others were
not. A backend named explicitly is not replaced: its failure is the caller's error (the node stops
with it).
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from typing import Callable, Optional

from .base import Runner, RunnerError
from .spec import ModelSpec

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
AUTO_CHAIN = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu")
# Device nodes of an NVIDIA GPU: desktop/server driver, Jetson (nvgpu / nvhost). Checked before
# importing torch just to learn that there is no GPU (seconds and hundreds of MB on a CPU machine).
GPU_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/nvgpu/igpu0", "/dev/nvhost-gpu")


@dataclass(frozen=True)
class RunnerOptions:
    precision: str = "fp32"
    engine_cache_dir: Optional[str] = None
    threads: int = 0
    device: str = ""  # '' = the backend's choice (cuda:0 where it can use a GPU)


@dataclass
class Selection:
    runner: Runner
    passed_over: dict[str, str] = field(default_factory=dict)  # candidate -> why

    def summary(self) -> str:
        return f"backend auto: {self.runner.name} (passed over - {_reasons(self.passed_over)})"


def _reasons(passed: dict[str, str]) -> str:
    """One line: each candidate's first line of error, shortened."""
    return "; ".join(f"{k}: {v.splitlines()[0][:240]}" for k, v in passed.items()) or "none"


def gpu_device_present() -> bool:
    return any(glob.glob(pattern) for pattern in GPU_DEVICE_NODES)


def _half_to_fp32(precision: str) -> str:
    """For `auto`: ONNX Runtime runs the exported weights as they are (an fp32 or fp16 export) or the
    int8 planner, so a half-precision request falls to fp32 there rather than failing."""
    return "fp32" if precision in ("fp16", "bf16") else precision


def _tensorrt(spec: ModelSpec, o: RunnerOptions) -> Runner:
    from .tensorrt_runner import TensorRTRunner
    return TensorRTRunner(spec, o.precision, o.engine_cache_dir)


def _onnxruntime(spec: ModelSpec, o: RunnerOptions, device: str, precision: str) -> Runner:
    from .onnxruntime_runner import CUDA, OnnxRuntimeRunner, ort
    device = device or ("cuda:0" if CUDA in ort.get_available_providers() else "cpu")
    return OnnxRuntimeRunner(spec, precision, o.threads, device=device)


def _torch(spec: ModelSpec, o: RunnerOptions, device: str) -> Runner:
    if o.precision == "int8":
        raise RunnerError("the torch backend has no int8 (precision fp32, fp16 or bf16)")
    try:
        from .torch_runner import TorchRunner
    except ImportError as e:
        raise RunnerError(f"import torch failed: {e}") from e
    return TorchRunner(spec, o.precision, device, threads=o.threads)


def _torch_cuda(spec: ModelSpec, o: RunnerOptions) -> Runner:
    if not gpu_device_present():
        raise RunnerError(f"no NVIDIA GPU device ({', '.join(GPU_DEVICE_NODES)})")
    return _torch(spec, o, o.device or "cuda:0")


CANDIDATES: dict[str, Callable[[ModelSpec, RunnerOptions], Runner]] = {
    "tensorrt": _tensorrt,
    "onnxruntime-cuda": lambda spec, o: _onnxruntime(spec, o, o.device or "cuda:0", _half_to_fp32(o.precision)),
    "torch-cuda": _torch_cuda,
    "onnxruntime-cpu": lambda spec, o: _onnxruntime(spec, o, "cpu", _half_to_fp32(o.precision)),
}


def select_runner(spec: ModelSpec, backend: str, options: RunnerOptions) -> Selection:
    """The runner for `backend`; for `auto` the first candidate of AUTO_CHAIN that loads."""
    if backend not in BACKENDS:
        raise RunnerError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "tensorrt":
        return Selection(_tensorrt(spec, options))
    if backend == "onnxruntime":
        return Selection(_onnxruntime(spec, options, options.device, options.precision))
    if backend == "torch":
        return Selection(_torch(spec, options, options.device))
    passed: dict[str, str] = {}
    last: Optional[Exception] = None
    for name in AUTO_CHAIN:
        if options.device == "cpu" and name != "onnxruntime-cpu":
            passed[name] = "device is cpu"
            continue
        try:
            runner = CANDIDATES[name](spec, options)
        except Exception as e:  # noqa: BLE001 - import, driver, build and load failures alike
            passed[name] = f"{type(e).__name__}: {e}"
            last = e
            continue
        return Selection(runner, passed)
    # the CPU fallback failing is usually the model itself (corrupt, mismatched): its error in full
    last_name = AUTO_CHAIN[-1]
    raise RunnerError(f"backend auto: no runtime could load the model. {last_name}: {passed.pop(last_name)} "
                      f"(passed over before it - {_reasons(passed)})") from last

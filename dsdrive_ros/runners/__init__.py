"""Where the model runs: one runner class per runtime behind the same plan()/decode() interface.

The runtime path (spec, ONNX Runtime, TensorRT, session) never imports torch; only `torch_runner` does.
Nothing here imports `tokenizers` or onnxruntime at import time: bench/gpu_core.py runs the torch
runner on a machine with only torch and numpy.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .base import Runner, RunnerError
from .generate import generate
from .select import BACKENDS, RunnerOptions, Selection, select_runner
from .session import PlannerSession
from .spec import ModelSpec, ModelSpecError

if TYPE_CHECKING:
    from ..model.tokenizer import DSDriveTokenizer

log = logging.getLogger(__name__)


def load_tokenizer(spec: ModelSpec) -> "DSDriveTokenizer":
    from ..model.tokenizer import DSDriveTokenizer
    return DSDriveTokenizer.load(spec.file("tokenizer"))


def make_runner(spec: ModelSpec, backend: str = "auto", precision: str = "fp32",
                engine_cache_dir: str | None = None, threads: int = 0, device: str = "") -> Runner:
    """`auto`: TensorRT, ONNX Runtime CUDA, torch CUDA, ONNX Runtime CPU, the first that loads."""
    selection = select_runner(spec, backend, RunnerOptions(precision, engine_cache_dir, threads, device))
    if backend == "auto":
        log.info(selection.summary())
    return selection.runner


__all__ = ["BACKENDS", "ModelSpec", "ModelSpecError", "PlannerSession", "Runner", "RunnerError", "RunnerOptions",
           "Selection", "generate", "load_tokenizer", "make_runner", "select_runner"]

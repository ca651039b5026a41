"""PyTorch as a runtime: NVIDIA machines without TensorRT (many Jetsons), and the CPU for tests.

- `device` (`cuda:0`, `cpu`) and fp32/fp16/bf16 weights (graph I/O stays fp32 numpy, as for ONNX);
- on CUDA the planner step is captured once as a CUDA graph and replayed (one launch, not ~1000),
  on a high-priority stream so that a decode step never delays a plan;
- decoding uses a static KV cache on the device (`Reasoner.step_static`): the token and its
  position stay on the device too, the next token is the argmax there, and the host reads the
  tokens once per `SYNC_EVERY` steps, not once per token. On CUDA each step is a CUDA graph replay.

The weights come from `model.safetensors` beside the ONNX, or from a model in memory
(bench/gpu_core.py: random `1b` weights on a GPU machine that has only torch and numpy).
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..export.onnx_export import DTYPES, PLANNER_OUTPUTS  # the ONNX graphs' dtypes and outputs, also this runner's
from ..model.dsdrive import DSDrive
from .base import RunnerError, zero_inputs
from .spec import ModelSpec

log = logging.getLogger(__name__)
SYNC_EVERY = 16  # decode steps between two reads of the tokens by the host (an eos check)


def resolve_device(device: str) -> torch.device:
    """'' = cuda:0 when torch sees a GPU, else cpu. A CUDA device that is not there is an error."""
    if not device:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise RunnerError(f"torch backend: device {device!r} is not a torch device (cuda:0, cpu): {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RunnerError(f"torch backend: device {device!r} asked for, but torch {torch.__version__} sees no "
                          f"CUDA GPU (built for CUDA {torch.version.cuda}); use device cpu or another backend")
    if dev.type not in ("cuda", "cpu"):
        raise RunnerError(f"torch backend: device must be cuda:N or cpu, not {device!r}")
    return dev


def _graphed(fn: Callable[[], object], stream: torch.cuda.Stream) -> torch.cuda.CUDAGraph:
    """Capture fn (static inputs and outputs) as a CUDA graph after warm-up runs on `stream`."""
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # lazy initialisation (cuBLAS handles, autotuning) stays out of the graph
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    # thread_local: CUDA work of other threads (another runner) may run during the capture
    with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
        fn()
    return graph


class _StaticPlanner:
    """The planner's inputs and outputs as fixed device tensors; a CUDA graph replay on CUDA."""

    def __init__(self, model: DSDrive, spec: ModelSpec, device: torch.device, dtype: torch.dtype):
        self.model, self.device = model, device
        self.inputs = {k: torch.from_numpy(v).to(device) for k, v in zero_inputs(spec).items()}
        for k, t in self.inputs.items():
            if t.is_floating_point():
                self.inputs[k] = t.to(dtype)
        self.outputs: dict[str, torch.Tensor] = {}
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.stream: Optional[torch.cuda.Stream] = None
        if device.type == "cuda":
            _, highest = torch.cuda.Stream.priority_range()
            self.stream = torch.cuda.Stream(device, priority=highest)
            self.graph = _graphed(self._forward, self.stream)

    def _forward(self) -> None:
        out = self.model.plan(**self.inputs)
        self.outputs = {k: out[k] for k in PLANNER_OUTPUTS}

    def __call__(self, inputs: dict) -> dict[str, np.ndarray]:
        if self.stream is not None:  # images may come from the caller's stream (TorchPreprocessor)
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
            for k, v in inputs.items():
                src = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
                self.inputs[k].copy_(src, non_blocking=True)
            if self.graph is not None:
                self.graph.replay()
            else:
                self._forward()
            # .cpu() waits for this stream only: small outputs (K*2 waypoints, NQ tokens, a prefix KV)
            return {k: t.float().cpu().numpy() for k, t in self.outputs.items()}


class _StaticDecoder:
    """Greedy decoding on a static KV cache on the device (batch 1, the node's case)."""

    def __init__(self, model: DSDrive, spec: ModelSpec, device: torch.device, dtype: torch.dtype):
        cfg = model.cfg
        self.reasoner, self.device = model.reasoner, device
        self.length = spec.query_tokens + spec.max_reasoning_tokens
        self.cache = torch.zeros(cfg.reasoner_layers, 2, 1, cfg.reasoner_kv_heads, self.length,
                                 cfg.reasoner_head_dim, device=device, dtype=dtype)
        self.token = torch.zeros(1, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.stream: Optional[torch.cuda.Stream] = None
        if device.type == "cuda":
            self.stream = torch.cuda.Stream(device)
            self.pos.fill_(spec.query_tokens)
            self.graph = _graphed(self._step, self.stream)

    def _step(self) -> None:
        """Next token from (token, pos), both on the device; then pos + 1."""
        logits = self.reasoner.step_static(self.token, self.pos, self.cache)
        self.token.copy_(logits.argmax(-1).view(1, 1))
        self.pos.add_(1)

    def __call__(self, prefix_kv: np.ndarray, bos: int, eos: int, max_tokens: int,
                 before_step: Optional[Callable[[], object]] = None) -> list[int]:
        if prefix_kv.shape[2] != 1:
            raise RunnerError(f"the static KV cache decodes batch 1, not {prefix_kv.shape[2]}")
        nq = prefix_kv.shape[4]
        limit = min(max_tokens, self.length - nq)
        out: list[int] = []
        with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
            self.cache[..., :nq, :].copy_(torch.from_numpy(np.ascontiguousarray(prefix_kv)), non_blocking=True)
            self.token.fill_(bos)
            self.pos.fill_(nq)
            produced = torch.empty(limit, dtype=torch.long, device=self.device)
            for start in range(0, limit, SYNC_EVERY):
                end = min(start + SYNC_EVERY, limit)
                if before_step is not None:
                    before_step()
                for i in range(start, end):
                    if self.graph is not None:
                        self.graph.replay()
                    else:
                        self._step()
                    produced[i:i + 1].copy_(self.token.view(1))
                ids = produced[start:end].tolist()  # the one host read per SYNC_EVERY tokens
                if eos in ids:
                    return out + ids[:ids.index(eos)]
                out += ids
        return out


class TorchRunner:
    def __init__(self, spec: ModelSpec, precision: str = "fp32", device: str = "cpu",
                 model: Optional[DSDrive] = None, threads: int = 0):
        """threads: torch's CPU threads (0 = torch's default). Decode steps are tiny: on a busy CPU
        a pool of 2 runs them ~10x slower than 1 (measured on this 2-core machine under load)."""
        dtype = DTYPES.get(precision)
        if dtype is None:
            raise RunnerError(f"torch backend precision must be one of {sorted(DTYPES)}, not {precision!r}")
        dev = resolve_device(device)
        if threads > 0 and dev.type == "cpu":
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        if model is None:
            weights = Path(spec.dir) / "model.safetensors"
            if not weights.is_file():
                raise RunnerError(f"{weights} is missing: the torch backend needs the weights")
            from ..model.checkpoint import load_checkpoint  # safetensors: not needed with a model in memory
            model = load_checkpoint(spec.dir)
        self.spec, self.device, self.dtype = spec, dev, dtype
        self.model = model.to(dev, dtype).eval()
        with torch.inference_mode():
            self._planner = _StaticPlanner(self.model, spec, dev, dtype)
            self._decoder = _StaticDecoder(self.model, spec, dev, dtype)
        cuda_graphs = "+cuda-graphs" if dev.type == "cuda" else ""
        self.name = f"torch:{dev}:{precision}{cuda_graphs}"
        log.info("loaded %s on %s", spec.dir, self.name)

    def _t(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        return t.to(self.dtype) if t.is_floating_point() else t

    @torch.inference_mode()
    def plan(self, inputs: dict) -> dict[str, np.ndarray]:
        """inputs: the planner's inputs as numpy arrays, or `images` already a tensor on the device
        (TorchPreprocessor: preprocess_on_gpu)."""
        return self._planner(inputs)

    @torch.inference_mode()
    def decode(self, input_ids: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step on a growing cache, the ONNX reasoner's interface (tests, generate_recompute)."""
        logits, present = self.model.reasoner.step(self._t(input_ids), self._t(past_kv))
        return logits.float().cpu().numpy(), present.float().cpu().numpy()

    @torch.inference_mode()
    def generate_ids(self, prefix_kv: np.ndarray, bos: int, eos: int, max_tokens: int,
                     before_step: Optional[Callable[[], object]] = None) -> list[int]:
        """Greedy token ids after `bos` (see `generate`), on the static device cache."""
        return self._decoder(prefix_kv, bos, eos, max_tokens, before_step)

"""TensorRT 10 runner: tensor-name API, execute_async_v3 on one CUDA stream (cuda-python for memory).

Thin on purpose: it cannot run in this workplace (no TensorRT). Engines come from
`export.tensorrt_build.ensure_engines` (cached by the hash of every file of the graph, TensorRT
version, GPU, precision and builder settings). Decoding keeps the KV cache on the device: two
buffers sized for the longest text, each step's `present_kv` written into the one the next step
reads as `past_kv`; only the logits come to the host (the argmax).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..export.tensorrt_build import ensure_engines, import_tensorrt
from .base import check_io
from .spec import ModelSpec


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    return cudart


def _ok(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class _Engine:
    def __init__(self, trt, runtime, path: Path, cudart, stream):
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {path} (built for another TensorRT/GPU?)")
        self.context = self.engine.create_execution_context()
        self.cudart, self.stream = cudart, stream
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity bytes)

    def io_shapes(self) -> tuple[dict, dict]:
        shape = lambda n: [int(d) if d >= 0 else "dyn" for d in self.engine.get_tensor_shape(n)]  # noqa: E731
        return {n: shape(n) for n in self.inputs}, {n: shape(n) for n in self.outputs}

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self.buffers.get(name, (0, 0))
        if nbytes > cap:  # grow only: the reasoner's KV cache gets longer each step
            if ptr:
                _ok(self.cudart.cudaFree(ptr))
            ptr, cap = _ok(self.cudart.cudaMalloc(max(nbytes, 2 * cap))), max(nbytes, 2 * cap)
            self.buffers[name] = (ptr, cap)
        return ptr

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cu, h2d, d2h = self.cudart, self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, \
            self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self.inputs:
            a = np.ascontiguousarray(feeds[name], dtype=self.dtypes[name])
            self.context.set_input_shape(name, a.shape)
            ptr = self._buffer(name, a.nbytes)
            _ok(cu.cudaMemcpyAsync(ptr, a.ctypes.data, a.nbytes, h2d, self.stream))
            self.context.set_tensor_address(name, ptr)
        out = {}
        for name in self.outputs:
            out[name] = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name])
            self.context.set_tensor_address(name, self._buffer(name, out[name].nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for name, a in out.items():
            _ok(cu.cudaMemcpyAsync(a.ctypes.data, self.buffers[name][0], a.nbytes, d2h, self.stream))
        _ok(cu.cudaStreamSynchronize(self.stream))
        return out


class TensorRTRunner:
    def __init__(self, spec: ModelSpec, precision: str = "fp16", engine_cache_dir: str | Path | None = None,
                 build: bool = True):
        trt = import_tensorrt()
        cudart = _cudart()
        self.spec = spec
        paths = ensure_engines(spec, precision, Path(engine_cache_dir or spec.dir / "engines"), build=build)
        # separate streams, the planner's at the highest priority: a reasoning step running in
        # another thread never delays a plan on the GPU
        _, highest = _ok(cudart.cudaDeviceGetStreamPriorityRange())
        plan_stream = _ok(cudart.cudaStreamCreateWithPriority(cudart.cudaStreamNonBlocking, highest))
        text_stream = _ok(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking))
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.planner = _Engine(trt, runtime, paths["planner"], cudart, plan_stream)
        self.reasoner = _Engine(trt, runtime, paths["reasoner"], cudart, text_stream)
        for graph, eng in (("planner", self.planner), ("reasoner", self.reasoner)):
            check_io(spec, graph, *eng.io_shapes())
        self.name = f"tensorrt:{trt.__version__}:{precision}"

    def plan(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.planner.run(inputs)

    def decode(self, input_ids: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.reasoner.run({"input_ids": input_ids, "past_kv": past_kv})
        return out["logits"], out["present_kv"]

    def generate_ids(self, prefix_kv: np.ndarray, bos: int, eos: int, max_tokens: int,
                     before_step: Optional[Callable[[], object]] = None) -> list[int]:
        """Greedy ids after `bos` (see `generate`) with the KV cache ping-ponging between two device
        buffers (contiguous (NL, 2, B, KVH, P, HD) for every P: a step's output is the next input)."""
        eng, cu = self.reasoner, self.reasoner.cudart
        ctx, stream = eng.context, eng.stream
        h2d = cu.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cu.cudaMemcpyKind.cudaMemcpyDeviceToHost
        prefix = np.ascontiguousarray(prefix_kv, dtype=eng.dtypes["past_kv"])
        nl, two, batch, kvh, past, hd = prefix.shape
        limit = min(max_tokens, self.spec.max_reasoning_tokens)
        cap = prefix.itemsize * nl * two * batch * kvh * (past + limit) * hd
        kv = [eng._buffer("kv_ping", cap), eng._buffer("kv_pong", cap)]
        _ok(cu.cudaMemcpyAsync(kv[0], prefix.ctypes.data, prefix.nbytes, h2d, stream))
        ids = np.empty((batch, 1), dtype=eng.dtypes["input_ids"])
        ids_ptr = eng._buffer("input_ids", ids.nbytes)
        vocab = int(self.spec.io("reasoner", "outputs")["logits"][0][-1])
        logits = np.empty((batch, 1, vocab), dtype=eng.dtypes["logits"])
        logits_ptr = eng._buffer("logits", logits.nbytes)
        token, out = bos, []
        for step in range(limit):
            if before_step is not None:
                before_step()
            ids[:] = token
            _ok(cu.cudaMemcpyAsync(ids_ptr, ids.ctypes.data, ids.nbytes, h2d, stream))
            ctx.set_input_shape("input_ids", ids.shape)
            ctx.set_input_shape("past_kv", (nl, two, batch, kvh, past + step, hd))
            for name, ptr in (("input_ids", ids_ptr), ("past_kv", kv[step % 2]),
                              ("present_kv", kv[(step + 1) % 2]), ("logits", logits_ptr)):
                ctx.set_tensor_address(name, ptr)
            if not ctx.execute_async_v3(stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (reasoner)")
            _ok(cu.cudaMemcpyAsync(logits.ctypes.data, logits_ptr, logits.nbytes, d2h, stream))
            _ok(cu.cudaStreamSynchronize(stream))
            token = int(np.argmax(logits[0, -1]))
            if token == eos:
                break
            out.append(token)
        return out

"""TensorRT engines from the exported ONNX (TensorRT 10 builder API; written with 11 in mind).

What does not need TensorRT (cache keys, optimization-profile shapes) is plain Python and tested on
machines without a GPU; `build_engine` imports tensorrt lazily.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..runners.spec import ModelSpec

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class TensorRTUnavailable(RuntimeError):
    pass


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTUnavailable(
            "TensorRT is not importable here (`import tensorrt` failed: "
            f"{e}). Build engines on the target (Jetson/x86 with TensorRT 10+), or use "
            "backend=onnxruntime.") from e
    return trt


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_for(spec: ModelSpec, graph: str, precision: str) -> Path:
    """int8 builds the planner from its Q/DQ ONNX (explicit quantization: no calibrator)."""
    path = spec.file(graph)
    if graph == "planner" and precision == "int8":
        path = path.with_suffix(".int8.onnx")
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run export/quantize.py --onnx-dir {spec.dir} first")
    return path


def graph_files(onnx_path: Path) -> list[Path]:
    """What TensorRT reads for one graph: the .onnx and, when its weights are external, the
    `<name>.onnx.data` beside it (one file per graph: dsdrive_ros.export.external_data)."""
    data = onnx_path.with_name(onnx_path.name + ".data")
    return [onnx_path, data] if data.is_file() else [onnx_path]


@dataclass(frozen=True)
class BuildSettings:
    """Builder settings that shape an engine: they are part of its cache key."""
    precision: str
    profiles: dict  # input -> (min, opt, max) shapes (max reasoning length included)
    workspace_gib: float = 2.0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")

    def text(self) -> str:
        return json.dumps({"precision": self.precision, "workspace_gib": self.workspace_gib,
                           "profiles": {k: [list(s) for s in v] for k, v in sorted(self.profiles.items())}},
                          sort_keys=True)


def cache_key(file_sha256: Sequence[str], trt_version: str, compute_capability: str,
              settings: BuildSettings) -> str:
    """An engine is only valid for the same graph AND weights (every file of the graph), TensorRT
    version, GPU architecture and builder settings (precision, workspace, profile shapes)."""
    parts = ["|".join(file_sha256), f"trt{trt_version}", f"sm{compute_capability}", settings.text()]
    return hashlib.sha256("#".join(parts).encode()).hexdigest()


def engine_key(spec: ModelSpec, graph: str, precision: str, trt_version: str, compute_capability: str,
               workspace_gib: float = 2.0) -> tuple[str, BuildSettings]:
    """(cache key, settings) of one graph's engine on a target; plain Python, no TensorRT needed."""
    onnx = onnx_for(spec, graph, precision)
    build_precision = "fp16" if graph == "reasoner" and precision == "int8" else precision
    settings = BuildSettings(build_precision, profile_shapes(spec, graph), workspace_gib)
    hashes = [sha256_file(f) for f in graph_files(onnx)]
    return cache_key(hashes, trt_version, compute_capability, settings), settings


@dataclass(frozen=True)
class EnginePath:
    graph: str
    key: str
    path: Path


def engine_path(cache_dir: Path, graph: str, key: str) -> EnginePath:
    return EnginePath(graph, key, Path(cache_dir) / f"{graph}.{key[:20]}.engine")


def profile_shapes(spec: ModelSpec, graph: str, max_batch: int = 1) -> dict[str, tuple[tuple, tuple, tuple]]:
    """(min, opt, max) per input for one optimization profile covering the dynamic axes in config.json."""
    ranges = {"batch": (1, 1, max_batch), "seq": (1, 1, spec.max_reasoning_tokens),
              "past": (spec.query_tokens, spec.query_tokens + 64, spec.query_tokens + spec.max_reasoning_tokens)}
    out = {}
    for name, (shape, _) in spec.io(graph, "inputs").items():
        out[name] = tuple(tuple(ranges[d][i] if isinstance(d, str) else d for d in shape) for i in range(3))
    return out


def current_target() -> tuple[str, str]:
    """(TensorRT version, GPU compute capability) of this machine."""
    trt = import_tensorrt()
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:  # cuda-python < 12.6
        from cuda import cudart
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise TensorRTUnavailable(f"no CUDA device: cudaGetDeviceProperties returned {err}")
    return trt.__version__, f"{props.major}{props.minor}"


def build_engine(onnx_path: Path, out_path: Path, precision: str, profiles: dict, workspace_gib: float = 2.0) -> Path:
    """Parse the ONNX and build a serialized engine, logging progress while TensorRT works."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.INFO)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # deprecated no-op in 10, gone in 11
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":  # TensorRT 9+, Ampere and newer
        config.set_flag(trt.BuilderFlag.BF16)
    elif precision == "int8":  # Q/DQ nodes carry the scales; FP16 lets non-quantized layers run fast
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profiles.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)

    class Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            log.info("TensorRT: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name, step):
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            pass

    config.progress_monitor = Progress()
    t0 = time.monotonic()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"TensorRT failed to build {onnx_path} ({precision}); see the log above")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".partial")
    tmp.write_bytes(bytes(blob))
    tmp.replace(out_path)  # a killed build never leaves a half engine under the cache name
    log.info("built %s in %.0f s", out_path, time.monotonic() - t0)
    return out_path


def ensure_engines(spec: ModelSpec, precision: str, cache_dir: Path, build: bool = True,
                   workspace_gib: float = 2.0) -> dict[str, Path]:
    """Engines for planner and reasoner for this machine: from the cache when the key matches, else built."""
    version, cc = current_target()
    out = {}
    for graph in ("planner", "reasoner"):
        key, settings = engine_key(spec, graph, precision, version, cc, workspace_gib)
        ep = engine_path(cache_dir, graph, key)
        if not ep.path.is_file():
            if not build:
                raise FileNotFoundError(f"no cached {graph} engine for TensorRT {version}, sm{cc}, {precision} "
                                        f"({ep.path}); build it with export/to_tensorrt.py")
            log.info("no cached engine for %s (key %s): building", graph, ep.key[:12])
            build_engine(onnx_for(spec, graph, precision), ep.path, settings.precision, settings.profiles,
                         settings.workspace_gib)
        out[graph] = ep.path
    return out

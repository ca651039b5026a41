"""Build (and cache) TensorRT engines for planner and reasoner from an exported model directory.

    python export/to_tensorrt.py --onnx-dir MODEL_DIR --precision fp16|bf16|fp32|int8 [--engine-cache-dir DIR] [--build-only]

int8 builds the planner from planner.int8.onnx (Q/DQ, from export/quantize.py): no calibrator.
Engines are cached under the sha256 of every file of the graph (.onnx + .onnx.data) + TensorRT
version + GPU compute capability + builder settings (precision, workspace, profile shapes).
Without --build-only, one planner step is run as a smoke test after the build.
(The command behind export/to_tensorrt.py.)
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..runners import ModelSpec, ModelSpecError
from .tensorrt_build import PRECISIONS, TensorRTUnavailable, ensure_engines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx-dir", type=Path, required=True)
    ap.add_argument("--precision", choices=PRECISIONS, default="fp16")
    ap.add_argument("--engine-cache-dir", type=Path, default=None, help="default: ONNX_DIR/engines")
    ap.add_argument("--build-only", action="store_true", help="build and cache, do not run")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        spec = ModelSpec.load(args.onnx_dir)
        paths = ensure_engines(spec, args.precision, args.engine_cache_dir or spec.dir / "engines")
    except TensorRTUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (ModelSpecError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for graph, path in paths.items():
        print(f"{graph}: {path}")
    if not args.build_only:
        from ..runners.base import zero_inputs
        from ..runners.tensorrt_runner import TensorRTRunner
        runner = TensorRTRunner(spec, args.precision, args.engine_cache_dir, build=False)
        print("smoke test waypoints:", runner.plan(zero_inputs(spec))["waypoints"].tolist())
    return 0


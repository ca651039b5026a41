"""INT8 (explicit Q/DQ, symmetric) planner calibrated on real frames; reports its error vs fp32.

    python export/quantize.py --onnx-dir MODEL_DIR --calib BAG_OR_DATASET [--frames 64]

Writes MODEL_DIR/planner.int8.onnx and MODEL_DIR/quantization.json (the command behind export/quantize.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..runners import ModelSpecError
from .quantize import quantize_planner


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx-dir", type=Path, required=True)
    ap.add_argument("--calib", type=Path, required=True, help="rosbag2 or dataset folder with real frames")
    ap.add_argument("--frames", type=int, default=64, help="calibration frames (as many again are held out)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = quantize_planner(args.onnx_dir, args.calib, n_calib=args.frames, n_eval=args.frames)
    except (ModelSpecError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


"""dsdrive-export: a DSDrive checkpoint to planner.onnx + reasoner.onnx + config.json + tokenizer.json.

    dsdrive-export --checkpoint CKPT_DIR --out MODEL_DIR        (or: python export/to_onnx.py ...)
    dsdrive-export --random --preset tiny --out build/models/random-tiny

The export validates itself (ONNX Runtime vs PyTorch) and exits non-zero above --tolerance.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .onnx_export import ExportValidationError, export_onnx
from ..model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..model.tokenizer import DSDriveTokenizer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="folder with config.json + model.safetensors + tokenizer.json")
    src.add_argument("--random", action="store_true", help="random weights (a stand-in model)")
    ap.add_argument("--preset", default="tiny", help="with --random: tiny | 1b")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max abs error allowed (fp32)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        if args.random:
            from .random_model import random_model
            model, tokenizer, preset = *random_model(args.preset, args.seed), args.preset
        else:
            model = load_checkpoint(args.checkpoint)
            tokenizer = DSDriveTokenizer.load(args.checkpoint / "tokenizer.json")
            preset = None
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_checkpoint(model, args.out)  # weights beside the ONNX: the torch runner and int8 calibration use them
    try:
        report = export_onnx(model, tokenizer, args.out, preset=preset, opset=args.opset, tolerance=args.tolerance)
    except ExportValidationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (max abs error {max(report.values()):.2e}, tolerance {args.tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

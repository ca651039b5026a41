"""dsdrive-export: a DSDrive checkpoint to planner.onnx + reasoner.onnx + config.json + tokenizer.json.

    dsdrive-export --checkpoint CKPT_DIR --out MODEL_DIR        (or: python export/to_onnx.py ...)
    dsdrive-export --random --preset tiny --out build/models/random-tiny
    dsdrive-export --random --preset 1b --dtype fp16 --out /tmp/dsdrive-1b

A graph over 2 GB (the `1b` planner) keeps its weights in one file beside it (planner.onnx.data);
--external-data does that for every graph. The export validates itself (ONNX Runtime vs PyTorch in
the same dtype) and exits non-zero above --tolerance (default per dtype).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .onnx_export import BF16_REFUSED, DTYPES, TOLERANCE, ExportValidationError, export_onnx
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
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights' dtype (graph I/O stays fp32)")
    ap.add_argument("--external-data", action="store_true",
                    help="weights in <graph>.onnx.data for every graph (automatic above 2 GB)")
    ap.add_argument("--tolerance", type=float, default=None,
                    help=f"max abs error allowed (default per dtype: {TOLERANCE})")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.dtype == "bf16":
        print(f"error: {BF16_REFUSED}", file=sys.stderr)
        return 2

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
    model = model.to(DTYPES[args.dtype])
    save_checkpoint(model, args.out)  # weights beside the ONNX: the torch runner and int8 calibration use them
    tolerance = TOLERANCE[args.dtype] if args.tolerance is None else args.tolerance
    try:
        report = export_onnx(model, tokenizer, args.out, preset=preset, opset=args.opset, tolerance=tolerance,
                             external_data=args.external_data)
    except ExportValidationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.dtype}, max abs error {max(report.values()):.2e}, tolerance {tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

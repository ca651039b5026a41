#!/usr/bin/env python3
"""Export a DSDrive checkpoint to planner.onnx + reasoner.onnx + config.json + tokenizer.json.

    python export/to_onnx.py --checkpoint CKPT_DIR --out MODEL_DIR
    python export/to_onnx.py --random --preset tiny --out build/models/random-tiny

The same as the installed `dsdrive-export` (dsdrive_ros/export/cli.py); this runs from a checkout.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dsdrive_ros.export.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Export a DSDrive checkpoint to planner.onnx + reasoner.onnx + config.json + tokenizer.json.

    python export/to_onnx.py --checkpoint CKPT_DIR --out MODEL_DIR
    python export/to_onnx.py --random --preset tiny --out build/models/random-tiny

The same as the installed `dsdrive-export`.

Thin entry point: the code is dsdrive_ros.export.cli:main. Run it where dsdrive_ros is importable
(`. scripts/ros_env.sh`, a sourced colcon install, `pip install .`, or PYTHONPATH=<repo root>).
"""
import sys

from dsdrive_ros.export.cli import main

if __name__ == "__main__":
    sys.exit(main())

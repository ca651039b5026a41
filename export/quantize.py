#!/usr/bin/env python3
"""INT8 (explicit Q/DQ) planner calibrated on real frames, with its error against fp32.

    python export/quantize.py --onnx-dir MODEL_DIR --calib BAG_OR_DATASET [--frames 64]

Thin entry point: the code is dsdrive_ros.export.quantize_cli:main. Run it where dsdrive_ros is importable
(`. scripts/ros_env.sh`, a sourced colcon install, `pip install .`, or PYTHONPATH=<repo root>).
"""
import sys

from dsdrive_ros.export.quantize_cli import main

if __name__ == "__main__":
    sys.exit(main())

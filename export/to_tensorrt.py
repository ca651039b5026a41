#!/usr/bin/env python3
"""Build (and cache) TensorRT engines for planner and reasoner from an exported model directory.

    python export/to_tensorrt.py --onnx-dir MODEL_DIR --precision fp16|bf16|fp32|int8 [--engine-cache-dir DIR] [--build-only]

Thin entry point: the code is dsdrive_ros.export.tensorrt_cli:main. Run it where dsdrive_ros is importable
(`. scripts/ros_env.sh`, a sourced colcon install, `pip install .`, or PYTHONPATH=<repo root>).
"""
import sys

from dsdrive_ros.export.tensorrt_cli import main

if __name__ == "__main__":
    sys.exit(main())

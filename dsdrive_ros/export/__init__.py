"""Export library behind the top-level export/*.py entry points and `dsdrive-export`.

``cli`` (dsdrive-export, export/to_onnx.py) -> ``onnx_export`` (planner + reasoner ONNX, config.json,
validated against PyTorch; ``random_model`` for a stand-in); ``quantize`` (Q/DQ int8 calibrated on
real frames from ``frame_source``; command: ``quantize_cli``, export/quantize.py); ``tensorrt_build``
(engines and their cache keys; command: ``tensorrt_cli``, export/to_tensorrt.py).
"""

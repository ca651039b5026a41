"""Where camera frames enter: ROS image fields -> numpy, camera sync, resize + normalise. ROS-free.

Names are imported on first use (PEP 562): `dsdrive_ros.frames.sync` and `preprocess_torch` stay
importable on a machine without OpenCV (bench/gpu_core.py: torch and numpy only).
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "SUPPORTED_ENCODINGS": "image_codec", "ImageDecodeError": "image_codec", "decode_image": "image_codec",
    "decode_compressed": "image_codec", "encode_image": "image_codec", "encode_compressed": "image_codec",
    "image_from_msg": "image_codec", "compressed_from_msg": "image_codec", "fill_image_msg": "image_codec",
    "fill_compressed_msg": "image_codec", "CameraSync": "sync", "FrameSet": "sync", "Preprocessor": "preprocess",
    "FrameReducer": "reduce", "ReducedFrame": "reduce",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)

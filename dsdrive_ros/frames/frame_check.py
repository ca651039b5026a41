"""What every preprocessor (OpenCV on the CPU, torch on the GPU) accepts: one HxWx3 uint8 per camera."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def check_frames(cameras: Sequence[str], frames: Mapping[str, np.ndarray]) -> None:
    """KeyError for a missing camera, ValueError for an extra one or an image of the wrong kind."""
    missing = [c for c in cameras if c not in frames]
    if missing:
        raise KeyError(f"missing frames for cameras {missing}; expected {list(cameras)}")
    if len(frames) != len(cameras):
        extra = sorted(set(frames) - set(cameras))
        raise ValueError(f"unexpected cameras {extra}; the model takes {list(cameras)}")
    for name in cameras:
        img = frames[name]
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 \
                or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f"camera {name!r}: expected HxWx3 uint8, got {got}")

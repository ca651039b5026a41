"""Camera frames -> the planner's `images` input (1, NCAM, 3, H, W) float32, normalised.

All sizes, the camera order and the normalisation come from config.json's `image` block.
Per camera per call: one cv2.resize into a preallocated uint8 scratch (skipped when the size
already matches), one cv2.LUT that maps uint8 -> normalised float32 (256 entries per channel,
computed in float64 once, so the result is the exactly rounded (x/scale - mean)/std), and one
transposing copy HWC -> CHW into the output buffer. No allocation of image-sized arrays per call.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np

from .frame_check import check_frames


class Preprocessor:
    def __init__(self, cameras: Sequence[str], height: int, width: int, mean: Sequence[float],
                 std: Sequence[float], scale: float = 255.0, channel_order: str = "rgb",
                 input_order: str = "rgb") -> None:
        self.cameras = list(cameras)
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be a non-empty list of unique names, got {self.cameras}")
        self.height, self.width = int(height), int(width)
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        mean64, std64 = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        if mean64.shape != (3,) or std64.shape != (3,):
            raise ValueError(f"mean and std need 3 values, got {list(mean)} and {list(std)}")
        if np.any(std64 == 0) or not scale or scale <= 0:
            raise ValueError(f"std must be non-zero and scale > 0, got std={list(std)} scale={scale}")
        orders = {channel_order.lower(), input_order.lower()}
        if not orders <= {"rgb", "bgr"}:
            raise ValueError(f"channel orders must be 'rgb' or 'bgr', got {channel_order!r}/{input_order!r}")
        # mean/std are in the model's channel order; frames arrive in input_order.
        self._swap = channel_order.lower() != input_order.lower()
        if self._swap:
            mean64, std64 = mean64[::-1], std64[::-1]
        levels = np.arange(256, dtype=np.float64)[:, None]
        lut = (levels / float(scale) - mean64) / std64          # (256, 3) in frame channel order
        self._lut = np.ascontiguousarray(lut.astype(np.float32).reshape(1, 256, 3))

        n, h, w = len(self.cameras), self.height, self.width
        self.buffer = np.zeros((1, n, 3, h, w), np.float32)     # returned by every call
        self._resized = np.empty((h, w, 3), np.uint8)           # scratch, reused across cameras
        self._normed = np.empty((h, w, 3), np.float32)

    @classmethod
    def from_spec(cls, image_cfg: Mapping, cameras: Sequence[str]) -> "Preprocessor":
        """Build from config.json's `image` block and `cameras` list."""
        try:
            return cls(cameras, image_cfg["height"], image_cfg["width"], image_cfg["mean"],
                       image_cfg["std"], image_cfg.get("scale", 255.0),
                       image_cfg.get("channel_order", "rgb"))
        except KeyError as exc:
            raise KeyError(f"config image block is missing {exc}; has {sorted(image_cfg)}") from None

    def __call__(self, frames: Mapping[str, np.ndarray]) -> np.ndarray:
        """frames: camera -> HxWx3 uint8 (any size). Returns self.buffer, overwritten in place:
        copy it if you need it after the next call."""
        check_frames(self.cameras, frames)
        out = self.buffer[0]
        for i, name in enumerate(self.cameras):
            img = frames[name]
            sh, sw = img.shape[:2]
            if (sh, sw) != (self.height, self.width):
                # INTER_AREA averages when shrinking (no aliasing); it is blocky when growing.
                interp = cv2.INTER_AREA if sh >= self.height and sw >= self.width else cv2.INTER_LINEAR
                img = cv2.resize(img, (self.width, self.height), dst=self._resized, interpolation=interp)
            normed = cv2.LUT(img, self._lut, dst=self._normed)
            chw = normed.transpose(2, 0, 1)
            np.copyto(out[i], chw[::-1] if self._swap else chw)
        return self.buffer

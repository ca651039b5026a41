"""Resize + normalize on the GPU (torch): the `preprocess_on_gpu` path, as Autoware's nodes have it.

Same contract as `Preprocessor` (config.json's `image` block, camera order, HxWx3 uint8 frames of
any size) but the result is a device tensor (1, NCAM, 3, H, W) float32 that the torch runner reads
without a copy through the host. Shrinking averages over the covered pixels (`area`, OpenCV's
INTER_AREA: identical for integer factors), growing is bilinear. Uploads are the uint8 frames,
a quarter of the float32 bytes. Imports torch and numpy only.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .frame_check import check_frames


class TorchPreprocessor:
    def __init__(self, cameras: Sequence[str], height: int, width: int, mean: Sequence[float],
                 std: Sequence[float], scale: float = 255.0, channel_order: str = "rgb",
                 input_order: str = "rgb", device: str | torch.device = "cuda:0") -> None:
        self.cameras = list(cameras)
        self.height, self.width = int(height), int(width)
        if not self.cameras or self.height <= 0 or self.width <= 0 or not scale or scale <= 0:
            raise ValueError(f"need cameras, a positive size and scale; got {self.cameras}, "
                             f"{width}x{height}, scale {scale}")
        if any(s == 0 for s in std) or len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values, std non-zero; got {list(mean)}, {list(std)}")
        self.device = torch.device(device)
        self._swap = channel_order.lower() != input_order.lower()
        # x_norm = (x / scale - mean) / std = x * a + b, per channel in the model's order
        std_t = torch.tensor(std, dtype=torch.float64)
        self._a = (1.0 / (scale * std_t)).float().view(3, 1, 1).to(self.device)
        self._b = (-torch.tensor(mean, dtype=torch.float64) / std_t).float().view(3, 1, 1).to(self.device)
        self.buffer = torch.zeros(1, len(self.cameras), 3, self.height, self.width, device=self.device)

    @classmethod
    def from_spec(cls, image_cfg: Mapping, cameras: Sequence[str], device: str | torch.device) -> "TorchPreprocessor":
        return cls(cameras, image_cfg["height"], image_cfg["width"], image_cfg["mean"], image_cfg["std"],
                   image_cfg.get("scale", 255.0), image_cfg.get("channel_order", "rgb"), device=device)

    @torch.inference_mode()
    def __call__(self, frames: Mapping[str, np.ndarray]) -> torch.Tensor:
        """frames: camera -> HxWx3 uint8. Returns self.buffer (on the device), overwritten in place."""
        check_frames(self.cameras, frames)
        for i, name in enumerate(self.cameras):
            img = torch.from_numpy(np.ascontiguousarray(frames[name])).to(self.device, non_blocking=True)
            x = img.permute(2, 0, 1)[None].float()  # (1, 3, h, w)
            if self._swap:
                x = x.flip(1)
            sh, sw = x.shape[2:]
            if (sh, sw) != (self.height, self.width):
                if sh >= self.height and sw >= self.width:
                    x = F.interpolate(x, (self.height, self.width), mode="area")
                else:
                    x = F.interpolate(x, (self.height, self.width), mode="bilinear", align_corners=False)
            torch.addcmul(self._b, x[0], self._a, out=self.buffer[0, i])
        return self.buffer

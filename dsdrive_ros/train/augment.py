"""Image augmentation for training clips: camera jitter and exposure.

Applied to the normalized clip (HIST, NCAM, 3, H, W) after preprocessing. One draw per camera and
clip: a mounted camera keeps its offset and exposure across the frames of a clip, so the history
still shows consistent motion. Labels are in base_link and stay as they are: a shifted image is a
camera whose mount or calibration is off by a few pixels, which the model should not care about.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augment:
    shift_px: int = 0  # camera jitter: a shift of up to this many pixels in x and y
    exposure: float = 0.0  # gain in [1 - e, 1 + e] and an offset in [-e / 4, e / 4] of full scale

    @property
    def active(self) -> bool:
        return self.shift_px > 0 or self.exposure > 0

    def __call__(self, clip: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        """clip: (HIST, NCAM, 3, H, W) normalized; mean/std: (3,). Returns a new array."""
        out = clip.copy()
        m, s = mean[:, None, None], std[:, None, None]
        for cam in range(clip.shape[1]):
            view = out[:, cam]  # (HIST, 3, H, W)
            if self.exposure > 0:
                gain = rng.uniform(1.0 - self.exposure, 1.0 + self.exposure)
                offset = rng.uniform(-self.exposure, self.exposure) / 4.0
                # into [0, 1] pixel space, expose, clip like a sensor would, back to normalized
                view[:] = (np.clip((view * s + m) * gain + offset, 0.0, 1.0) - m) / s
            if self.shift_px > 0:
                dy, dx = rng.integers(-self.shift_px, self.shift_px + 1, size=2)
                view[:] = _shift(view, int(dy), int(dx))
        return out


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift the last two axes by (dy, dx), repeating the edge pixels into the gap."""
    h, w = x.shape[-2:]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return x[..., rows[:, None], cols[None, :]]

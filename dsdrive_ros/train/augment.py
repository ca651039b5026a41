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
        """clip: (HIST, NCAM, 3, H, W) normalized; mean/std: (3,). Returns a new array.

        Works in the normalized space, in place on the output (a data-loader worker's CPU is what a
        CPU training step waits on): exposure is one multiply-add and a clip, the shift two slice copies."""
        out = np.empty_like(clip)
        m, s = mean[:, None, None], std[:, None, None]
        lo, hi = -m / s, (1.0 - m) / s  # pixel values 0 and 1, normalized
        for cam in range(clip.shape[1]):
            src, dst = clip[:, cam], out[:, cam]  # (HIST, 3, H, W)
            if self.exposure > 0:
                gain = rng.uniform(1.0 - self.exposure, 1.0 + self.exposure)
                offset = rng.uniform(-self.exposure, self.exposure) / 4.0
                # clip(pixel * gain + offset, 0, 1) like a sensor, with pixel = x * s + m, normalized again
                np.multiply(src, gain, out=dst)
                dst += (m * (gain - 1.0) + offset) / s
                np.clip(dst, lo, hi, out=dst)
                src = dst
            if self.shift_px > 0:
                dy, dx = rng.integers(-self.shift_px, self.shift_px + 1, size=2)
                _shift(src, dst, int(dy), axis=-2)
                _shift(dst, dst, int(dx), axis=-1)
            elif src is not dst:
                dst[:] = src
        return out


def _shift(src: np.ndarray, dst: np.ndarray, d: int, axis: int) -> None:
    """dst = src shifted by d along axis, the edge repeated into the gap (dst may be src)."""
    n = src.shape[axis]

    def at(a: np.ndarray, sl: slice) -> np.ndarray:
        idx = [slice(None)] * a.ndim
        idx[axis] = sl
        return a[tuple(idx)]

    if d > 0:
        at(dst, slice(d, n))[...] = at(src, slice(0, n - d))
        at(dst, slice(0, d))[...] = at(dst, slice(d, d + 1))
    elif d < 0:
        at(dst, slice(0, n + d))[...] = at(src, slice(-d, n))
        at(dst, slice(n + d, n))[...] = at(dst, slice(n + d - 1, n + d))
    elif src is not dst:
        dst[...] = src

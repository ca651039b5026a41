"""Camera image -> the model's input size and channel order, with the least work at camera resolution.

A camera frame (1280x720 to 1920x1200) is 30-80 times the model's input (224x128). Per frame, in the
camera callback (so that it overlaps with inference of the previous set):
  * raw rgb8/bgr8: a zero-copy view of the message buffer; no colour conversion at full size
    (channels are swapped on the small image); other encodings convert at full size (they must);
  * JPEG: decoded straight at 1/2, 1/4 or 1/8 size (libjpeg scales in its IDCT) when that still
    leaves at least twice the model's input per side, e.g. 1920x1080 -> 480x270 for 224x128;
  * shrinking: OpenCV's INTER_AREA is fast for integer factors and slow otherwise (1920x1080 ->
    224x128: ~14 ms per frame on our CPU). A frame at least four times the input per side (even
    sizes) is first halved (2x2 mean, integer fast path), then area-resized from at least twice the
    input: ~2.5 ms, within 0.5 grey levels on average (8 at most) of a direct INTER_AREA resize.
    (Halving further, closer to the input size, is cheaper still but drifts by 1.5-3 levels.)
The Preprocessor (normalisation) then finds frames already at the input size and skips its resize.
"""
from __future__ import annotations

import time
from typing import Any, Mapping, NamedTuple

import cv2
import numpy as np

from .image_codec import JPEG_REDUCTIONS, Buffer, compressed_size, decode_compressed, decode_image

__all__ = ["FrameReducer", "ReducedFrame"]

# Encodings whose raw buffer already is 3 channels in this order: viewed, never converted full size.
_NATIVE_ORDER = {"rgb8": "rgb", "bgr8": "bgr", "8UC3": "bgr"}


class ReducedFrame(NamedTuple):
    pixels: np.ndarray   # (input height, input width, 3) uint8 in the model's channel order
    height: int          # the camera image's own size (before reduction)
    width: int
    resize_ms: float = 0.0  # time spent in ``shrink`` (the resize part of the decode)


class FrameReducer:
    """Camera images (raw or compressed) -> ReducedFrame at (height, width) in ``order``.

    Images smaller than the input in either side keep their size (the Preprocessor enlarges them,
    INTER_LINEAR); only their channel order is fixed here. Stateless apart from its settings:
    safe to call from several threads.
    """

    def __init__(self, height: int, width: int, order: str = "rgb") -> None:
        self.height, self.width = int(height), int(width)
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"input size must be positive, got {width}x{height}")
        self.order = order.lower()
        if self.order not in ("rgb", "bgr"):
            raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")

    @classmethod
    def from_spec(cls, image_cfg: Mapping[str, Any]) -> "FrameReducer":
        """From config.json's `image` block."""
        return cls(image_cfg["height"], image_cfg["width"], image_cfg.get("channel_order", "rgb"))

    # ---- per message ----

    def image(self, encoding: str, height: int, width: int, step: int, data: Buffer,
              is_bigendian: int = 0) -> ReducedFrame:
        """Fields of a sensor_msgs/Image. Raises ImageDecodeError (see decode_image)."""
        order = _NATIVE_ORDER.get(encoding, self.order)
        img = decode_image(encoding, height, width, step, data, is_bigendian, order=order)
        t0 = time.monotonic()
        small = self.shrink(img, order)
        return ReducedFrame(small, int(height), int(width), (time.monotonic() - t0) * 1e3)

    def compressed(self, fmt: str, data: Buffer) -> ReducedFrame:
        """Fields of a sensor_msgs/CompressedImage (jpeg/png). Raises ImageDecodeError."""
        size = compressed_size(data)
        reduce = self.jpeg_reduction(*size) if size else 1
        img = decode_compressed(fmt, data, order="bgr", reduce=reduce)  # libjpeg's own order
        h, w = size if size else img.shape[:2]
        t0 = time.monotonic()
        small = self.shrink(img, "bgr")
        return ReducedFrame(small, int(h), int(w), (time.monotonic() - t0) * 1e3)

    def image_msg(self, msg: Any) -> ReducedFrame:
        return self.image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                          getattr(msg, "is_bigendian", 0))

    def compressed_msg(self, msg: Any) -> ReducedFrame:
        return self.compressed(msg.format, msg.data)

    # ---- the two steps ----

    def jpeg_reduction(self, height: int, width: int) -> int:
        """The largest JPEG decode reduction that leaves at least twice the input size per side."""
        for f in sorted(JPEG_REDUCTIONS, reverse=True):
            if -(-height // f) >= 2 * self.height and -(-width // f) >= 2 * self.width:
                return f
        return 1

    def shrink(self, img: np.ndarray, order: str) -> np.ndarray:
        """HxWx3 uint8 in ``order`` -> the input size (when larger) in the model's order."""
        h, w = img.shape[:2]
        if h >= 4 * self.height and w >= 4 * self.width and h % 2 == 0 and w % 2 == 0:
            h, w = h // 2, w // 2
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        if h >= self.height and w >= self.width and (h, w) != (self.height, self.width):
            img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if order != self.order:
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # the same swap both ways
        return img

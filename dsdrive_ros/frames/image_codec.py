"""ROS image fields <-> NumPy, without cv_bridge (the PyPI one is broken) and without rclpy.

Everything returns HxWx3 uint8 in the requested channel order ("rgb" = the model's order by default).
Decoding is vectorised: the raw buffer is wrapped with np.frombuffer (no copy), rows are sliced
past their padding as a strided view, and the colour conversion is one cv2.cvtColor call.
For rgb8 -> rgb (and bgr8 -> bgr) the result IS a view of the message buffer (zero copy; read-only
when the buffer is bytes): pass copy=True if you keep it after the message may be reused.
"""
from __future__ import annotations

import array
from typing import Any, Optional, Union

import cv2
import numpy as np

Buffer = Union[bytes, bytearray, memoryview, array.array, np.ndarray]


class ImageDecodeError(ValueError):
    """A frame could not be turned into pixels; the message says what was wrong."""


# encoding -> (channels, bytes per channel, cvtColor code to RGB or None when already RGB).
# 8UC3/8UC4 follow the OpenCV (and cv_bridge) convention of BGR(A) channel order.
_GRAY = cv2.COLOR_GRAY2RGB
_ENCODINGS: dict[str, tuple[int, int, Optional[int]]] = {
    "rgb8": (3, 1, None),
    "bgr8": (3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": (4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": (1, 1, _GRAY),
    "8UC1": (1, 1, _GRAY),
    "8UC3": (3, 1, cv2.COLOR_BGR2RGB),
    "8UC4": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono16": (1, 2, _GRAY),  # scaled to 8 bit by >> 8 before the gray -> RGB step
    "16UC1": (1, 2, _GRAY),
    "yuv422": (2, 1, cv2.COLOR_YUV2RGB_UYVY),  # ROS "yuv422" is UYVY byte order
    "uyvy": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)

# encoding -> cvtColor code from RGB (encoders; mono16 is handled separately).
_FROM_RGB: dict[str, Optional[int]] = {
    "rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA, "bgra8": cv2.COLOR_RGB2BGRA,
    "mono8": cv2.COLOR_RGB2GRAY, "8UC1": cv2.COLOR_RGB2GRAY, "8UC3": cv2.COLOR_RGB2BGR,
    "8UC4": cv2.COLOR_RGB2BGRA, "mono16": cv2.COLOR_RGB2GRAY, "16UC1": cv2.COLOR_RGB2GRAY,
    "yuv422": cv2.COLOR_RGB2YUV_UYVY, "uyvy": cv2.COLOR_RGB2YUV_UYVY,
    "yuv422_yuy2": cv2.COLOR_RGB2YUV_YUY2, "yuyv": cv2.COLOR_RGB2YUV_YUY2,
}


def _as_u8(data: Any) -> np.ndarray:
    """Flat uint8 view of any buffer (bytes, memoryview, array('B'), ndarray); lists are copied."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        try:  # plain list/tuple of ints (e.g. hand-built messages)
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ImageDecodeError(f"image data of type {type(data).__name__} is not a byte buffer") from exc


def _check_order(order: str) -> str:
    order = order.lower()
    if order not in ("rgb", "bgr"):
        raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
    return order


def _finish(img: np.ndarray, order: str, copy: bool) -> np.ndarray:
    # img is RGB here; a swap to BGR is a fresh array already, so copy only matters for views.
    if order == "bgr":
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    return np.array(img, copy=True) if copy else img


def decode_image(encoding: str, height: int, width: int, step: int, data: Buffer,
                 is_bigendian: int = 0, order: str = "rgb", copy: bool = False) -> np.ndarray:
    """Fields of a sensor_msgs/Image -> HxWx3 uint8 in `order`. Raises ImageDecodeError."""
    order = _check_order(order)
    spec = _ENCODINGS.get(encoding)
    if spec is None:
        raise ImageDecodeError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, depth, code = spec
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"{encoding} image has zero/negative size {width}x{height}")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageDecodeError(
            f"{encoding} step {step} < width*bytes_per_pixel = {width}*{channels * depth} = {row_bytes}")
    if channels == 2 and width % 2:
        raise ImageDecodeError(f"{encoding} (YUV 4:2:2) needs an even width, got {width}")
    buf = _as_u8(data)
    if buf.size != step * height:
        raise ImageDecodeError(
            f"{encoding} data length {buf.size} != step*height = {step}*{height} = {step * height}")

    # Strided view: rows of `step` bytes, padding sliced off, no copy.
    rows = buf.reshape(height, step)[:, :row_bytes]
    if depth == 2:
        if step % 2:
            raise ImageDecodeError(f"{encoding} step {step} is odd for a 16-bit encoding")
        wide = buf.view(">u2" if is_bigendian else "<u2").reshape(height, step // 2)[:, :width]
        rows = (wide >> 8).astype(np.uint8)  # 16 -> 8 bit: keep the high byte
    img = rows.reshape(height, width, channels) if channels > 1 else rows

    if code is None:  # already RGB
        return _finish(img, order, copy)
    if order == "bgr" and code == cv2.COLOR_BGR2RGB:  # bgr8 -> bgr: zero-copy too
        return np.array(img, copy=True) if copy else img
    try:
        rgb = cv2.cvtColor(img, code)
    except cv2.error as exc:  # defensive: shapes are checked above
        raise ImageDecodeError(f"OpenCV could not convert {encoding} {width}x{height}: {exc}") from exc
    return rgb if order == "rgb" else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {got}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image {rgb.shape}")


def encode_image(rgb: np.ndarray, encoding: str = "rgb8", pad_to: Optional[int] = None,
                 bigendian: bool = False) -> tuple[int, bytes]:
    """HxWx3 uint8 RGB -> (step, data) for a sensor_msgs/Image of `encoding`.

    pad_to: the row step in bytes (>= width*bytes_per_pixel); rows are zero padded up to it.
    mono16/16UC1 store gray*257 so that decoding (>> 8) gives gray back exactly.
    """
    _check_rgb(rgb)
    if encoding not in _FROM_RGB:
        raise ValueError(f"cannot encode to {encoding!r}; supported: {', '.join(_FROM_RGB)}")
    channels, depth, _ = _ENCODINGS[encoding]
    h, w = rgb.shape[:2]
    code = _FROM_RGB[encoding]
    if channels == 2 and w % 2:
        raise ValueError(f"{encoding} needs an even width, got {w}")
    pix = rgb if code is None else cv2.cvtColor(rgb, code)
    if depth == 2:
        pix = (pix.astype(np.uint16) * np.uint16(257)).astype(">u2" if bigendian else "<u2")
    row_bytes = w * channels * depth
    raw = np.ascontiguousarray(pix).view(np.uint8).reshape(h, row_bytes)
    step = row_bytes if pad_to is None else int(pad_to)
    if step < row_bytes:
        raise ValueError(f"pad_to={step} < width*bytes_per_pixel = {row_bytes}")
    if step > row_bytes:
        padded = np.zeros((h, step), np.uint8)
        padded[:, :row_bytes] = raw
        raw = padded
    return step, raw.tobytes()


# ---- compressed (sensor_msgs/CompressedImage) ----

_JPEG_SOI, _JPEG_EOI, _PNG_SIG = b"\xff\xd8", b"\xff\xd9", b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_READ_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10: decoder writes RGB directly


def _check_format(fmt: str) -> None:
    # ROS format strings: "jpeg", "png", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth png".
    f = fmt.lower()
    if "compresseddepth" in f:
        raise ImageDecodeError(f"compressed depth images are not supported (format {fmt!r})")
    if f.strip() and not any(k in f for k in ("jpeg", "jpg", "png")):
        raise ImageDecodeError(f"unsupported compressed format {fmt!r}; expected jpeg or png")


# JPEG decodes straight at 1/2, 1/4 or 1/8 of its size (libjpeg scales in the IDCT: less work).
_READ_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}
JPEG_REDUCTIONS: tuple[int, ...] = tuple(_READ_REDUCED)
# JPEG start-of-frame markers (baseline, progressive, lossless ...; not DHT C4, JPG C8, DAC CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def compressed_size(data: Buffer) -> Optional[tuple[int, int]]:
    """(height, width) from a JPEG's start-of-frame or a PNG's IHDR header, without decoding;
    None when the header is not found (decode_compressed then says what is wrong)."""
    buf = _as_u8(data)
    head = buf[:32].tobytes()
    if head.startswith(_PNG_SIG) and len(head) >= 24:
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    if not head.startswith(_JPEG_SOI):
        return None
    i, n = 2, buf.size
    while i + 9 <= n:
        if buf[i] != 0xFF:
            return None
        marker = int(buf[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            seg = buf[i + 5:i + 9].tobytes()
            return int.from_bytes(seg[:2], "big"), int.from_bytes(seg[2:], "big")
        i += 2 + (int(buf[i + 2]) << 8 | int(buf[i + 3]))  # segment length includes its 2 bytes
    return None


def decode_compressed(format: str, data: Buffer, order: str = "rgb", reduce: int = 1) -> np.ndarray:
    """Fields of a sensor_msgs/CompressedImage (jpeg/png) -> HxWx3 uint8. Raises ImageDecodeError.

    The codec is taken from the stream's magic bytes (the format string is often sloppy);
    the format string is only used to reject what we do not handle. ``reduce`` (1, 2, 4, 8): a JPEG
    is decoded at that fraction of its size (ceil of width/reduce), PNG always at full size.
    """
    if reduce not in _READ_REDUCED:
        raise ValueError(f"reduce must be one of {JPEG_REDUCTIONS}, got {reduce}")
    order = _check_order(order)
    _check_format(format)
    buf = _as_u8(data)
    if buf.size == 0:
        raise ImageDecodeError(f"empty compressed image (format {format!r})")
    head = buf[:8].tobytes()
    if head.startswith(_JPEG_SOI):
        # libjpeg "decodes" a truncated stream into a half-gray image with only a warning; insist on
        # the end-of-image marker (trailing zero padding, which some cameras add, is allowed).
        tail = buf[-4096:].tobytes().rstrip(b"\x00")
        if not tail.endswith(_JPEG_EOI):
            raise ImageDecodeError(f"truncated JPEG: no end-of-image marker ({buf.size} bytes)")
        kind = "JPEG"
    elif head == _PNG_SIG:
        if _PNG_IEND not in buf[-64:].tobytes():
            raise ImageDecodeError(f"truncated PNG: no IEND chunk ({buf.size} bytes)")
        kind = "PNG"
    else:
        raise ImageDecodeError(
            f"data is neither JPEG nor PNG (format {format!r}, first bytes {head[:4].hex()}, {buf.size} bytes)")
    reduce = reduce if kind == "JPEG" else 1
    want_rgb = order == "rgb" and _READ_RGB is not None and reduce == 1
    try:
        img = cv2.imdecode(buf, _READ_RGB if want_rgb else _READ_REDUCED[reduce])
    except cv2.error as exc:
        raise ImageDecodeError(f"corrupt {kind} ({buf.size} bytes): {exc}") from exc
    if img is None or img.size == 0:
        raise ImageDecodeError(f"corrupt {kind}: OpenCV could not decode {buf.size} bytes")
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:  # defensive: IMREAD_COLOR promises this
        raise ImageDecodeError(f"{kind} decoded to unexpected {img.dtype} {img.shape}")
    if order == "rgb" and not want_rgb:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """HxWx3 uint8 RGB -> jpeg/png bytes (for tests, tools and the simulator)."""
    _check_rgb(rgb)
    f = fmt.lower()
    if f in ("jpeg", "jpg"):
        ext, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif f == "png":
        ext, params = ".png", []
    else:
        raise ValueError(f"cannot encode to {fmt!r}; expected 'jpeg' or 'png'")
    ok, enc = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV failed to encode {rgb.shape} as {fmt}")
    return enc.tobytes()


# ---- duck-typed message helpers (fields of sensor_msgs/Image and CompressedImage) ----

def image_from_msg(msg: Any, order: str = "rgb", copy: bool = False) -> np.ndarray:
    """sensor_msgs/Image (or anything with its fields) -> HxWx3 uint8."""
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                        getattr(msg, "is_bigendian", 0), order=order, copy=copy)


def compressed_from_msg(msg: Any, order: str = "rgb") -> np.ndarray:
    """sensor_msgs/CompressedImage (or anything with .format/.data) -> HxWx3 uint8."""
    return decode_compressed(msg.format, msg.data, order=order)


def fill_image_msg(msg: Any, rgb: np.ndarray, encoding: str = "rgb8") -> Any:
    """Write an RGB array into an Image-like msg (header is the caller's). Returns msg.

    data is set as array('B'): rclpy's setter takes that as is, while bytes would be checked
    element by element in Python (seconds for a large frame).
    """
    step, raw = encode_image(rgb, encoding)
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, step
    msg.data = array.array("B", raw)
    return msg


def fill_compressed_msg(msg: Any, rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> Any:
    """Write an RGB array into a CompressedImage-like msg as jpeg/png. Returns msg."""
    msg.format = "png" if fmt.lower() == "png" else "jpeg"
    msg.data = array.array("B", encode_compressed(rgb, fmt, quality))
    return msg

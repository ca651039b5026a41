"""FrameReducer: camera images -> the model's input size and order (frames/reduce.py), and the
codec helpers it uses (JPEG/PNG header size, reduced JPEG decode)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from dsdrive_ros.frames import FrameReducer, ImageDecodeError, Preprocessor
from dsdrive_ros.frames.image_codec import (compressed_size, decode_compressed, encode_compressed,
                                            encode_image)

H, W = 128, 224


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps plus mild noise: an RGB camera-like frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 97 * 2], -1)
    noise = np.random.default_rng(seed).integers(-10, 10, (h, w, 3))
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _direct(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("hw", [(720, 1280), (1080, 1920), (1200, 1920), (361, 641)])
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "rgba8", "mono8"])
def test_raw_reduces_to_input_size_in_rgb_close_to_direct_area(hw, encoding):
    rgb = _scene(*hw)
    if encoding == "mono8":
        rgb = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    step, data = encode_image(rgb, encoding)
    frame = FrameReducer(H, W).image(encoding, hw[0], hw[1], step, data)
    assert frame.pixels.shape == (H, W, 3) and frame.pixels.dtype == np.uint8
    assert (frame.height, frame.width) == hw
    diff = np.abs(frame.pixels.astype(int) - _direct(rgb).astype(int))
    # a 2x2 mean first, then INTER_AREA: not bit-exact, but within a few grey levels, channels right
    assert diff.mean() < 1.0 and diff.max() <= 12, (diff.mean(), diff.max())


def test_model_sized_and_small_frames_keep_their_size_and_get_the_model_order():
    rgb = _scene(H, W)
    step, data = encode_image(rgb, "rgb8")
    same = FrameReducer(H, W).image("rgb8", H, W, step, data)
    np.testing.assert_array_equal(same.pixels, rgb)  # at the input size: untouched (zero copy)
    step, data = encode_image(rgb, "bgr8")
    np.testing.assert_array_equal(FrameReducer(H, W).image("bgr8", H, W, step, data).pixels, rgb)
    small = _scene(H // 2, W // 2)
    step, data = encode_image(small, "bgr8")
    out = FrameReducer(H, W).image("bgr8", H // 2, W // 2, step, data).pixels
    np.testing.assert_array_equal(out, small)  # enlarging is the Preprocessor's job
    bgr = FrameReducer(H, W, order="bgr").image("rgb8", H, W, *encode_image(rgb, "rgb8")).pixels
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])


def test_preprocessor_output_matches_the_direct_path_closely():
    """What the planner sees: reduced frames vs full-size frames resized by the Preprocessor."""
    cams = ["front", "left"]
    pre = Preprocessor(cams, H, W, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    frames = {c: _scene(720, 1280, i) for i, c in enumerate(cams)}
    direct = pre(frames).copy()
    red = FrameReducer(H, W)
    reduced = pre({c: red.image("rgb8", 720, 1280, *encode_image(f, "rgb8")).pixels
                   for c, f in frames.items()})
    assert np.abs(reduced - direct).mean() < 1.0 / 255 / 0.224  # under one grey level on average


@pytest.mark.parametrize("hw,factor", [((1080, 1920), 4), ((720, 1280), 2), ((256, 448), 1),
                                       ((2160, 3840), 8), ((300, 400), 1)])
def test_jpeg_decodes_reduced_when_twice_the_input_remains(hw, factor):
    red = FrameReducer(H, W)
    assert red.jpeg_reduction(*hw) == factor
    rgb = _scene(*hw)
    jpeg = encode_compressed(rgb, "jpeg", 95)
    assert compressed_size(jpeg) == hw
    frame = red.compressed("jpeg", jpeg)
    assert (frame.height, frame.width) == hw
    expect_hw = (H, W) if hw[0] >= H and hw[1] >= W else hw
    assert frame.pixels.shape == (*expect_hw, 3)
    full = decode_compressed("jpeg", jpeg)
    ref = _direct(full) if expect_hw == (H, W) else full
    diff = np.abs(frame.pixels.astype(int) - ref.astype(int))
    assert diff.mean() < 1.5, diff.mean()


def test_reduced_jpeg_decode_and_png_size():
    rgb = _scene(480, 640)
    jpeg = encode_compressed(rgb, "jpeg", 90)
    assert decode_compressed("jpeg", jpeg, reduce=4).shape == (120, 160, 3)
    png = encode_compressed(rgb, "png")
    assert compressed_size(png) == (480, 640)
    assert decode_compressed("png", png, reduce=4).shape == (480, 640, 3)  # PNG: always full size
    assert compressed_size(b"not an image") is None
    with pytest.raises(ValueError):
        decode_compressed("jpeg", jpeg, reduce=3)


def test_bad_compressed_still_raises_decode_errors():
    red = FrameReducer(H, W)
    jpeg = encode_compressed(_scene(720, 1280), "jpeg", 90)
    for bad in (jpeg[: len(jpeg) // 2], b"", b"\xff\xd8garbage"):
        with pytest.raises(ImageDecodeError):
            red.compressed("jpeg", bad)

"""dsdrive_ros.frames.image_codec: raw/compressed decode, encoders, duck-typed message helpers."""
import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dsdrive_ros.frames.image_codec import (SUPPORTED_ENCODINGS, ImageDecodeError, compressed_from_msg,
                                            decode_compressed, decode_image, encode_compressed,
                                            encode_image, fill_compressed_msg, fill_image_msg,
                                            image_from_msg)

H, W = 37, 50  # odd height, even width (4:2:2 needs an even width)


@pytest.fixture(scope="module")
def rgb():
    # Smooth gradients + noise: JPEG-friendly but every pixel distinct enough to catch swaps.
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([x * 5, y * 6, (x + y) * 3], -1) + rng.integers(0, 20, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


# (encoding, channels, how OpenCV itself turns the stored pixels into RGB)
CV_TO_RGB = {
    "rgb8": None, "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB, "8UC3": cv2.COLOR_BGR2RGB,
    "8UC4": cv2.COLOR_BGRA2RGB, "mono16": cv2.COLOR_GRAY2RGB, "16UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
CHANNELS = {"rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4, "8UC4": 4, "mono8": 1, "8UC1": 1,
            "mono16": 1, "16UC1": 1, "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2}
LOSSLESS = ("rgb8", "bgr8", "rgba8", "bgra8", "8UC3", "8UC4")


def _stored(encoding, step, data, h=H, w=W, big=False):
    """The stored pixels as OpenCV would see them (independent of the decoder's slicing)."""
    ch, depth = CHANNELS[encoding], 2 if "16" in encoding else 1
    raw = np.frombuffer(data, np.uint8).reshape(h, step)[:, :w * ch * depth]
    if depth == 2:
        return (raw.copy().view(">u2" if big else "<u2") >> 8).astype(np.uint8)
    return raw.reshape(h, w, ch) if ch > 1 else raw


def test_all_supported_encodings_covered():
    assert set(SUPPORTED_ENCODINGS) == set(CV_TO_RGB)


@pytest.mark.parametrize("encoding", sorted(CV_TO_RGB))
@pytest.mark.parametrize("pad", [0, 3, 64])
def test_decode_matches_opencv(rgb, encoding, pad):
    row = W * CHANNELS[encoding] * (2 if "16" in encoding else 1)
    step, data = encode_image(rgb, encoding, pad_to=row + pad * (2 if "16" in encoding else 1))
    assert step == row + pad * (2 if "16" in encoding else 1) and len(data) == step * H
    out = decode_image(encoding, H, W, step, data)
    stored = np.ascontiguousarray(_stored(encoding, step, data))
    code = CV_TO_RGB[encoding]
    expect = stored if code is None else cv2.cvtColor(stored, code)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(decode_image(encoding, H, W, step, data, order="bgr"),
                                  cv2.cvtColor(expect, cv2.COLOR_RGB2BGR))


@pytest.mark.parametrize("encoding", LOSSLESS)
def test_colour_roundtrip_exact(rgb, encoding):
    step, data = encode_image(rgb, encoding)
    np.testing.assert_array_equal(decode_image(encoding, H, W, step, data), rgb)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1", "mono16", "16UC1"])
def test_mono_gives_three_identical_channels(rgb, encoding):
    step, data = encode_image(rgb, encoding)
    out = decode_image(encoding, H, W, step, data)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_mono16_endianness_and_scaling():
    vals = np.array([[0, 255, 256, 65535, 0x1234, 0xABCD]], np.uint16)
    expect = (vals >> 8).astype(np.uint8)
    for big in (0, 1):
        data = vals.astype(">u2" if big else "<u2").tobytes()
        out = decode_image("mono16", 1, 6, 12, data, is_bigendian=big)
        np.testing.assert_array_equal(out[..., 0], expect)
    img = np.full((2, 4, 3), 200, np.uint8)
    step, data = encode_image(img, "mono16", bigendian=True)
    np.testing.assert_array_equal(decode_image("mono16", 2, 4, step, data, is_bigendian=1), img)


def test_big_step_and_padding_ignored(rgb):
    step, data = encode_image(rgb, "rgb8", pad_to=4096)
    noisy = np.frombuffer(data, np.uint8).reshape(H, step).copy()
    noisy[:, W * 3:] = 0xAB  # garbage in the padding must not leak in
    np.testing.assert_array_equal(decode_image("rgb8", H, W, step, noisy.tobytes()), rgb)


def test_rgb8_is_zero_copy_view_and_copy_flag(rgb):
    step, data = encode_image(rgb, "rgb8", pad_to=W * 3 + 8)
    buf = bytearray(data)
    view = decode_image("rgb8", H, W, step, buf)
    assert np.shares_memory(view, np.frombuffer(buf, np.uint8))
    own = decode_image("rgb8", H, W, step, buf, copy=True)
    assert not np.shares_memory(own, np.frombuffer(buf, np.uint8))
    np.testing.assert_array_equal(view, own)
    # bgr8 -> bgr is a view too
    step, data = encode_image(rgb, "bgr8")
    buf = bytearray(data)
    assert np.shares_memory(decode_image("bgr8", H, W, step, buf, order="bgr"), np.frombuffer(buf, np.uint8))


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "array", "ndarray", "list"])
def test_buffer_types(rgb, kind):
    step, data = encode_image(rgb, "bgr8")
    wrap = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
            "array": lambda d: array.array("B", d), "ndarray": lambda d: np.frombuffer(d, np.uint8),
            "list": list}[kind]
    np.testing.assert_array_equal(decode_image("bgr8", H, W, step, wrap(data)), rgb)


@pytest.mark.parametrize("args, words", [
    (("bayer_rggb8", 2, 2, 2, b"\0" * 4), ["unsupported image encoding", "bayer_rggb8"]),
    (("rgb8", 2, 2, 5, b"\0" * 10), ["step 5", "6"]),
    (("rgb8", 2, 2, 6, b"\0" * 11), ["data length 11", "12"]),
    (("rgb8", 2, 2, 6, b"\0" * 13), ["data length 13"]),
    (("rgb8", 2, 2, 6, b""), ["data length 0"]),
    (("rgb8", 0, 2, 6, b""), ["zero"]),
    (("mono8", 2, 0, 0, b""), ["zero"]),
    (("yuv422", 2, 3, 6, b"\0" * 12), ["even width"]),
    (("mono16", 1, 2, 5, b"\0" * 5), ["odd"]),
])
def test_decode_errors(args, words):
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(*args)
    assert isinstance(ei.value, ValueError)
    for w in words:
        assert w in str(ei.value)


def test_decode_bad_order():
    with pytest.raises(ValueError, match="order"):
        decode_image("rgb8", 1, 1, 3, b"\0\0\0", order="rgba")


def test_encode_errors(rgb):
    with pytest.raises(ValueError, match="pad_to"):
        encode_image(rgb, "rgb8", pad_to=W * 3 - 1)
    with pytest.raises(ValueError, match="cannot encode"):
        encode_image(rgb, "bayer_rggb8")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_image(rgb.astype(np.float32), "rgb8")
    with pytest.raises(ValueError, match="even width"):
        encode_image(rgb[:, :-1], "yuv422")


# ---- compressed ----

def _cv_ref(data):
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("fmt, ros_format", [
    ("jpeg", "jpeg"), ("jpeg", "rgb8; jpeg compressed bgr8"), ("jpeg", "bgr8; jpeg compressed bgr8"),
    ("jpeg", ""), ("png", "png"), ("png", "rgb8; png compressed bgr8"), ("png", "PNG")])
def test_compressed_matches_opencv(rgb, fmt, ros_format):
    data = encode_compressed(rgb, fmt, quality=85)
    out = decode_compressed(ros_format, data)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, _cv_ref(data))
    np.testing.assert_array_equal(decode_compressed(ros_format, data, order="bgr"),
                                  cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    if fmt == "png":
        np.testing.assert_array_equal(out, rgb)  # lossless
    else:
        assert np.abs(out.astype(int) - rgb).mean() < 6


def test_compressed_gray_and_rgba_png_give_rgb(rgb):
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ok, enc = cv2.imencode(".png", gray)
    out = decode_compressed("png", enc.tobytes())
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out[..., 0], gray)
    ok, enc = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA))
    np.testing.assert_array_equal(decode_compressed("png", enc.tobytes()), rgb)


def test_compressed_jpeg_trailing_zero_padding_ok(rgb):
    data = encode_compressed(rgb, "jpeg") + b"\0" * 100
    np.testing.assert_array_equal(decode_compressed("jpeg", data), _cv_ref(data))


def test_compressed_buffer_types(rgb):
    data = encode_compressed(rgb, "png")
    for wrap in (bytes, bytearray, memoryview, lambda d: array.array("B", d), list,
                 lambda d: np.frombuffer(d, np.uint8)):
        np.testing.assert_array_equal(decode_compressed("png", wrap(data)), rgb)


@pytest.mark.parametrize("case", ["trunc_jpeg", "trunc_png", "random", "empty", "jpeg_garbage_body",
                                  "png_garbage_body", "header_only"])
def test_compressed_corrupt_raises(rgb, case):
    jpg, png = encode_compressed(rgb, "jpeg"), encode_compressed(rgb, "png")
    rng = np.random.default_rng(1)
    data, fmt, word = {
        "trunc_jpeg": (jpg[: len(jpg) // 2], "jpeg", "truncated JPEG"),
        "trunc_png": (png[: len(png) * 2 // 3], "png", "truncated PNG"),
        "random": (rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), "jpeg", "neither JPEG nor PNG"),
        "empty": (b"", "jpeg", "empty"),
        # right magic and end marker, nonsense in between
        "jpeg_garbage_body": (b"\xff\xd8" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() + b"\xff\xd9",
                              "jpeg", "JPEG"),
        "png_garbage_body": (png[:8] + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() + png[-12:],
                             "png", "PNG"),
        "header_only": (b"\xff\xd8\xff\xd9", "jpeg", "JPEG"),
    }[case]
    with pytest.raises(ImageDecodeError, match=word):
        decode_compressed(fmt, data)


@pytest.mark.parametrize("fmt, word", [("16UC1; compressedDepth png", "depth"), ("tiff", "unsupported")])
def test_compressed_unsupported_format(rgb, fmt, word):
    with pytest.raises(ImageDecodeError, match=word):
        decode_compressed(fmt, encode_compressed(rgb, "png"))


def test_encode_compressed_errors(rgb):
    with pytest.raises(ValueError, match="cannot encode"):
        encode_compressed(rgb, "webp")
    with pytest.raises(ValueError, match="HxWx3"):
        encode_compressed(rgb[..., 0])


# ---- message helpers ----

def test_helpers_duck_typed(rgb):
    msg = fill_image_msg(SimpleNamespace(), rgb, "bgra8")
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (H, W, "bgra8", W * 4, 0)
    np.testing.assert_array_equal(image_from_msg(msg), rgb)
    cmsg = fill_compressed_msg(SimpleNamespace(), rgb, "png")
    assert cmsg.format == "png"
    np.testing.assert_array_equal(compressed_from_msg(cmsg), rgb)
    # no is_bigendian field at all is fine
    plain = SimpleNamespace(encoding="rgb8", height=H, width=W, step=W * 3, data=rgb.tobytes())
    np.testing.assert_array_equal(image_from_msg(plain), rgb)


def test_helpers_on_real_sensor_msgs(rgb):
    pytest.importorskip("rclpy")
    msgs = pytest.importorskip("sensor_msgs.msg")
    for enc in ("rgb8", "bgr8", "mono8", "rgba8"):
        msg = fill_image_msg(msgs.Image(), rgb, enc)
        assert isinstance(msg.data, array.array) and len(msg.data) == msg.step * msg.height
        out = image_from_msg(msg)
        expect = rgb if enc != "mono8" else cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        np.testing.assert_array_equal(out, expect)
    # a message built field by field with padded rows, as a driver would
    step, data = encode_image(rgb, "bgr8", pad_to=W * 3 + 16)
    msg = msgs.Image(height=H, width=W, encoding="bgr8", step=step, data=array.array("B", data))
    np.testing.assert_array_equal(image_from_msg(msg), rgb)
    for fmt, ros_fmt in (("jpeg", "rgb8; jpeg compressed bgr8"), ("png", "png")):
        data = encode_compressed(rgb, fmt)
        cmsg = msgs.CompressedImage(format=ros_fmt, data=array.array("B", data))
        np.testing.assert_array_equal(compressed_from_msg(cmsg), _cv_ref(data))
        np.testing.assert_array_equal(compressed_from_msg(fill_compressed_msg(msgs.CompressedImage(), rgb, fmt)),
                                      _cv_ref(data))
    bad = msgs.CompressedImage(format="jpeg", data=array.array("B", encode_compressed(rgb)[:100]))
    with pytest.raises(ImageDecodeError):
        compressed_from_msg(bad)


def test_frames_package_is_ros_free():
    import pathlib
    import dsdrive_ros.frames as frames
    for path in pathlib.Path(frames.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import rclpy" not in text and "from rclpy" not in text, path
        assert "sensor_msgs" not in text.replace("sensor_msgs/", ""), path

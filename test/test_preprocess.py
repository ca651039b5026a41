"""dsdrive_ros.frames.preprocess.Preprocessor: resize + normalise into a reused buffer."""
import cv2
import numpy as np
import pytest

from dsdrive_ros.frames.preprocess import Preprocessor

IMAGE_CFG = {"height": 128, "width": 224, "channel_order": "rgb",
             "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 255.0}
CAMS = ["front", "left", "right", "rear"]


def reference(frames, cams, cfg):
    """Straightforward float64 implementation of the contract."""
    h, w = cfg["height"], cfg["width"]
    mean, std = np.array(cfg["mean"]), np.array(cfg["std"])
    out = np.zeros((1, len(cams), 3, h, w), np.float64)
    for i, cam in enumerate(cams):
        img = frames[cam]
        if img.shape[:2] != (h, w):
            shrink = img.shape[0] >= h and img.shape[1] >= w
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if cfg.get("channel_order", "rgb") == "bgr":
            img = img[..., ::-1]  # frames are RGB; the model (and mean/std) are BGR
        x = (img.astype(np.float64) / cfg["scale"] - mean) / std
        out[0, i] = x.transpose(2, 0, 1)
    return out


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    return {"front": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),    # shrink
            "left": rng.integers(0, 256, (128, 224, 3), dtype=np.uint8),     # same size
            "right": rng.integers(0, 256, (64, 100, 3), dtype=np.uint8),     # grow
            "rear": rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)}    # shrink, other aspect


def test_matches_reference(frames):
    pre = Preprocessor.from_spec(IMAGE_CFG, CAMS)
    out = pre(frames)
    assert out.shape == (1, 4, 3, 128, 224) and out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, reference(frames, CAMS, IMAGE_CFG), rtol=0, atol=1e-6)


def test_all_256_levels_exact():
    # Every uint8 level in every channel, no resize: isolates the normalisation.
    lv = np.arange(256, dtype=np.uint8)
    img = np.stack([lv, lv[::-1], np.roll(lv, 7)], -1).reshape(16, 16, 3)
    cfg = dict(IMAGE_CFG, height=16, width=16)
    pre = Preprocessor.from_spec(cfg, ["a"])
    np.testing.assert_allclose(pre({"a": img}), reference({"a": img}, ["a"], cfg), rtol=0, atol=1e-6)


def test_bgr_model_order(frames):
    cfg = dict(IMAGE_CFG, channel_order="bgr", mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 0.125])
    pre = Preprocessor.from_spec(cfg, CAMS)
    np.testing.assert_allclose(pre(frames), reference(frames, CAMS, cfg), rtol=0, atol=1e-6)


def test_buffer_reused_and_overwritten(frames):
    pre = Preprocessor.from_spec(IMAGE_CFG, CAMS)
    a = pre(frames)
    first = a.copy()
    ident = id(a)
    frames2 = {k: 255 - v for k, v in frames.items()}
    b = pre(frames2)
    assert id(b) == ident and b is pre.buffer
    assert not np.array_equal(b, first)
    np.testing.assert_allclose(b, reference(frames2, CAMS, IMAGE_CFG), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(pre(frames), first)


def test_padded_and_readonly_views(frames):
    # decode_image returns strided, possibly read-only views of message buffers: accept them.
    big = np.zeros((480, 700, 3), np.uint8)
    big[:, :640] = frames["front"]
    view = big[:, :640]
    assert not view.flags.c_contiguous
    view.flags.writeable = False
    same = dict(frames, front=view)
    pre = Preprocessor.from_spec(IMAGE_CFG, CAMS)
    np.testing.assert_allclose(pre(same), reference(frames, CAMS, IMAGE_CFG), rtol=0, atol=1e-6)


def test_frame_order_follows_camera_list_not_dict(frames):
    pre = Preprocessor.from_spec(IMAGE_CFG, CAMS)
    shuffled = {k: frames[k] for k in ["rear", "left", "front", "right"]}
    np.testing.assert_array_equal(pre(shuffled)[0, 0], pre(frames)[0, 0].copy())
    ref = reference(frames, CAMS, IMAGE_CFG)
    np.testing.assert_allclose(pre(shuffled)[0, 3], ref[0, 3], atol=1e-6)


def test_wrong_camera_set(frames):
    pre = Preprocessor.from_spec(IMAGE_CFG, CAMS)
    with pytest.raises(KeyError, match="rear"):
        pre({k: v for k, v in frames.items() if k != "rear"})
    with pytest.raises(ValueError, match="unexpected cameras.*'top'"):
        pre(dict(frames, top=frames["front"]))


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8),
                                 "not an image"])
def test_bad_frame(frames, bad):
    pre = Preprocessor.from_spec(IMAGE_CFG, CAMS)
    with pytest.raises(ValueError, match="camera 'left'"):
        pre(dict(frames, left=bad))


def test_bad_config():
    with pytest.raises(KeyError, match="height"):
        Preprocessor.from_spec({k: v for k, v in IMAGE_CFG.items() if k != "height"}, CAMS)
    with pytest.raises(ValueError, match="std"):
        Preprocessor.from_spec(dict(IMAGE_CFG, std=[0.2, 0.0, 0.2]), CAMS)
    with pytest.raises(ValueError, match="3 values"):
        Preprocessor.from_spec(dict(IMAGE_CFG, mean=[0.5]), CAMS)
    with pytest.raises(ValueError, match="channel orders"):
        Preprocessor.from_spec(dict(IMAGE_CFG, channel_order="rgba"), CAMS)
    with pytest.raises(ValueError, match="unique"):
        Preprocessor.from_spec(IMAGE_CFG, ["a", "a"])


def test_works_with_decoded_frames():
    from dsdrive_ros.frames.image_codec import decode_image, encode_image
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    step, data = encode_image(rgb, "rgb8", pad_to=320 * 3 + 32)
    view = decode_image("rgb8", 240, 320, step, data)   # read-only strided view of bytes
    cfg = dict(IMAGE_CFG, height=120, width=160)
    pre = Preprocessor.from_spec(cfg, ["front"])
    np.testing.assert_allclose(pre({"front": view}), reference({"front": rgb}, ["front"], cfg), atol=1e-6)

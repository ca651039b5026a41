"""Training augmentation: camera jitter and exposure, one draw per camera and clip."""
import numpy as np

from dsdrive_ros.train.augment import Augment

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _clip(seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.uniform(0, 1, (3, 2, 3, 16, 24)).astype(np.float32)  # HIST 3, NCAM 2
    pixels[1] = pixels[0]  # two identical frames: the same draw must keep them identical
    return (pixels - MEAN[:, None, None]) / STD[:, None, None]


def test_off_is_identity_and_on_changes_each_camera():
    clip = _clip()
    assert not Augment().active
    out = Augment(shift_px=3, exposure=0.3)(clip, MEAN, STD, np.random.default_rng(1))
    assert out.shape == clip.shape and out.dtype == clip.dtype
    assert not np.shares_memory(out, clip) and np.array_equal(clip, _clip())  # input untouched
    for cam in range(2):
        assert not np.allclose(out[:, cam], clip[:, cam])
    np.testing.assert_array_equal(out[0], out[1])  # one draw per camera across the clip's frames
    pixels = out * STD[:, None, None] + MEAN[:, None, None]
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # exposure clips like a sensor


def test_shift_moves_content_and_repeats_the_edge():
    clip = _clip()
    aug = Augment(shift_px=2)
    rng = np.random.default_rng(5)
    dy, dx = np.random.default_rng(5).integers(-2, 3, size=2)  # the draw the first camera gets
    out = aug(clip, MEAN, STD, rng)
    h, w = clip.shape[-2:]
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    src_y, src_x = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    np.testing.assert_array_equal(out[:, 0][..., ys, xs], clip[:, 0][..., src_y, src_x])


def test_exposure_is_gain_and_offset_in_pixel_space_clipped_like_a_sensor():
    clip = _clip()
    out = Augment(exposure=0.4)(clip, MEAN, STD, np.random.default_rng(3))
    draws = np.random.default_rng(3)
    m, s = MEAN[:, None, None], STD[:, None, None]
    for cam in range(clip.shape[1]):
        gain, offset = draws.uniform(0.6, 1.4), draws.uniform(-0.4, 0.4) / 4.0
        pixels = np.clip((clip[:, cam] * s + m) * gain + offset, 0.0, 1.0)
        np.testing.assert_allclose(out[:, cam], (pixels - m) / s, atol=1e-5)


def test_shift_equals_the_edge_clamped_index_map_for_every_draw():
    clip = _clip()
    h, w = clip.shape[-2:]
    for seed in range(12):  # 12 draws of 2 cameras cover most of the 7 x 7 shifts, signs and zero
        out = Augment(shift_px=3)(clip, MEAN, STD, np.random.default_rng(seed))
        draws = np.random.default_rng(seed)
        for cam in range(clip.shape[1]):
            dy, dx = draws.integers(-3, 4, size=2)
            rows, cols = np.clip(np.arange(h) - dy, 0, h - 1), np.clip(np.arange(w) - dx, 0, w - 1)
            np.testing.assert_array_equal(out[:, cam], clip[:, cam][..., rows[:, None], cols[None, :]])

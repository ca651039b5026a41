"""dsdrive_ros.frames.sync.CameraSync: keep-latest, anchor triggering, skew, jumps, stale cameras."""
import pytest

from dsdrive_ros.frames.sync import CameraSync, FrameSet

MS = 1_000_000
CAMS = ["front", "left", "right"]


def make(**kw):
    kw.setdefault("max_skew_ns", 10 * MS)
    kw.setdefault("stale_after_ns", 200 * MS)
    kw.setdefault("jump_back_ns", 500 * MS)
    return CameraSync(CAMS, **kw)


def feed_all(sync, t, order=("left", "right", "front"), offsets=None):
    out = None
    for cam in order:
        t_cam = t + (offsets or {}).get(cam, 0)
        r = sync.on_frame(cam, t_cam, f"{cam}@{t_cam}")
        if r is not None:
            assert out is None
            out = r
    return out


def test_anchor_defaults_to_first_camera_and_triggers():
    s = make()
    assert s.anchor == "front"
    assert s.on_frame("left", 1000 * MS, "L") is None
    assert s.on_frame("right", 1002 * MS, "R") is None
    fs = s.on_frame("front", 1001 * MS, "F")
    assert isinstance(fs, FrameSet)
    assert fs.stamp_ns == 1001 * MS
    assert list(fs.frames) == CAMS and fs.frames == {"front": "F", "left": "L", "right": "R"}
    assert fs.stamps == {"front": 1001 * MS, "left": 1000 * MS, "right": 1002 * MS}
    assert fs.skew_ns == 1 * MS
    assert fs.discontinuity is False
    c = s.counters()
    assert c["sets"] == 1 and c["anchors"] == 1 and c["frames"] == 3
    # consumed: the next anchor alone does not make a set
    assert s.on_frame("front", 1034 * MS, "F2") is None


def test_custom_anchor():
    s = make(anchor="right")
    assert s.on_frame("front", 0, "F") is None
    assert s.on_frame("left", 0, "L") is None
    assert s.on_frame("right", 1, "R").stamp_ns == 1
    with pytest.raises(ValueError, match="anchor"):
        make(anchor="rear")


def test_late_non_anchor_completes_pending_anchor():
    s = make()
    assert s.on_frame("front", 100 * MS, "F") is None
    assert s.on_frame("left", 99 * MS, "L") is None
    fs = s.on_frame("right", 103 * MS, "R")
    assert fs is not None and fs.stamp_ns == 100 * MS and fs.frames["front"] == "F"


def test_skew_reject_when_other_camera_is_ahead():
    s = make()
    s.on_frame("left", 100 * MS, "L")
    s.on_frame("right", 120 * MS, "R")  # 20 ms ahead of the anchor that follows: can never sync
    assert s.on_frame("front", 100 * MS, "F") is None
    c = s.counters()
    assert c["skew_rejects"] == 1 and c["sets"] == 0
    # the rejected anchor is gone; a new anchor waits for left (15 ms behind it), which then syncs
    assert s.on_frame("front", 115 * MS, "F2") is None
    fs = s.on_frame("left", 113 * MS, "L2")
    assert fs.frames == {"front": "F2", "left": "L2", "right": "R"} and fs.skew_ns == 5 * MS
    assert s.counters()["skew_rejects"] == 1


def test_skew_reject_counted_when_pending_anchor_replaced():
    s = make()
    s.on_frame("left", 100 * MS, "L")
    s.on_frame("right", 60 * MS, "R")       # too old for the anchor: anchor waits for a newer one
    assert s.on_frame("front", 100 * MS, "F1") is None
    assert s.counters()["skew_rejects"] == 0  # still pending, no verdict yet
    assert s.on_frame("front", 133 * MS, "F2") is None   # F1 abandoned
    c = s.counters()
    assert c["skew_rejects"] == 1 and c["drops.front"] == 1
    fs = s.on_frame("right", 135 * MS, "R2")  # left (100) is 33 ms behind F2: still waiting
    assert fs is None
    fs = s.on_frame("left", 131 * MS, "L2")
    assert fs.frames == {"front": "F2", "left": "L2", "right": "R2"}
    c = s.counters()
    assert c["drops.left"] == 1 and c["drops.right"] == 1


def test_keep_latest_drops_counted():
    s = make()
    for i in range(5):  # left publishes 5 frames before anything else
        s.on_frame("left", (100 + i) * MS, f"L{i}")
    s.on_frame("right", 104 * MS, "R")
    fs = s.on_frame("front", 104 * MS, "F")
    assert fs.frames["left"] == "L4"            # the newest one was kept
    c = s.counters()
    assert c["drops.left"] == 4 and c["drops.right"] == 0 and c["drops.front"] == 0


def test_missing_camera():
    s = make()
    s.on_frame("left", 0, "L")
    for i in range(4):                       # right never publishes
        assert s.on_frame("front", i * 33 * MS, "F") is None
    c = s.counters()
    assert c["missing"] == 3                 # 3 abandoned anchors, the 4th still pending
    assert c["skew_rejects"] == 0 and c["sets"] == 0
    assert "right" in s.stale_cameras()


def test_duplicates_and_small_out_of_order_are_dropped():
    s = make()
    s.on_frame("left", 100 * MS, "L")
    assert s.on_frame("left", 100 * MS, "Ldup") is None
    assert s.on_frame("left", 90 * MS, "Lold") is None   # 10 ms back: out of order, not a loop
    c = s.counters()
    assert c["duplicates"] == 1 and c["out_of_order"] == 1 and c["time_jumps"] == 0
    s.on_frame("right", 100 * MS, "R")
    fs = s.on_frame("front", 100 * MS, "F")
    assert fs.frames["left"] == "L"           # the late/duplicate frames never replaced it


def test_bag_loop_time_jump_resets_and_flags_discontinuity():
    s = make()
    t = 10_000 * MS
    for k in range(30):  # a 1 s bag
        assert feed_all(s, t + k * 33 * MS) is not None
    assert s.counters()["time_jumps"] == 0
    # bag loops: everything goes back to t
    sets = [feed_all(s, t + k * 33 * MS) for k in range(3)]
    c = s.counters()
    assert c["time_jumps"] == 3               # one per camera
    assert all(fs is not None for fs in sets)
    assert sets[0].discontinuity is True and sets[1].discontinuity is False
    assert sets[0].stamp_ns == t


def test_anchor_loops_first_others_follow():
    s = make()
    t = 5_000 * MS
    feed_all(s, t)
    # the anchor loops first while the others still hold/publish end-of-bag frames
    s.on_frame("left", t + 33 * MS, "L-end")
    assert s.on_frame("front", 0, "F0") is None
    assert s.counters()["time_jumps"] == 1
    assert s.on_frame("left", 1 * MS, "L0") is None
    fs = s.on_frame("right", 2 * MS, "R0")
    # left looped (its held future frame was discarded); the set is made around the new anchor
    assert fs is not None and fs.stamp_ns == 0 and fs.frames["left"] == "L0"
    assert fs.discontinuity is True
    assert s.counters()["time_jumps"] == 3


def test_stale_camera_and_camera_returning():
    s = make()
    t = 0
    assert feed_all(s, t) is not None
    # right dies; front and left keep going for ~1 s
    for k in range(1, 31):
        assert feed_all(s, t + k * 33 * MS, order=("left", "front")) is None
    c = s.counters()
    assert c["stale.right"] > 0 and c["stale_rejects"] > 0
    assert c["stale.left"] == 0 and c["stale.front"] == 0
    assert c["missing"] == 0
    assert s.stale_cameras() == ["right"]
    # right comes back: sets resume, and the long gap is flagged
    fs = feed_all(s, t + 31 * 33 * MS)
    assert fs is not None and fs.discontinuity is True
    assert s.stale_cameras() == []
    fs = feed_all(s, t + 32 * 33 * MS)
    assert fs is not None and fs.discontinuity is False


def test_steady_stream_with_jitter_every_anchor_syncs():
    s = make()
    n_sets = 0
    for k in range(100):
        t = k * 33 * MS
        offsets = {"left": (k % 5 - 2) * MS, "right": (3 - k % 7) * MS}
        order = ("front", "left", "right") if k % 2 else ("right", "left", "front")
        n_sets += feed_all(s, t, order=order, offsets=offsets) is not None
    c = s.counters()
    assert n_sets == 100 == c["sets"] == c["anchors"]
    assert c["skew_rejects"] == c["missing"] == c["stale_rejects"] == 0
    assert sum(v for k, v in c.items() if k.startswith("drops.")) == 0


def test_counters_account_for_every_anchor():
    s = make()
    import random
    rnd = random.Random(3)
    for k in range(300):
        t = k * 33 * MS
        for cam in rnd.sample(CAMS, 3):
            if rnd.random() < 0.9:
                s.on_frame(cam, t + rnd.randint(-15, 15) * MS, cam)
    c = s.counters()
    rejects = c["skew_rejects"] + c["missing"] + c["stale_rejects"]
    pending = 1 if s._cams["front"].held is not None else 0
    assert c["anchors"] == c["sets"] + rejects + pending


def test_errors_and_plain_counters():
    s = make()
    with pytest.raises(KeyError, match="rear"):
        s.on_frame("rear", 0, None)
    with pytest.raises(ValueError):
        CameraSync([])
    with pytest.raises(ValueError):
        CameraSync(["a", "a"])
    c = s.counters()
    assert all(isinstance(k, str) and type(v) is int for k, v in c.items())
    c["sets"] = 99                             # a copy
    assert s.counters()["sets"] == 0


def test_reset():
    s = make()
    s.on_frame("left", 0, "L")
    s.on_frame("right", 0, "R")
    s.reset()
    assert s.on_frame("front", 0, "F") is None  # held frames forgotten
    fs = feed_all(s, 33 * MS)
    assert fs is not None and fs.discontinuity is True


def test_non_anchor_loops_first():
    s = make()
    t = 5_000 * MS
    feed_all(s, t)
    assert s.on_frame("front", t + 33 * MS, "F-end") is None   # pending, old timeline
    assert s.on_frame("left", 0, "L0") is None                 # left loops: waits for a new anchor
    assert s.on_frame("right", 1 * MS, "R0") is None
    fs = s.on_frame("front", 0, "F0")                           # anchor loops: pending F-end dropped
    assert fs is not None and fs.frames == {"front": "F0", "left": "L0", "right": "R0"}
    c = s.counters()
    assert c["time_jumps"] == 3 and c["skew_rejects"] == c["missing"] == c["stale_rejects"] == 0

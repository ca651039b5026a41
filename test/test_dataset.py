"""DatasetWriter / DatasetReader: layout, round trip, resumability, validation; generate's loop."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dsdrive_ros.data.dataset import PARTIAL_DIR, DatasetReader, DatasetWriter, record_from_state
from dsdrive_ros.frames.image_codec import decode_compressed, encode_compressed
from dsdrive_ros.data.build_dataset import episode_plan, generate
from dsdrive_ros.sim.scene import SceneState, TrafficLightAhead
from dsdrive_ros.data.actions import action_from_text
from dsdrive_ros.data.teacher import ScriptedTeacher

CAMS = ("front", "left", "right", "rear")


def smooth_image(seed: int, h=60, w=96) -> np.ndarray:
    """A smooth (JPEG-friendly) picture that differs per seed."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 100 * np.sin(xx / (7 + seed % 5) + seed)
    g = 127 + 100 * np.cos(yy / (5 + seed % 3) - seed)
    b = np.full_like(r, (37 * seed) % 256)
    return np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)


def scene(i: int, action="go", instruction="Follow the road.", iid=0) -> SceneState:
    return SceneState(step=i, t=0.1 * i, x=2.0 * i, y=0.5 * i, yaw=0.01 * i, speed=5.0 + 0.1 * i, speed_limit=13.9,
                      instruction=instruction, instruction_id=iid, maneuver="follow", end=(i % 7 == 6),
                      route_progress=i / 100, waypoints=[[2.5 * (k + 1) + 0.01 * i, 0.1 * k] for k in range(5)],
                      action=action, light=TrafficLightAhead("green", 40.0) if i % 2 else None)


def images(i: int) -> dict[str, np.ndarray]:
    return {cam: smooth_image(10 * i + k) for k, cam in enumerate(CAMS)}


def write_episode(w: DatasetWriter, name: str, n: int, seed=1, town="grid4"):
    teacher = ScriptedTeacher(0)
    with w.begin_episode(name, town=town, seed=seed, meta={"rate_hz": 10.0, "intrinsics": {"front": [1, 2, 3]}}) as ep:
        for i in range(n):
            s = scene(i, action=("go", "slow", "stop")[i % 3])
            ep.add_state(s, images(i), teacher.explain(s, {}))


def test_layout_and_round_trip(tmp_path):
    root = tmp_path / "ds"
    w = DatasetWriter(root)
    write_episode(w, "ep-a", 5, seed=11)
    write_episode(w, "ep-b", 3, seed=12, town="spider")

    # layout per ARCHITECTURE.md
    assert sorted(p.name for p in (root / "ep-a" / "front").iterdir()) == [f"{i:06d}.jpg" for i in range(5)]
    assert sorted(p.name for p in (root / "ep-a" / "frames").iterdir()) == [f"{i:06d}.json" for i in range(5)]
    for cam in CAMS:
        assert (root / "ep-b" / cam / "000002.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG SOI
    lines = [json.loads(x) for x in (root / "index.jsonl").read_text().splitlines()]
    assert lines == [{"episode": "ep-a", "town": "grid4", "seed": 11, "frames": 5},
                     {"episode": "ep-b", "town": "spider", "seed": 12, "frames": 3}]
    meta = json.loads((root / "ep-a" / "meta.json").read_text())
    assert meta["cameras"] == list(CAMS) and meta["rate_hz"] == 10.0 and meta["frames"] == 5
    assert meta["intrinsics"] == {"front": [1, 2, 3]} and meta["format"] == "dsdrive-dataset/1"
    rec = json.loads((root / "ep-a" / "frames" / "000004.json").read_text())
    assert set(rec) == {"t", "pose", "speed", "instruction", "instruction_id", "end", "waypoints", "action", "teacher"}
    assert rec["t"] == pytest.approx(0.4) and rec["pose"] == {"x": 8.0, "y": 2.0, "yaw": 0.04}
    assert rec["action"] == "slow" and action_from_text(rec["teacher"]) == "slow"
    assert rec["waypoints"][0] == [2.54, 0.0] and len(rec["waypoints"]) == 5
    assert not (root / PARTIAL_DIR / "ep-a").exists()

    # reading back
    r = DatasetReader(root)
    assert r.episode_names == ["ep-a", "ep-b"] and len(r) == 8
    ep = r.episode("ep-a")
    assert len(ep) == 5 and ep.rate_hz == 10.0
    for i, fr in enumerate(ep):
        exp = record_from_state(scene(i, action=("go", "slow", "stop")[i % 3]), fr.record["teacher"])
        assert fr.record == exp
        assert fr.t == pytest.approx(0.1 * i)
        assert fr.waypoints.shape == (5, 2) and fr.waypoints.dtype == np.float32
        for k, cam in enumerate(CAMS):
            orig = smooth_image(10 * i + k)
            assert fr.images[cam].shape == orig.shape and fr.images[cam].dtype == np.uint8
            assert np.abs(fr.images[cam].astype(int) - orig.astype(int)).mean() < 3.0
            # images of other frames differ clearly (the test can fail on a mix-up)
            other = smooth_image(10 * ((i + 1) % 5) + k)
            assert np.abs(fr.images[cam].astype(int) - other.astype(int)).mean() > 10
            assert fr.jpeg[cam] == (root / "ep-a" / cam / f"{i:06d}.jpg").read_bytes()

    # flat indexing across episodes
    assert r.locate(5) == ("ep-b", 0) and r.locate(-1) == ("ep-b", 2)
    assert r[6].episode == "ep-b" and r[6].index == 1 and r[6].record["speed"] == pytest.approx(5.1)
    with pytest.raises(IndexError):
        r[8]
    assert [f.record["t"] for f in r] == pytest.approx([0, .1, .2, .3, .4, 0, .1, .2])
    # subset of cameras, no decode
    r2 = DatasetReader(root, cameras=["front"], decode=False)
    f = r2[0]
    assert list(f.jpeg) == ["front"] and f.images == {}


def test_resume_after_crash_and_skip_complete(tmp_path):
    root = tmp_path / "ds"
    w = DatasetWriter(root)
    write_episode(w, "done", 2)
    # a crashed episode: frames written, never committed
    ep = w.begin_episode("crashed", town="grid4", seed=3)
    for i in range(3):
        ep.add_state(scene(i), images(i), "Plan: go.")
    del ep  # process dies here
    assert (root / PARTIAL_DIR / "crashed" / "frames" / "000002.json").exists()

    w2 = DatasetWriter(root)  # rerun
    assert w2.is_complete("done") and not w2.is_complete("crashed")
    assert DatasetReader(root).episode_names == ["done"]  # the partial one is invisible
    with pytest.raises(FileExistsError):
        w2.begin_episode("done")
    ep = w2.begin_episode("crashed", town="grid4", seed=3)  # restarts from scratch
    assert not (root / PARTIAL_DIR / "crashed" / "frames" / "000002.json").exists()
    ep.add_state(scene(0), images(0), "Plan: go.")
    ep.commit()
    r = DatasetReader(root)
    assert r.episode_names == ["done", "crashed"] and len(r.episode("crashed")) == 1

    # exception inside the context aborts and leaves nothing behind
    with pytest.raises(RuntimeError):
        with w2.begin_episode("boom") as ep:
            ep.add_state(scene(0), images(0), "Plan: go.")
            raise RuntimeError("simulator died")
    assert not (root / "boom").exists() and not (root / PARTIAL_DIR / "boom").exists()
    assert not w2.is_complete("boom")


def test_index_is_reconciled(tmp_path):
    root = tmp_path / "ds"
    w = DatasetWriter(root)
    write_episode(w, "a", 2)
    write_episode(w, "b", 3)
    original = (root / "index.jsonl").read_text()
    # crash between rename and index update: index lacks b
    (root / "index.jsonl").write_text(original.splitlines()[0] + "\n")
    assert DatasetReader(root).episode_names == ["a", "b"]  # the reader sees it anyway
    DatasetWriter(root)
    assert (root / "index.jsonl").read_text() == original
    # index lost entirely
    os.remove(root / "index.jsonl")
    DatasetWriter(root)
    assert (root / "index.jsonl").read_text() == original
    # an episode folder deleted by hand drops out of the index
    import shutil
    shutil.rmtree(root / "a")
    DatasetWriter(root)
    assert [json.loads(x)["episode"] for x in (root / "index.jsonl").read_text().splitlines()] == ["b"]


def test_validation(tmp_path):
    w = DatasetWriter(tmp_path / "ds")
    ep = w.begin_episode("v")
    good = record_from_state(scene(0), "Plan: go.")
    with pytest.raises(ValueError, match="action"):
        ep.add_frame({**good, "action": "reverse"}, images(0))
    with pytest.raises(ValueError, match="waypoints"):
        ep.add_frame({**good, "waypoints": [[1, 2, 3]]}, images(0))
    with pytest.raises(ValueError, match="lacks"):
        ep.add_frame({k: v for k, v in good.items() if k != "teacher"}, images(0))
    ep.add_frame(good, images(0))
    with pytest.raises(ValueError, match="cameras"):
        ep.add_frame(good, {"front": images(0)["front"]})
    bad = images(1)
    bad["left"] = bad["left"][:30]
    with pytest.raises(ValueError, match="shape"):
        ep.add_frame(good, bad)
    with pytest.raises(ValueError, match="uint8 RGB"):  # the codec the dataset writes and reads with
        encode_compressed(np.zeros((4, 4), np.float32), "jpeg")
    with pytest.raises(ValueError):
        decode_compressed("jpeg", b"not a jpeg")
    with pytest.raises(ValueError):
        w.begin_episode("../escape")
    with pytest.raises(ValueError, match="no frames"):
        w.begin_episode("empty").commit()


class FakeEpisode:
    """Stands in for dsdrive_ros.sim.episode.Episode: yields (SceneState, images)."""

    opened: list[tuple[str, int]] = []

    def __init__(self, town, seed, steps, fail_at=None):
        self.town, self.seed, self.steps, self.fail_at = town, seed, steps, fail_at
        self.closed = False
        FakeEpisode.opened.append((town, seed))

    def meta(self):  # like Episode.meta(): cameras = per-camera dicts
        return {"cameras": {c: {"K": [[100, 0, 32], [0, 100, 30], [0, 0, 1]], "yaw_deg": 60.0 * k} for k, c in enumerate(CAMS)},
                "camera_names": list(CAMS), "rate_hz": 10.0, "net": f"/cache/{self.town}.net.xml", "route": ["e1", "e2"]}

    def __iter__(self):
        for i in range(min(self.steps, 50)):
            if self.fail_at is not None and i == self.fail_at:
                raise RuntimeError("sumo crashed")
            yield scene(i, action=("go", "turn left")[i % 2], instruction=f"{self.town} {self.seed}"), images(i)

    def close(self):
        self.closed = True


def test_generate_loop_resumes(tmp_path):
    out = tmp_path / "gen"
    plan = episode_plan(["grid4", "spider"], 3, seed=2)
    assert plan == [("grid4-020000", "grid4", 20000), ("spider-020001", "spider", 20001), ("grid4-020002", "grid4", 20002)]

    crash = {"n": 0}

    def flaky_factory(town, seed, steps):
        crash["n"] += 1
        return FakeEpisode(town, seed, steps, fail_at=2 if crash["n"] == 2 else None)

    with pytest.raises(RuntimeError, match="sumo crashed"):
        generate(out, ["grid4", "spider"], 3, seed=2, steps=4, episode_factory=flaky_factory, progress=False)
    assert DatasetReader(out).episode_names == ["grid4-020000"]

    FakeEpisode.opened.clear()
    res = generate(out, ["grid4", "spider"], 3, seed=2, steps=4,
                   episode_factory=lambda t, s, n: FakeEpisode(t, s, n), progress=False)
    assert res["skipped"] == ["grid4-020000"] and res["written"] == ["spider-020001", "grid4-020002"]
    assert res["frames"] == 8 and FakeEpisode.opened == [("spider", 20001), ("grid4", 20002)]
    r = DatasetReader(out)
    assert r.episode_names == ["grid4-020000", "spider-020001", "grid4-020002"] and len(r) == 12
    ep = r.episode("spider-020001")
    assert ep.meta["net"] == "/cache/spider.net.xml" and ep.meta["seed"] == 20001
    assert ep.meta["cameras"] == list(CAMS) and ep.meta["camera_rig"]["left"]["yaw_deg"] == 60.0
    assert ep.meta["camera_rig"]["front"]["K"][0][0] == 100
    assert [f.record["instruction"] for f in ep] == ["spider 20001"] * 4
    for f in ep:
        assert action_from_text(f.record["teacher"]) == f.record["action"]

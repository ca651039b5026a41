"""LMDrive layout reader on a small fixture built here in LMDrive's conventions."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from dsdrive_ros.data.dataset import validate_record
from dsdrive_ros.data.lmdrive_layout import LMDriveDataset, future_waypoints, split_stacked

# solid colours per view (RGB), stacked front/left/right/rear
COLOURS = {"front": (220, 30, 30), "left": (30, 220, 30), "right": (30, 30, 220), "rear": (220, 220, 30)}
VIEW_H, VIEW_W = 48, 64


def write_rgb_full(path: Path, shade: int) -> None:
    views = []
    for cam in ("front", "left", "right", "rear"):
        v = np.zeros((VIEW_H, VIEW_W, 3), np.uint8)
        v[:] = COLOURS[cam]
        v[:4, :4] = shade  # a frame marker
        views.append(v)
    full = np.concatenate(views, 0)
    cv2.imwrite(str(path), cv2.cvtColor(full, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def lmdrive_measurement(east: float, north: float, compass: float, speed: float, command: int) -> dict:
    # LMDrive: gps_x/gps_y in the GNSS frame (north, east); x = gps_y, y = -gps_x; theta = compass
    return {"gps_x": north, "gps_y": east, "x": east, "y": -north, "theta": compass, "speed": speed,
            "command": command, "target_speed": 6.5, "is_junction": False, "should_brake": 0}


def build_route(root: Path, name: str, poses: list[tuple[float, float, float, float, int]], merged=False) -> Path:
    d = root / name
    (d / "rgb_full").mkdir(parents=True)
    meas = [lmdrive_measurement(*p) for p in poses]
    if merged:
        (d / "measurements_all.json").write_text(json.dumps(meas))
    else:
        (d / "measurements").mkdir()
        for i, m in enumerate(meas):
            (d / "measurements" / f"{i:04d}.json").write_text(json.dumps(m))
    for i in range(len(poses)):
        write_rgb_full(d / "rgb_full" / f"{i:04d}.jpg", shade=(i * 9) % 256)
    return d


@pytest.fixture
def fixture_root(tmp_path):
    root = tmp_path / "lmdrive"
    # route A: heading east (compass pi/2) at 5 m/s for 20 frames, then standing still 10 frames
    poses_a = []
    e = 0.0
    for i in range(30):
        speed = 5.0 if i < 20 else 0.0
        poses_a.append((e, 10.0, math.pi / 2, speed, 4))
        e += 0.5 * (i < 20)
    build_route(root, "routes_town01_short_w1_00", poses_a)
    # route B: heading north, then a left turn on a 10 m radius circle to west (command 1 = left)
    poses_b = []
    for i in range(40):
        s = 0.5 * i  # 5 m/s at 10 Hz
        if s < 5.0:
            east, north, heading = 0.0, s, 0.0  # compass 0 = north
        else:
            a = (s - 5.0) / 10.0  # radians turned
            a = min(a, math.pi / 2)
            east, north = -10.0 + 10.0 * math.cos(a), 5.0 + 10.0 * math.sin(a)
            heading = -a  # turning left = compass decreasing
        poses_b.append((east, north, heading % (2 * math.pi), 5.0, 1))
    build_route(root, "routes_town02_tiny_w3_07", poses_b, merged=True)
    lines = [
        {"route_path": "routes_town01_short_w1_00", "town_id": 1, "weather_id": 1, "start_frame": 0, "end_frame": 9,
         "instruction": "Follow-03-s1", "instruction_id": 46, "instruction_args": [], "route_frames": 30},
        {"route_path": "routes_town01_short_w1_00/", "town_id": 1, "weather_id": 1, "start_frame": 15, "end_frame": 29,
         "instruction": "Turn-04-L-dis", "instruction_id": 7, "instruction_args": [12], "route_frames": 30},
        {"route_path": "routes_town02_tiny_w3_07", "town_id": 2, "weather_id": 3, "start_frame": 0, "end_frame": 20,
         "instruction": "Turn-04-L", "instruction_id": 4, "instruction_args": [], "route_frames": 40},
    ]
    (root / "navigation_instruction_list.txt").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def test_clips_records_and_images(fixture_root):
    ds = LMDriveDataset(fixture_root)
    assert [len(c) for c in ds.clips] == [10, 15, 21] and len(ds) == 46
    a0, a1, b = ds.clips
    assert a0.name == "routes_town01_short_w1_00__00000"
    # no instruction_dict: built-in texts from the rule keys
    assert a0.instruction == "Follow the current road."
    assert a1.instruction == "After 12 meters, turn left at the next intersection."
    assert b.instruction == "Turn left at the next intersection."

    # route A heading east at 5 m/s: waypoints straight ahead 2.5 m apart, yaw 0 (east)
    r = a0.record(0)
    validate_record(r)
    assert r["pose"]["x"] == pytest.approx(0.0) and r["pose"]["y"] == pytest.approx(10.0)
    assert r["pose"]["yaw"] == pytest.approx(0.0, abs=1e-6)
    # (the car stops at frame 20 = 10 m, so the last point stays at 10 m)
    np.testing.assert_allclose(r["waypoints"], [[2.5, 0], [5, 0], [7.5, 0], [10, 0], [10, 0]], atol=1e-6)
    assert r["action"] == "go" and r["end"] == 0 and r["t"] == 0.0 and r["speed"] == 5.0
    assert r["instruction_id"] == 46 and r["teacher"] == ""
    assert a0.record(9)["end"] == 1 and sum(a0.record(i)["end"] for i in range(10)) == 1
    # clip 2 starts at frame 15: 5 more frames of driving then standstill (clamped at the route end)
    r15 = a1.record(0)
    assert r15["t"] == pytest.approx(1.5)
    np.testing.assert_allclose(r15["waypoints"], [[2.5, 0]] + [[2.5, 0]] * 4, atol=1e-6)
    assert r15["action"] == "slow"
    assert a1.record(10)["action"] == "stop"  # frame 25: not moving any more
    assert a1.record(14)["end"] == 1

    # route B: left turn -> positive y (left) in base_link, action turn left
    rb = b.record(10)  # frame 10: 5 m travelled, at the start of the arc heading north
    assert rb["pose"]["yaw"] == pytest.approx(math.pi / 2, abs=1e-6)
    wps = np.asarray(rb["waypoints"])
    assert np.all(wps[:, 0] > 0) and wps[-1, 1] > 2.5 and np.all(np.diff(wps[:, 1]) > 0)
    # exact: after 2.5 m of arc on radius 10 turning left
    a = 0.25
    np.testing.assert_allclose(wps[0], [10 * math.sin(a), 10 * (1 - math.cos(a))], atol=1e-4)  # records keep 4 decimals
    assert rb["action"] == "turn left"
    # frame 0: 5 m straight then 7.5 m of arc -> 10 * (1 - cos 0.75) = 2.68 m to the left at 2.5 s
    assert b.record(0)["waypoints"][-1][1] == pytest.approx(10 * (1 - math.cos(0.75)), abs=1e-3)
    assert b.record(0)["action"] == "turn left"

    # images: rgb_full split into the four views in order
    fr = a0.frame(3)
    assert set(fr.images) == {"front", "left", "right", "rear"}
    for cam, colour in COLOURS.items():
        im = fr.images[cam]
        assert im.shape == (VIEW_H, VIEW_W, 3)
        np.testing.assert_allclose(im[10:, 10:].reshape(-1, 3).mean(0), colour, atol=6)
    assert abs(int(fr.images["front"][1, 1, 0]) - 27) < 12  # frame marker of frame 3

    # flat indexing continues across clips
    f = ds[10]
    assert f.episode == a1.name and f.index == 0 and f.record["frame_id"] == 15
    assert [f.record["frame_id"] for f in b.frames(decode=False)][:3] == [0, 1, 2]
    fb = b.frame(0, decode=False)
    assert fb.images == {} and fb.jpeg["rear"][:2] == b"\xff\xd8"


def test_instruction_dict_fills_arguments(fixture_root):
    idict = {"7": ["After [x] meters, left turn at intersection."], "46": ["Keep on this road."],
             "4": ["Next intersection, turn left."]}
    ds = LMDriveDataset(fixture_root, instruction_dict=idict)
    assert [c.instruction for c in ds.clips] == ["Keep on this road.", "After 12 meters, left turn at intersection.",
                                                 "Next intersection, turn left."]
    assert ds.clips[1].record(0)["instruction"] == "After 12 meters, left turn at intersection."
    # found automatically at ROOT/instruction_dict.json
    (fixture_root / "instruction_dict.json").write_text(json.dumps(idict))
    assert LMDriveDataset(fixture_root).clips[0].instruction == "Keep on this road."


def test_route_without_list_and_errors(tmp_path):
    root = tmp_path / "lm"
    build_route(root, "routes_town05_long_w0_01", [(float(i), 0.0, math.pi / 2, 10.0, 4) for i in range(8)])
    ds = LMDriveDataset(root)
    assert len(ds.clips) == 1 and len(ds) == 8 and ds.clips[0].instruction == "Follow the route."
    assert ds.clips[0].record(7)["end"] == 1
    # a clip beyond the route's frames is an error, not silently clipped
    (root / "navigation_instruction_list.txt").write_text(json.dumps(
        {"route_path": "routes_town05_long_w0_01", "start_frame": 2, "end_frame": 50, "instruction": "Turn-01-R"}) + "\n")
    with pytest.raises(ValueError, match="outside"):
        LMDriveDataset(root)
    (root / "navigation_instruction_list.txt").write_text(json.dumps(
        {"route_path": "missing_route", "start_frame": 0, "end_frame": 1}) + "\n")
    with pytest.raises(FileNotFoundError, match="missing_route"):
        LMDriveDataset(root)


def test_helpers():
    img = np.arange(8 * 2 * 3, dtype=np.uint8).reshape(8, 2, 3)
    views = split_stacked(img)
    assert list(views) == ["front", "left", "right", "rear"] and views["right"][0, 0, 0] == img[4, 0, 0]
    with pytest.raises(ValueError):
        split_stacked(img[:7])
    # x/y only (no gps_*): x = east, y = -north
    meas = [{"x": 0.0, "y": 0.0, "theta": 0.0}, {"x": 0.0, "y": -1.0, "theta": 0.0}]  # moving north, heading north
    np.testing.assert_allclose(future_waypoints(meas, 0, count=2, stride=1), [[1.0, 0.0], [1.0, 0.0]], atol=1e-12)

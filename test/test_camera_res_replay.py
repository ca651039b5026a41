"""Raw images at camera resolution over DDS: a 1280x720 bgr8 bag (sqlite3, written here with rosbags)
replayed through the real node at recorded timing plans (nearly) every camera set.

Before config/fastdds_large_data.xml, Fast DDS's 512 KiB shared-memory segment lost most 2.8 MB
images between the replay's publisher and the node: 5 % of the sets were planned (issue #17).
The bag's first second is a lead-in that is not counted: the node's first frames (first callbacks,
first plan, other processes starting on a shared 2-core machine) can stall it for a few hundred ms,
and a keep-last-1 camera queue then loses the frames of that moment. Steady state is the claim.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CAMERAS = ["front", "left", "right", "rear"]
START_NS = 1_767_225_600 * 10**9
HEIGHT, WIDTH = 720, 1280
RATE_HZ = 10.0
LEAD_IN = 10  # sets, not counted
SETS = 25     # counted; with the lead-in 3.5 s of bag: 140 images, 387 MB


def write_camera_bag(path: Path) -> list[int]:
    """Four bgr8 cameras at HEIGHTxWIDTH, RATE_HZ, plus the instruction; returns the set stamps."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]
    Image, String = T["sensor_msgs/msg/Image"], T["std_msgs/msg/String"]
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([xx * 255 // WIDTH, yy * 255 // HEIGHT, (xx + yy) % 64 * 4], -1).astype(np.uint8)
    stamps = []
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.SQLITE3) as w:
        conns = {c: w.add_connection(f"/camera/{c}/image_raw", "sensor_msgs/msg/Image", typestore=ts)
                 for c in CAMERAS}
        c_instr = w.add_connection("/instruction", "std_msgs/msg/String", typestore=ts)
        w.write(c_instr, START_NS, ts.serialize_cdr(String(data="follow the road"), "std_msgs/msg/String"))
        for i in range(LEAD_IN + SETS):
            ns = START_NS + int(round(i * 1e9 / RATE_HZ))
            stamps.append(ns)
            for j, cam in enumerate(CAMERAS):
                bgr = np.roll(base, 8 * i + 100 * j, axis=1)
                msg = Image(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9),
                                          frame_id=f"camera_{cam}"),
                            height=HEIGHT, width=WIDTH, encoding="bgr8", is_bigendian=0, step=WIDTH * 3,
                            data=bgr.reshape(-1))
                # drivers publish a set within a few ms: the recorded times keep that spread
                w.write(conns[cam], ns + j * 2_000_000, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    return stamps


@pytest.mark.ros
@pytest.mark.slow
def test_raw_1280x720_bag_at_recorded_timing_plans_95_percent(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build)")
    from dsdrive_ros.node.process import node_env
    from dsdrive_ros.replay.report import read_outputs

    bag = tmp_path / "bag"
    stamps = write_camera_bag(bag)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dsdrive_ros.replay.cli", str(bag), "--model-dir", str(model_dir),
           "--out", str(out), "--no-progress", "--no-report", "--rate", "1", "--transport", "raw",
           "-p", "reasoning.enabled:=false"]
    # cwd outside the source tree: the colcon-installed dsdrive_ros (with .msg) is imported
    try:
        res = subprocess.run(cmd, cwd=tmp_path, env=node_env(), capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(bag)  # 387 MB: pytest keeps the last runs' tmp_path folders
    log = (out / "node.log").read_text() if (out / "node.log").exists() else ""
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{log[-3000:]}"

    summary = json.loads((out / "replay.json").read_text())
    assert summary["dds_profile"] and Path(summary["dds_profile"]).name == "fastdds_large_data.xml"
    total = LEAD_IN + SETS
    assert summary["camera_sets"] == total and summary["sent"] == {c: total for c in CAMERAS} | {"instruction": 1}
    paths = [m for _, m in read_outputs(out / "outputs").get("/dsdrive/path", [])]
    counted = set(stamps[LEAD_IN:])
    planned = {int(p.header.stamp.sec) * 10**9 + int(p.header.stamp.nanosec) for p in paths} & counted
    assert len(planned) >= math.ceil(0.95 * SETS), (
        f"planned {len(planned)}/{SETS} camera sets\n{res.stdout[-1500:]}\n{log[-3000:]}")

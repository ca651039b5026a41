"""bag_export: episode -> rosbag2 mcap round trip with rosbags, and rclpy decodes the raw messages."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from dsdrive_ros.data.bag_export import (DEFAULT_START_NS, JPEG_FORMAT, TOPIC_GT_PATH, TOPIC_GT_REASONING,
                                        TOPIC_INSTRUCTION, TOPIC_ODOM, bag_topics, camera_topic, export_bag,
                                        iter_messages, read_ground_truth, read_ground_truth_reasoning, stamp_ns)
from dsdrive_ros.data.dataset import DatasetReader, DatasetWriter
from dsdrive_ros.frames.image_codec import decode_compressed
from dsdrive_ros.sim.scene import SceneState
from dsdrive_ros.data.teacher import ScriptedTeacher

CAMS = ("front", "left", "right", "rear")
N = 25


def img(seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:40, 0:64].astype(np.float32)
    return np.stack([127 + 100 * np.sin(xx / 6 + seed), 127 + 100 * np.cos(yy / 4 - seed),
                     np.full_like(xx, 30 * seed % 256)], -1).clip(0, 255).astype(np.uint8)


def state(i: int) -> SceneState:
    # drives along a gentle arc; instruction changes at frame 12
    yaw = 0.5 + 0.02 * i
    return SceneState(step=i, t=0.1 * i, x=100.0 + 1.5 * i, y=-20.0 + 0.4 * i, yaw=yaw, speed=6.0 + 0.1 * i,
                      speed_limit=13.9, instruction="Follow the road." if i < 12 else "Turn left at the next intersection.",
                      instruction_id=0 if i < 12 else 1, maneuver="follow", end=False, route_progress=i / 50,
                      waypoints=[[3.0 * (k + 1) + 0.01 * i, 0.2 * k * k] for k in range(5)],
                      action="go" if i < 20 else "slow")


def make_episode(root: Path):
    w = DatasetWriter(root)
    t = ScriptedTeacher(0)
    with w.begin_episode("ep", town="grid5", seed=9, meta={"rate_hz": 10.0}) as ep:
        for i in range(N):
            s = state(i)
            ep.add_state(s, {cam: img(i * 4 + k) for k, cam in enumerate(CAMS)}, t.explain(s, {}))
    return DatasetReader(root).episode("ep")


def test_export_dataset_episode_round_trip(tmp_path):
    ep = make_episode(tmp_path / "ds")
    bag = tmp_path / "bag"
    summary = export_bag(ep, bag)
    # rosbag2 directory with mcap storage
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    assert [Path(p).suffix for p in meta["relative_file_paths"]] == [".mcap"]
    assert summary.frames == N and summary.size_bytes > 0
    assert summary.start_ns == DEFAULT_START_NS and summary.end_ns == DEFAULT_START_NS + int(round(0.1 * (N - 1) * 1e9))

    topics = bag_topics(bag)
    for cam in CAMS:
        assert topics[camera_topic(cam)] == ("sensor_msgs/msg/CompressedImage", N)
    assert topics[TOPIC_ODOM] == ("nav_msgs/msg/Odometry", N)
    assert topics[TOPIC_GT_PATH] == ("nav_msgs/msg/Path", N)
    assert topics[TOPIC_GT_REASONING] == ("std_msgs/msg/String", N)
    # instruction: frame 0, 10 (1 s later), 12 (changed), 22 (1 s after the change)
    instr = [(t, m.data) for _, t, m in iter_messages(bag, [TOPIC_INSTRUCTION])]
    assert [round((t - DEFAULT_START_NS) / 1e8) for t, _ in instr] == [0, 10, 12, 22]
    assert [d for _, d in instr] == ["Follow the road."] * 2 + ["Turn left at the next intersection."] * 2

    # images: the JPEG bytes of the dataset go in unchanged, stamped with the frame time
    front = [(t, m) for _, t, m in iter_messages(bag, [camera_topic("front")])]
    for i, (t, m) in enumerate(front):
        assert t == stamp_ns(m.header) == DEFAULT_START_NS + int(round(0.1 * i * 1e9))
        assert m.header.frame_id == "camera_front" and m.format == JPEG_FORMAT
        assert bytes(m.data) == (tmp_path / "ds" / "ep" / "front" / f"{i:06d}.jpg").read_bytes()
    # the node's own decoder reads them (format string included)
    m0 = front[0][1]
    np.testing.assert_array_equal(decode_compressed(m0.format, m0.data), decode_compressed("jpeg", bytes(m0.data)))
    rear5 = next(m for k, (_, _, m) in enumerate(iter_messages(bag, [camera_topic("rear")])) if k == 5)
    assert np.abs(decode_compressed("jpeg", bytes(rear5.data)).astype(int) - img(5 * 4 + 3).astype(int)).mean() < 3

    # ground truth by stamp
    gt = read_ground_truth(bag)
    assert sorted(gt) == [DEFAULT_START_NS + int(round(0.1 * i * 1e9)) for i in range(N)]
    for i, (stamp, wps) in enumerate(sorted(gt.items())):
        np.testing.assert_allclose(wps, np.asarray(state(i).waypoints), atol=1e-9)
    paths = [m for _, _, m in iter_messages(bag, [TOPIC_GT_PATH])]
    p = paths[3]
    assert p.header.frame_id == "base_link" and len(p.poses) == 5
    assert stamp_ns(p.poses[0].header) - stamp_ns(p.header) == 500_000_000
    assert stamp_ns(p.poses[4].header) - stamp_ns(p.header) == 2_500_000_000
    q = p.poses[2].pose.orientation  # heading of segment 1->2: atan2(0.8-0.2, 3)
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(math.atan2(0.6, 3.0), abs=1e-9)

    # odometry: relative to the first pose, speed in twist, yaw rate
    odom = [m for _, _, m in iter_messages(bag, [TOPIC_ODOM])]
    assert odom[0].header.frame_id == "odom" and odom[0].child_frame_id == "base_link"
    assert odom[0].pose.pose.position.x == pytest.approx(0.0) and odom[0].pose.pose.position.y == pytest.approx(0.0)
    s0, s10 = state(0), state(10)
    dx, dy = s10.x - s0.x, s10.y - s0.y
    c, s = math.cos(s0.yaw), math.sin(s0.yaw)
    assert odom[10].pose.pose.position.x == pytest.approx(c * dx + s * dy, abs=1e-3)
    assert odom[10].pose.pose.position.y == pytest.approx(-s * dx + c * dy, abs=1e-3)
    q = odom[10].pose.pose.orientation
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(0.2, abs=1e-5)
    assert odom[10].twist.twist.linear.x == pytest.approx(7.0)
    assert odom[10].twist.twist.angular.z == pytest.approx(0.2, abs=1e-3)  # 0.02 rad per 0.1 s

    reasoning = read_ground_truth_reasoning(bag)
    assert reasoning[DEFAULT_START_NS] == ep.record(0)["teacher"]

    with pytest.raises(FileExistsError):
        export_bag(ep, bag)
    export_bag(ep, bag, overwrite=True, start_time_ns=5 * 10**9)
    assert min(read_ground_truth(bag)) == 5 * 10**9


def test_export_from_scene_states_with_teacher(tmp_path):
    items = [(state(i), {cam: img(i + k) for k, cam in enumerate(CAMS[:2])}) for i in range(6)]
    bag = tmp_path / "b2"
    s = export_bag(items, bag, teacher=ScriptedTeacher(1), reasoning=True)
    topics = bag_topics(bag)
    assert set(topics) == {camera_topic("front"), camera_topic("left"), TOPIC_INSTRUCTION, TOPIC_ODOM,
                           TOPIC_GT_PATH, TOPIC_GT_REASONING}
    assert s.cameras == ["front", "left"] and topics[camera_topic("left")][1] == 6
    texts = list(read_ground_truth_reasoning(bag).values())
    assert len(texts) == 6 and all(t.startswith("Scene:") for t in texts)
    m = next(m for _, _, m in iter_messages(bag, [camera_topic("left")]))
    assert decode_compressed("jpeg", bytes(m.data)).shape == (40, 64, 3)

    # time must increase
    with pytest.raises(ValueError, match="does not increase"):
        export_bag([items[1], items[0]], tmp_path / "b3")
    assert not (tmp_path / "b3").exists()


def test_rclpy_deserializes_the_bag(tmp_path):
    os.environ.setdefault("HOME", str(tmp_path))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp_path / "roslog"))
    serialization = pytest.importorskip("rclpy.serialization")
    from nav_msgs.msg import Odometry, Path as PathMsg
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import String

    ep = make_episode(tmp_path / "ds")
    bag = tmp_path / "bag"
    export_bag(ep, bag)
    types = {"sensor_msgs/msg/CompressedImage": CompressedImage, "nav_msgs/msg/Odometry": Odometry,
             "nav_msgs/msg/Path": PathMsg, "std_msgs/msg/String": String}
    seen = set()
    with Reader(bag) as reader:
        for conn, t, raw in reader.messages():
            if conn.topic in seen:
                continue
            seen.add(conn.topic)
            msg = serialization.deserialize_message(bytes(raw), types[conn.msgtype])
            if conn.msgtype == "sensor_msgs/msg/CompressedImage":
                assert msg.format == JPEG_FORMAT and msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == t
                cam = conn.topic.split("/")[2]
                assert bytes(msg.data) == (tmp_path / "ds" / "ep" / cam / "000000.jpg").read_bytes()
            elif conn.msgtype == "nav_msgs/msg/Path":
                assert msg.header.frame_id == "base_link" and len(msg.poses) == 5
                assert msg.poses[1].pose.position.x == pytest.approx(6.0)
                assert msg.poses[4].pose.position.y == pytest.approx(3.2)
            elif conn.msgtype == "nav_msgs/msg/Odometry":
                assert msg.child_frame_id == "base_link" and msg.twist.twist.linear.x == pytest.approx(6.0)
            elif conn.topic == TOPIC_INSTRUCTION:
                assert msg.data == "Follow the road."
            elif conn.topic == TOPIC_GT_REASONING:
                assert msg.data.startswith("Scene:")
    assert len(seen) == len(CAMS) + 4

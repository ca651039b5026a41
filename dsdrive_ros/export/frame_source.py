"""Real camera frames for calibration and evaluation: from a rosbag2 or a dataset folder.

Both yield `Sample`s with every camera of the model at one stamp, the instruction in force and the
ego speed: exactly what the planner sees at run time.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..frames.image_codec import compressed_from_msg, image_from_msg


@dataclass
class Sample:
    stamp_ns: int
    images: dict[str, np.ndarray]  # camera -> RGB uint8
    instruction: str
    speed: float


def _camera_of(topic: str, cameras: list[str]) -> str | None:
    parts = topic.strip("/").split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "camera" and parts[1] in cameras else None


def iter_bag(path: Path, cameras: list[str]) -> Iterator[Sample]:
    from rosbags.highlevel import AnyReader

    pending: dict[int, dict[str, np.ndarray]] = {}
    instruction, speed = "", 0.0
    with AnyReader([path]) as reader:
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic.endswith("instruction"):
                instruction = msg.data
            elif conn.topic.endswith("odom"):
                speed = float(np.hypot(msg.twist.twist.linear.x, msg.twist.twist.linear.y))
            elif (cam := _camera_of(conn.topic, cameras)) is not None:
                rgb = compressed_from_msg(msg) if conn.topic.endswith("compressed") else image_from_msg(msg)
                stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                frames = pending.setdefault(stamp, {})
                frames[cam] = rgb
                if len(frames) == len(cameras):
                    del pending[stamp]
                    yield Sample(stamp, frames, instruction, speed)


def iter_dataset(root: Path, cameras: list[str]) -> Iterator[Sample]:
    """The simulator's dataset layout (docs/ARCHITECTURE.md)."""
    from ..data.dataset import DatasetReader

    for frame in DatasetReader(root, cameras):
        rec = frame.record
        yield Sample(int(rec["t"] * 1e9), frame.images, rec["instruction"], float(rec["speed"]))


def iter_samples(source: str | Path, cameras: list[str]) -> Iterator[Sample]:
    p = Path(source)
    if (p / "index.jsonl").is_file():
        return iter_dataset(p, cameras)
    if p.suffix in (".mcap", ".db3") or (p / "metadata.yaml").is_file():
        return iter_bag(p, cameras)
    raise FileNotFoundError(f"{p} is neither a rosbag2 (folder with metadata.yaml, .mcap, .db3) nor a dataset "
                            "(folder with index.jsonl)")

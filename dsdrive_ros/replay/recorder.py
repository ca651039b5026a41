"""dsdrive-replay's output side: every message the node publishes, as received (CDR bytes), into
``OUT/outputs`` (rosbag2 mcap), with the Path stamps and receive times the replay waits on."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from dsdrive_ros.replay.bagio import T_DIAG, T_MARKERS, T_PATH, T_PLAN, T_REASONING, T_STRING, stamp_ns, typestore

__all__ = ["OUTPUT_TOPICS", "OutputRecorder"]

# node output topic -> message type (rosbags names)
OUTPUT_TOPICS = {
    "/dsdrive/path": T_PATH,
    "/dsdrive/plan": T_PLAN,
    "/dsdrive/reasoning": T_STRING,
    "/dsdrive/reasoning_stamped": T_REASONING,
    "/dsdrive/markers": T_MARKERS,
    "/diagnostics": T_DIAG,
}



@dataclass
class OutputRecorder:
    """Writes every output message, as received (CDR bytes), into a rosbag2 mcap bag."""

    path: Path
    writer: Any = None
    conns: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cond: threading.Condition = field(init=False)
    path_stamps: list[int] = field(default_factory=list)
    path_recv_ns: dict[int, int] = field(default_factory=dict)
    last_recv_mono: float = 0.0
    clock: Callable[[], Optional[int]] = time.time_ns  # the outputs bag's timeline

    def __post_init__(self) -> None:
        self.cond = threading.Condition(self.lock)

    def open(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        ts = typestore()
        for topic, msgtype in OUTPUT_TOPICS.items():
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=ts)
            self.counts[topic] = 0

    def callback(self, topic: str):
        from nav_msgs.msg import Path as PathMsg
        from rclpy.serialization import deserialize_message

        def on_msg(data: bytes) -> None:
            now = time.time_ns()
            with self.lock:
                if self.writer is None:
                    return
                self.writer.write(self.conns[topic], self.clock() or now, bytes(data))
                self.counts[topic] += 1
                self.last_recv_mono = time.monotonic()
                if topic == "/dsdrive/path":
                    st = stamp_ns(deserialize_message(bytes(data), PathMsg))
                    self.path_stamps.append(st)
                    self.path_recv_ns.setdefault(st, now)
                self.cond.notify_all()

        return on_msg

    def close(self) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None

"""Camera drivers for the benchmarks: one process per camera, as on a vehicle.

Each driver is its own process with its own DDS participant and publisher (SensorData QoS), like one
camera driver per camera (or one multi-camera driver with a thread per port). All cameras are
triggered together: a set's images carry one stamp, the trigger time, and each driver publishes its
image at that time. So the cameras of a set are sent in parallel, not one after another from one
thread, and a set's end-to-end time starts at its trigger, including the drivers' own publish cost.

A driver's only work at a trigger is the DDS write of its image, as for a C++ driver whose buffer
the camera filled by DMA: the stream's images (pre-serialized CDR bytes with each trigger's stamp
patched in) are prepared before the first trigger. rclpy's Python message path would add ~40 ms per
2.8 MB image that a C++ driver does not pay.

    drivers = CameraDrivers({"front": "/camera/front/image_raw", ...}, "raw", wire_sets)
    drivers.wait_discovered(timeout=30)
    stamps = drivers.stream(rate_hz=10.0, n=100)
    drivers.close()
"""
from __future__ import annotations

import multiprocessing as mp
import struct
import time
from multiprocessing.connection import Connection
from typing import NamedTuple, Optional

STAMP = struct.Struct("<iI")  # CDR: 4-byte encapsulation header, then header.stamp sec, nanosec
PREPARE_S = 2.0               # the first trigger lies this long after the stream command, plus
PREPARE_S_PER_GB = 4.0        # this per GB of images the busiest driver prepares


class StreamCommand(NamedTuple):
    t0_ns: int      # wall-clock time of the first trigger
    period_ns: int
    n: int


def stamped(wire: bytes, stamp_ns: int) -> bytes:
    """The serialized image with header.stamp set: one copy, as a driver filling its buffer."""
    return b"".join((wire[:4], STAMP.pack(*divmod(stamp_ns, 1_000_000_000)), memoryview(wire)[12:]))


def _driver(name: str, topics: dict[str, str], transport: str, wire_sets: list[dict[str, bytes]],
            conn: Connection) -> None:
    """A driver process: on each commanded trigger, publishes its cameras' images one after another."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    rclpy.init()
    node = rclpy.create_node(name)
    msg_type = CompressedImage if transport == "compressed" else Image
    pubs = {c: node.create_publisher(msg_type, t, qos_profile_sensor_data) for c, t in topics.items()}
    try:
        while True:
            cmd = conn.recv()
            if cmd is None:
                return
            if cmd == "subscribers":
                conn.send({c: p.get_subscription_count() for c, p in pubs.items()})
                continue
            t0, period, n = cmd
            images = [{c: stamped(wire_sets[i % len(wire_sets)][c], t0 + i * period) for c in pubs}
                      for i in range(n)]
            conn.send("ready")
            if conn.recv() != "go":
                continue
            for i, image_set in enumerate(images):
                delay = (t0 + i * period - time.time_ns()) / 1e9
                if delay > 0:
                    time.sleep(delay)
                for c, pub in pubs.items():
                    pub.publish(image_set[c])
            del images
            conn.send(n)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


class CameraDrivers:
    """Camera driver processes: ``processes`` of them, the cameras dealt out in turn (1: one
    multi-camera driver; one per camera: separate drivers). ROS_DOMAIN_ID and the DDS profile come
    from this process's environment (set them before creating the drivers)."""

    def __init__(self, topics: dict[str, str], transport: str, wire_sets: list[dict[str, bytes]],
                 processes: int = 1) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that holds DDS threads
        cameras = list(topics)
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        self._set_bytes: list[int] = []  # per driver: the largest image set it publishes
        for k in range(max(1, min(processes, len(cameras)))):
            mine = {c: topics[c] for c in cameras[k::processes]}
            parent, child = ctx.Pipe()
            name = f"bench_camera_driver_{k}"
            proc = ctx.Process(target=_driver, name=name, daemon=True,
                               args=(name, mine, transport, [{c: w[c] for c in mine} for w in wire_sets], child))
            proc.start()
            child.close()
            self._conns.append(parent)
            self._set_bytes.append(max(sum(len(w[c]) for c in mine) for w in wire_sets))
            self._procs.append(proc)

    def subscriber_counts(self) -> dict[str, int]:
        for conn in self._conns:
            conn.send("subscribers")
        return {c: n for conn in self._conns for c, n in conn.recv().items()}

    def wait_discovered(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(n > 0 for n in self.subscriber_counts().values()):
                return True
            time.sleep(0.2)
        return False

    def stream(self, rate_hz: float, n: int) -> list[int]:
        """n camera sets at rate_hz, all cameras on the same triggers; returns the sets' stamps."""
        if rate_hz <= 0:
            raise ValueError("camera drivers run at a rate; back-to-back bursts are node_bench's")
        prepare_s = PREPARE_S + PREPARE_S_PER_GB * n * max(self._set_bytes) / 1e9
        cmd = StreamCommand(time.time_ns() + round(prepare_s * 1e9), round(1e9 / rate_hz), n)
        for conn in self._conns:
            conn.send(tuple(cmd))
        for k, conn in enumerate(self._conns):
            if not conn.poll(max(0.0, (cmd.t0_ns - time.time_ns()) / 1e9)):
                raise TimeoutError(f"camera driver {k} had its {n} image sets not ready for the first "
                                   f"trigger ({prepare_s:.1f} s)")
            conn.recv()
        for conn in self._conns:
            conn.send("go")
        for k, conn in enumerate(self._conns):
            if not conn.poll(n / rate_hz + 30.0):
                raise TimeoutError(f"camera driver {k} did not finish its {n} image sets")
            conn.recv()
        return [cmd.t0_ns + i * cmd.period_ns for i in range(n)]

    def close(self, timeout: Optional[float] = 5.0) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()

#!/usr/bin/env python3
"""Camera images between two processes over Fast DDS, per stage, under each transport setting.

    . scripts/ros_env.sh
    python bench/dds_probe.py [--size 1280x720] [--rate 10] [--seconds 10] [--configs large_data,profile]

For each setting a publisher process and a subscriber process (fresh ones: Fast DDS reads its
transport settings once per process) on a private ROS domain; four bgr8 cameras, SensorData QoS
(best effort, keep last 1: what camera drivers and dsdrive_node use). Measured per message:
  publish   one copy of the already-serialized CDR bytes with the stamp patched in, and rclpy's
            ``Publisher.publish`` of them (what a C++ driver or dsdrive-replay does), plus, once per camera, what
            ``serialize_message`` and ``publish(Image)`` cost (the Python message path);
  transport publish called (the stamp) -> the subscriber's callback has the bytes (raw
            subscription): includes the publish call and any wait behind the subscriber's own work;
  deserialize ``deserialize_message`` of those bytes into sensor_msgs/Image (the node's take);
  convert   camera image -> model input (224x128 RGB): before (``image_from_msg``: bgr8 -> RGB
            cvtColor at camera size, then a direct INTER_AREA resize) vs now (``FrameReducer``: a
            view, 2x2 mean, INTER_AREA, channels swapped on the small image);
  delivered per camera, of those sent.
Settings: ``large_data`` (FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA, what scripts/ros_env.sh exported
before), ``default`` (Fast DDS defaults: UDPv4 + SHM, 512 KiB segment), ``profile``
(config/fastdds_large_data.xml: SHM with a 64 MiB segment + UDPv4), ``profile_and_large_data`` (both
variables set), ``shm_only`` (the profile without UDPv4). A benchmark: nothing asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config" / "fastdds_large_data.xml"
RESULTS = Path(__file__).resolve().parent / "results"
CAMERAS = ("front", "left", "right", "rear")
MODEL_HW = (128, 224)  # the tiny model's input (config.json image block); only for the convert figure
STAMP = struct.Struct("<iI")  # CDR: 4-byte encapsulation header, then header.stamp sec, nanosec
CONFIGS = {
    "large_data": {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
    "default": {},
    "profile": {"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE)},
    # the profile wins over the builtin-transport variable (an old shell may still export it)
    "profile_and_large_data": {"FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE),
                               "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
    # the profile without UDPv4: samples go unfragmented (UDP caps every fragment at 64 KB), but
    # nothing reaches other hosts; written into the work folder at run time (shm_only_profile)
    "shm_only": {"FASTDDS_DEFAULT_PROFILES_FILE": "{workdir}/fastdds_shm_only.xml"},
}


def shm_only_profile(path: Path) -> Path:
    """The shipped profile with shared memory alone and 16 MiB messages (one fragment per image)."""
    xml = PROFILE.read_text()
    xml = xml.replace("<segment_size>67108864</segment_size>",
                      "<segment_size>67108864</segment_size>\n        <maxMessageSize>16777216</maxMessageSize>")
    xml = xml.replace("          <transport_id>dsdrive_udp</transport_id>\n", "")
    path.write_text(xml)
    return path


def _pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 3) if xs else None


def _dist(xs: list[float]) -> dict[str, Any]:
    return {"n": len(xs), "p50": _pct(xs, 50), "p99": _pct(xs, 99),
            "max": round(max(xs), 3) if xs else None}


def _init(name: str) -> tuple[Any, Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    node = rclpy.create_node(name)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    return node, ex


def _frame(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full((h, w), 40 * seed)], -1).astype(np.uint8)
    return np.clip(img.astype(np.int16) + rng.integers(-8, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def run_publisher(args: argparse.Namespace) -> None:
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from dsdrive_ros.frames import fill_image_msg

    node, ex = _init("dds_probe_pub")
    h, w = args.hw
    pubs = {c: node.create_publisher(Image, f"/probe/{c}/image_raw", qos_profile_sensor_data) for c in CAMERAS}
    serialized, python_path = {}, {"serialize_ms": [], "publish_msg_ms": []}
    for i, c in enumerate(CAMERAS):
        msg = fill_image_msg(Image(), _frame(h, w, i)[..., ::-1].copy(), "bgr8")  # content in bgr8
        msg.header.frame_id = f"camera_{c}"
        t0 = time.perf_counter()
        serialized[c] = serialize_message(msg)
        python_path["serialize_ms"].append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        pubs[c].publish(msg)  # before anyone listens: the cost of the Python message path only
        python_path["publish_msg_ms"].append((time.perf_counter() - t0) * 1e3)
    deadline = time.monotonic() + 30
    while not all(p.get_subscription_count() for p in pubs.values()) and time.monotonic() < deadline:
        ex.spin_once(timeout_sec=0.05)
    time.sleep(1.0)  # every endpoint of both participants matched
    sent: dict[str, list] = {c: [] for c in CAMERAS}  # (stamp_ns, publish_end_ns, publish_ms)
    period, n = 1.0 / args.rate, int(args.seconds * args.rate)
    t0 = time.monotonic()
    for k in range(n):
        delay = t0 + k * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for c in CAMERAS:
            stamp = time.time_ns()
            t_pub = time.perf_counter()
            data = serialized[c]  # one copy of the image per publish, as a driver filling its buffer
            pubs[c].publish(b"".join((data[:4], STAMP.pack(*divmod(stamp, 1_000_000_000)),
                                      memoryview(data)[12:])))
            sent[c].append((stamp, time.time_ns(), (time.perf_counter() - t_pub) * 1e3))
    Path(args.result).write_text(json.dumps({"sent": sent, "python_path": python_path,
                                             "bytes": len(serialized[CAMERAS[0]])}))
    node.destroy_node()


def run_subscriber(args: argparse.Namespace) -> None:
    import cv2
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from dsdrive_ros.frames import FrameReducer, image_from_msg

    node, ex = _init("dds_probe_sub")
    reducer = FrameReducer(*MODEL_HW)
    got: dict[str, list] = {c: [] for c in CAMERAS}  # (stamp_ns, recv_ns, deser_ms, full_ms, small_ms)
    small = np.empty((*MODEL_HW, 3), np.uint8)

    def make_cb(cam: str):
        def cb(data: bytes) -> None:
            recv = time.time_ns()
            sec, nsec = STAMP.unpack_from(data, 4)
            if args.lean:
                got[cam].append((sec * 1_000_000_000 + nsec, recv, 0.0, 0.0, 0.0))
                return
            t0 = time.perf_counter()
            msg = deserialize_message(data, Image)
            t1 = time.perf_counter()
            # before: RGB at camera size (cvtColor), then the Preprocessor's direct INTER_AREA
            cv2.resize(image_from_msg(msg, "rgb"), MODEL_HW[::-1], dst=small, interpolation=cv2.INTER_AREA)
            t2 = time.perf_counter()
            reducer.image_msg(msg)                         # now: view, 2x2 mean, INTER_AREA, swap
            t3 = time.perf_counter()
            got[cam].append((sec * 1_000_000_000 + nsec, recv, (t1 - t0) * 1e3, (t2 - t1) * 1e3,
                             (t3 - t2) * 1e3))
        return cb

    for c in CAMERAS:
        node.create_subscription(Image, f"/probe/{c}/image_raw", make_cb(c), qos_profile_sensor_data,
                                 raw=True)
    Path(args.result + ".ready").touch()
    stop = Path(args.result + ".stop")
    while not stop.exists():
        ex.spin_once(timeout_sec=0.05)
    Path(args.result).write_text(json.dumps({"got": got}))
    node.destroy_node()


def probe(config: str, args: argparse.Namespace, workdir: Path, domain: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE")}
    env.update({k: v.format(workdir=workdir) for k, v in CONFIGS[config].items()},
               ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    common = [sys.executable, __file__, "--size", args.size, "--rate", str(args.rate),
              "--seconds", str(args.seconds)] + (["--lean"] if args.lean else [])
    sub_out, pub_out = workdir / f"{config}_sub.json", workdir / f"{config}_pub.json"
    load = [round(x, 2) for x in os.getloadavg()]
    sub = subprocess.Popen(common + ["--role", "sub", "--result", str(sub_out)], env=env)
    while not Path(str(sub_out) + ".ready").exists():
        time.sleep(0.1)
    subprocess.run(common + ["--role", "pub", "--result", str(pub_out)], env=env, check=True, timeout=300)
    time.sleep(1.0)
    Path(str(sub_out) + ".stop").touch()
    sub.wait(60)
    pub, rec = json.loads(pub_out.read_text()), json.loads(sub_out.read_text())["got"]
    per_cam, transport, publish, deser, full, small = {}, [], [], [], [], []
    for c in CAMERAS:
        sent = {s: (end, ms) for s, end, ms in pub["sent"][c]}
        publish += [ms for _, ms in sent.values()]
        recv = [r for r in rec[c] if r[0] in sent]
        per_cam[c] = f"{len(recv)}/{len(sent)}"
        for stamp, t_recv, d_ms, f_ms, s_ms in recv:
            transport.append((t_recv - stamp) / 1e6)
            deser.append(d_ms)
            full.append(f_ms)
            small.append(s_ms)
    n_sent = sum(len(v) for v in pub["sent"].values())
    return {
        "env": CONFIGS[config], "load_avg_start": load, "message_bytes": pub["bytes"],
        "delivered": per_cam, "delivered_ratio": round(len(transport) / max(1, n_sent), 4),
        "publish_bytes_ms": _dist(publish), "transport_ms": _dist(transport),
        "deserialize_ms": _dist(deser), "convert_before_ms": _dist(full),
        "convert_now_ms": _dist(small),
        "python_message_path_ms": {k: [round(x, 2) for x in v] for k, v in pub["python_path"].items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of each camera")
    ap.add_argument("--rate", type=float, default=10.0, help="camera sets per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--lean", action="store_true",
                    help="the subscriber only records arrival (no deserialize/convert): transport alone")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--role", choices=["pub", "sub"], help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.lower().split("x"))
    args.hw = (h, w)
    if args.role == "pub":
        run_publisher(args)
        return 0
    if args.role == "sub":
        run_subscriber(args)
        return 0
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_count": os.cpu_count(),
                           "size": args.size, "rate_hz": args.rate, "seconds": args.seconds,
                           "cameras": len(CAMERAS), "lean_subscriber": args.lean, "configs": {}}
    workdir = Path(tempfile.mkdtemp(prefix="dds_probe_"))
    shm_only_profile(workdir / "fastdds_shm_only.xml")
    domain = 1 + (os.getpid() * 7) % 200
    for config in [c.strip() for c in args.configs.split(",") if c.strip()]:
        res["configs"][config] = r = probe(config, args, workdir, domain)
        print(f"{config:11s} delivered {r['delivered']} transport p50 {r['transport_ms']['p50']} ms "
              f"p99 {r['transport_ms']['p99']} ms; publish p50 {r['publish_bytes_ms']['p50']} ms; "
              f"deserialize p50 {r['deserialize_ms']['p50']} ms; convert before {r['convert_before_ms']['p50']}"
              f" vs now {r['convert_now_ms']['p50']} ms", flush=True)
    res["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = args.out or RESULTS / f"dds_probe_{args.size}_{int(args.rate)}hz.json"
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""dsdrive_node at camera resolution: node_rig.py's rig and node probe, four cameras over real DDS.

    . scripts/ros_env.sh
    python bench/camera_res.py --model-dir models/dsdrive-tiny [--seconds 10] [--repeats 3]

Phases, each run ``--repeats`` times with a fresh node process (bench/node_probe.py: the node plus
per-frame stage timing), figures pooled over the runs' frames and each run's p50/p99 kept:
  raw bgr8 1280x720 at 20 Hz, raw bgr8 1920x1080 at 10 Hz, JPEG (q85) 1920x1080 at 10 Hz, and raw
  rgb8 at the model's input size at 20 Hz (the case every earlier figure used: no regression there).
The cameras are driver processes (default: one per camera), triggered together, whose only work at a
trigger is the DDS write of an image prepared beforehand, with that trigger's stamp
(bench/camera_drivers.py). All processes use the Fast DDS profile config/fastdds_large_data.xml.

Per phase: camera sets sent, sets planned (a Path for that stamp), e2e p50/p99 (Path received - camera
stamp) and the per-stage split, mean ms per set:
  transport    camera stamp -> first camera callback, less ``deserialize`` (publish, DDS, executor);
  deserialize  rclpy's take of one message, measured here on the same bytes (deserialize_message);
  convert      the 4 cameras' decode in the node less the resize (raw: a view; JPEG: the decode);
  resize       FrameReducer.shrink for the 4 cameras (to the model's input size, channel swap);
  sync_wait    first camera callback -> set complete, less convert + resize (the other cameras' arrival);
  queue_wait, preprocess (normalise), inference, parse, fill_publish, transport_out.
Plus, in this process: decode cost per camera before (full-size colour conversion + INTER_AREA) and
now (FrameReducer), and JPEG full decode vs IMREAD_REDUCED_COLOR_4. Then ``malloc_ab``: raw 1920x1080
runs alternated between glibc's malloc defaults and the node's settings (dsdrive_ros/node/memory.py). Load average recorded per phase
(the machine is shared: figures move with it). Writes bench/results/camera_res.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import node_rig as nb  # noqa: E402  (bench/ helper module, also puts the repo on sys.path)
from camera_drivers import CameraDrivers  # noqa: E402
from node_bench import run_node  # noqa: E402
from node_stats import pooled  # noqa: E402

from dsdrive_ros.node.memory import DEFAULTS_ENV  # noqa: E402
from node_report import _f  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
JPEG_QUALITY = 85


class Phase:
    def __init__(self, label: str, transport: str, encoding: str, hw: tuple[int, int], rate_hz: float) -> None:
        self.label, self.transport, self.encoding, self.hw, self.rate_hz = label, transport, encoding, hw, rate_hz


def phases(model_hw: tuple[int, int]) -> list[Phase]:
    return [
        Phase("raw_bgr8_1280x720_20hz", "raw", "bgr8", (720, 1280), 20.0),
        Phase("raw_bgr8_1920x1080_10hz", "raw", "bgr8", (1080, 1920), 10.0),
        Phase("jpeg_1920x1080_10hz", "compressed", "jpeg", (1080, 1920), 10.0),
        Phase(f"raw_rgb8_{model_hw[1]}x{model_hw[0]}_20hz_model_size", "raw", "rgb8", model_hw, 20.0),
    ]


class CameraRig(nb.Rig):
    """node_bench's rig (outputs, instruction, parameters) with the cameras published by driver
    processes, one per camera, with the images of the current phase (``use``)."""

    def __init__(self, cameras: list[str], driver_processes: int) -> None:
        self.wire: list[dict[str, bytes]] = []
        self.drivers: CameraDrivers | None = None
        self.driver_processes = driver_processes
        super().__init__(cameras, [])

    def _build_messages(self, sets: list[dict[str, np.ndarray]]) -> None:
        self.msgs = {"raw": [], "compressed": []}

    def use(self, phase: Phase, sets: list[dict[str, np.ndarray]]) -> None:
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import CompressedImage, Image

        from dsdrive_ros.frames import fill_compressed_msg, fill_image_msg

        self.wire = []
        for frames in sets:
            out = {}
            for c in self.cameras:
                if phase.transport == "compressed":
                    msg = fill_compressed_msg(CompressedImage(), frames[c], "jpeg", JPEG_QUALITY)
                else:
                    msg = fill_image_msg(Image(), frames[c], phase.encoding)
                msg.header.frame_id = f"camera_{c}"
                out[c] = serialize_message(msg)
            self.wire.append(out)
        self.close_drivers()
        topics = {c: self.pubs[phase.transport][c].topic_name for c in self.cameras}
        self.drivers = CameraDrivers(topics, phase.transport, self.wire, self.driver_processes)

    def discovered(self, transport: str) -> bool:
        return (self.drivers is not None and all(n > 0 for n in self.drivers.subscriber_counts().values())
                and self.path_sub.get_publisher_count() > 0 and self.plan_sub.get_publisher_count() > 0
                and self.stage_sub.get_publisher_count() > 0)

    def stream(self, transport: str, rate_hz: float, n: int) -> list[int]:
        assert self.drivers is not None, "use() a phase first"
        return self.drivers.stream(rate_hz, n)

    def close_drivers(self) -> None:
        if self.drivers is not None:
            self.drivers.close()
            self.drivers = None

    def close(self) -> None:
        self.close_drivers()
        super().close()


def _median_ms(fn: Callable[[], Any], n: int = 15) -> float:
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return round(float(np.median(ts)), 3)


def decode_costs(phase: Phase, frames: dict[str, np.ndarray], wire: dict[str, bytes],
                 model_hw: tuple[int, int]) -> dict[str, Any]:
    """Per camera, in this process (ms, median): take, decode before/now, JPEG reduced decodes."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from dsdrive_ros.frames import FrameReducer, compressed_from_msg, image_from_msg

    h, w = model_hw
    cam = next(iter(frames))
    msg_type = CompressedImage if phase.transport == "compressed" else Image
    msg = deserialize_message(wire[cam], msg_type)
    reducer = FrameReducer(h, w)

    def before() -> None:  # what the node did: decode to RGB at camera size, Preprocessor resized
        img = compressed_from_msg(msg) if phase.transport == "compressed" else image_from_msg(msg)
        if img.shape[:2] != (h, w):
            cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)

    now = reducer.compressed_msg if phase.transport == "compressed" else reducer.image_msg
    out: dict[str, Any] = {
        "message_bytes": len(wire[cam]),
        "deserialize_ms": _median_ms(lambda: deserialize_message(wire[cam], msg_type)),
        "decode_before_ms": _median_ms(before),
        "decode_now_ms": _median_ms(lambda: now(msg)),
    }
    if phase.transport == "compressed":
        data = np.frombuffer(msg.data, np.uint8)
        out["jpeg_reduction_used"] = reducer.jpeg_reduction(*phase.hw)
        for name, flag in (("full", cv2.IMREAD_COLOR), ("reduced_2", cv2.IMREAD_REDUCED_COLOR_2),
                           ("reduced_4", cv2.IMREAD_REDUCED_COLOR_4), ("reduced_8", cv2.IMREAD_REDUCED_COLOR_8)):
            out[f"imdecode_{name}_ms"] = _median_ms(lambda: cv2.imdecode(data, flag))
        out["imdecode_full_x4_ms"] = round(4 * out["imdecode_full_ms"], 2)
        out["imdecode_reduced_4_x4_ms"] = round(4 * out["imdecode_reduced_4_ms"], 2)
    return out


def stage_split(p: dict, deserialize_ms: float, cameras: int) -> dict[str, Any]:
    """The issue's per-stage split (mean ms per set) from node_bench's stage means."""
    st = {k: v["mean"] for k, v in p.get("stages_ms", {}).items()}
    if not st:
        return {}
    decode, resize = st.get("decode_sum") or 0.0, st.get("resize_sum") or 0.0
    deser = deserialize_ms * cameras
    return {
        "transport": None if st.get("transport_in") is None else st["transport_in"] - deserialize_ms,
        "deserialize": deser, "convert": decode - resize, "resize": resize,
        "sync_wait": None if st.get("sync") is None else max(0.0, st["sync"] - decode - deser + deserialize_ms),
        **{k: st.get(k) for k in ("queue_wait", "preprocess", "inference", "parse", "fill_publish",
                                  "transport_out", "e2e")},
    }


def targets(res: dict) -> list[dict]:
    out = []
    ph = res["phases"]

    def add(label: str, what: str, value: Any, ok: bool | None) -> None:
        out.append({"target": f"[{label}] {what}", "value": value, "met": ok})

    for label, p99_max, p50_max in (("raw_bgr8_1280x720_20hz", 60.0, 30.0),
                                    ("raw_bgr8_1920x1080_10hz", 100.0, None),
                                    ("jpeg_1920x1080_10hz", None, None)):
        p = ph.get(label)
        if p is None:  # not among --phases
            continue
        if "e2e_ms" not in p:
            add(label, "ran", p.get("error"), False)
            continue
        planned = p["received"] / max(1, p["sent"])
        add(label, ">= 99 % of sets planned", f"{p['received']}/{p['sent']} ({planned:.1%})", planned >= 0.99)
        e = p["e2e_ms"]
        if p50_max is not None:
            add(label, f"e2e p50 <= {p50_max:.0f} ms", _f(e["p50"]), e["p50"] is not None and e["p50"] <= p50_max)
        if p99_max is not None:
            add(label, f"e2e p99 <= {p99_max:.0f} ms", _f(e["p99"]), e["p99"] is not None and e["p99"] <= p99_max)
    j = ph.get("jpeg_1920x1080_10hz", {}).get("decode_costs")
    if j:
        add("jpeg_1920x1080_10hz", "4 full-HD JPEG decodes: full vs IMREAD_REDUCED_COLOR_4 (ms)",
            f"{j['imdecode_full_x4_ms']} vs {j['imdecode_reduced_4_x4_ms']}; node decode per camera "
            f"before {j['decode_before_ms']} / now {j['decode_now_ms']} (reduction 1/{j['jpeg_reduction_used']})",
            None)
    return out


def malloc_ab(args: argparse.Namespace, rig: CameraRig, env: dict[str, str], workdir: Path,
              n: int) -> dict[str, Any]:
    """raw 1920x1080 runs alternated: glibc's malloc defaults (DSDRIVE_MALLOC_DEFAULTS=1) and the
    node's settings; each run's e2e and the per-stage split."""
    ph = next(p for p in phases((0, 0)) if p.label == "raw_bgr8_1920x1080_10hz")
    sets = nb.make_images(4, rig.cameras, *ph.hw)
    out: dict[str, Any] = {"phase": ph.label, "runs": []}
    for k in range(2 * n):
        arm = "glibc_defaults" if k % 2 == 0 else "node_settings"
        rig.use(ph, sets)
        run_env = {**env, DEFAULTS_ENV: "1"} if arm == "glibc_defaults" else env
        run = run_node(argparse.Namespace(model_dir=args.model_dir, warmup=args.warmup), rig, run_env, workdir,
                       f"{ph.label}_{arm}", "onnxruntime", ph.transport, [(ph.label, ph.rate_hz, int(args.seconds * ph.rate_hz))])
        p = run.get("phases", {}).get(ph.label)
        if p is None:
            out["runs"].append({"malloc": arm, "error": run.get("error", "no result")})
            continue
        split = stage_split(p, 0.0, len(rig.cameras))
        out["runs"].append({"malloc": arm, "received": p["received"], "sent": p["sent"],
                            "e2e_ms": {q: p["e2e_ms"][q] for q in ("p50", "p99", "max")},
                            "transport_ms": split.get("transport"), "sync_wait_ms": split.get("sync_wait"),
                            "load_avg_start": p["load_avg_start"]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=10.0, help="per phase (default 10)")
    ap.add_argument("--warmup", type=int, default=20, help="camera sets at 10 Hz before measuring")
    ap.add_argument("--phases", default="", help="comma list of phase labels (default: all)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per phase, each with a fresh node; figures pooled over their frames")
    ap.add_argument("--malloc-ab", type=int, default=2, metavar="N",
                    help="then N runs each of raw 1920x1080 with glibc's malloc defaults and with the "
                         "node's settings (node/memory.py), alternated (0: skip)")
    ap.add_argument("--driver-processes", type=int, default=4,
                    help="camera driver processes, cameras dealt out in turn (default: one per camera)")
    ap.add_argument("--out", type=Path, default=RESULTS / "camera_res.json")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="extra node parameter (repeatable), e.g. -p qos.depth:=2")
    args = ap.parse_args()
    args.model_dir = args.model_dir.resolve()
    from dsdrive_ros.node.process import node_env, private_domain, use_dds_profile
    from dsdrive_ros.runners import ModelSpec

    spec = ModelSpec.load(args.model_dir)
    cameras = list(spec.cameras)
    model_hw = (int(spec.image["height"]), int(spec.image["width"]))
    domain = private_domain()
    profile = use_dds_profile()  # this process (the camera driver) and the node alike
    env = node_env()
    chosen = [p for p in phases(model_hw) if not args.phases or p.label in args.phases.split(",")]
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "opencv": cv2.__version__},
        "note": "machine shared with other jobs: see load_avg per phase; figures are pessimistic",
        "model_dir": str(args.model_dir), "input": f"{len(cameras)}x3x{model_hw[0]}x{model_hw[1]}",
        "dds_profile": profile, "camera_driver_processes": args.driver_processes, "ros_domain_id": domain, "seconds_per_phase": args.seconds, "repeats": args.repeats,
        "load_avg_start": nb._load(), "phases": {},
    }
    res["node_params"] = args.param
    if args.param:  # node_bench starts every node with its own few parameters: add these
        start = nb.start_node
        extra = dict(p.split(":=", 1) for p in args.param)
        nb.start_node = lambda model_dir, workdir, params, env: start(model_dir, workdir, {**params, **extra}, env)
    workdir = Path(tempfile.mkdtemp(prefix="camera_res_"))
    rig = CameraRig(cameras, args.driver_processes)
    try:
        for ph in chosen:
            sets = nb.make_images(4, cameras, *ph.hw)
            rig.use(ph, sets)
            costs = decode_costs(ph, sets[0], rig.wire[0], model_hw)
            n = int(args.seconds * ph.rate_hz)
            runs = []
            for k in range(args.repeats):  # fresh drivers and node each time: the machine's noise shows between runs
                if k:
                    rig.use(ph, sets)
                runs.append(run_node(argparse.Namespace(model_dir=args.model_dir, warmup=args.warmup), rig, env,
                                     workdir, ph.label, "onnxruntime", ph.transport, [(ph.label, ph.rate_hz, n)]))
            parts = [r["phases"][ph.label] for r in runs if ph.label in r.get("phases", {})]
            if len(parts) < len(runs):
                p = {"error": next(r.get("error", "no result") for r in runs if ph.label not in r.get("phases", {}))}
            else:
                p = pooled(parts, ph.label) if len(parts) > 1 else parts[0]
                p["runs"] = [{"e2e_ms": {q: part["e2e_ms"][q] for q in ("p50", "p99", "max")},
                              "received": part["received"], "sent": part["sent"],
                              "load_avg_start": part["load_avg_start"]} for part in parts]
                p["diagnostics"] = parts[-1].get("diagnostics")
            p.pop("_rows", None)
            p.update({"camera_hw": list(ph.hw), "encoding": ph.encoding, "decode_costs": costs,
                      "sets_planned_ratio": p.get("received", 0) / max(1, p.get("sent", 1)),
                      "stage_split_mean_ms": stage_split(p, costs["deserialize_ms"], len(cameras)),
                      "node_vmhwm_mb": max((r.get("node_vmhwm_mb") or 0.0) for r in runs),
                      "node_exit_codes": [r.get("exit_code") for r in runs]})
            res["phases"][ph.label] = p
        if args.malloc_ab:
            res["malloc_ab"] = malloc_ab(args, rig, env, workdir, args.malloc_ab)
    finally:
        rig.close()
    res["load_avg_end"] = nb._load()
    res["targets"] = targets(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, default=str))
    for t in res["targets"]:
        print(f"  {'OK ' if t['met'] else 'MISS' if t['met'] is False else '   '} {t['target']}: {t['value']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

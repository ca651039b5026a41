"""OUT/report.md for a replay: counts, latency, drops, ADE/FDE, front-camera overlays. ROS-free.

Inputs: the replayed bag (camera frames, optional camera/<front>/camera_info and
/ground_truth/path) and OUT/outputs (what the node published, recorded by cli.py), plus
OUT/replay.json when present (what was sent, end-to-end latency).

Overlays project the predicted path (and the ground truth, if any) into the front camera
(``dsdrive_ros.outputs.overlay``, also behind the node's dsdrive/debug_image): the pinhole model of
the bag's CameraInfo when it has one, else FOV 100 deg.

    python -m dsdrive_ros.replay.report BAG OUT [--model-dir DIR] [--overlays N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from dsdrive_ros.outputs.overlay import (
    DEFAULT_CAM_X,
    DEFAULT_CAM_Z,
    DEFAULT_FOV_DEG,
    CameraModel,
    plan_lines,
    render_overlay,
)
from dsdrive_ros.replay.bagio import (
    T_CAMERA_INFO,
    T_COMPRESSED,
    find_inputs,
    open_reader,
    share_file,
    stamp_ns,
)

__all__ = ["write_report", "ade_fde", "read_outputs", "main"]

_LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


def ade_fde(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Average / final displacement error (m) over the common prefix of two (K, 2) paths."""
    k = min(len(pred), len(gt))
    if k == 0:
        return float("nan"), float("nan")
    d = np.linalg.norm(np.asarray(pred[:k], float) - np.asarray(gt[:k], float), axis=1)
    return float(d.mean()), float(d[-1])


def _path_xy(path: Any) -> np.ndarray:
    return np.array([[p.pose.position.x, p.pose.position.y] for p in path.poses],
                    dtype=np.float64).reshape(-1, 2)


def read_outputs(outputs: Path) -> dict[str, list[tuple[int, Any]]]:
    """{topic: [(receive time ns, message)]} of the recorded node outputs."""
    res: dict[str, list[tuple[int, Any]]] = {}
    if not outputs.exists():
        return res
    reader = open_reader(outputs)
    with reader:
        for conn, t, raw in reader.messages():
            res.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return res


def _decode(msg: Any, msgtype: str) -> np.ndarray:
    from dsdrive_ros.frames import compressed_from_msg, image_from_msg

    return compressed_from_msg(msg) if msgtype == T_COMPRESSED else image_from_msg(msg, copy=True)


def _pct(values: Sequence[float], q: float) -> Optional[float]:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else None


def _f(v: Optional[float], unit: str = "", nd: int = 1) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}{unit}"


def write_report(bag: str | Path, out: str | Path, *, model_dir: Optional[str | Path] = None,
                 n_overlays: int = 4, camera: Optional[str] = None, fov_deg: float = DEFAULT_FOV_DEG,
                 cam_x: float = DEFAULT_CAM_X, cam_z: float = DEFAULT_CAM_Z) -> Path:
    """Write OUT/report.md (+ OUT/overlays/*.png); returns the report's path."""
    out = Path(out)
    bag = Path(bag)
    outs = read_outputs(out / "outputs")
    summary: dict[str, Any] = {}
    if (out / "replay.json").is_file():
        summary = json.loads((out / "replay.json").read_text())
    cameras: list[str] = list(summary.get("cameras") or [])
    if not cameras and model_dir is not None and (Path(model_dir) / "config.json").is_file():
        cameras = list(json.loads((Path(model_dir) / "config.json").read_text())["cameras"])
    if not cameras:
        cameras = ["front", "left", "right", "rear"]
    front = camera or cameras[0]

    plans = outs.get("/dsdrive/plan", [])
    paths = outs.get("/dsdrive/path", [])
    reasonings = outs.get("/dsdrive/reasoning", [])
    diags = outs.get("/diagnostics", [])

    # ---- the bag: counts, ground truth, camera info; which front frames we need ----
    reader = open_reader(bag)
    with reader:
        topic_counts = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        try:
            inputs = find_inputs(reader, cameras, summary.get("transport", "auto"))
        except ValueError:
            inputs = None
        gt: dict[int, np.ndarray] = {}
        if inputs is not None and inputs.ground_truth is not None:
            for _, _, raw in reader.messages(connections=[inputs.ground_truth]):
                msg = reader.deserialize(raw, inputs.ground_truth.msgtype)
                gt[stamp_ns(msg)] = _path_xy(msg)
        info = None
        if inputs is not None and front in inputs.camera_info:
            for _, _, raw in reader.messages(connections=[inputs.camera_info[front]]):
                info = reader.deserialize(raw, T_CAMERA_INFO)
                break
        anchor_frames = (inputs.cameras[front].msgcount if inputs is not None and front in inputs.cameras
                         else 0)
        # overlays: plans spread evenly over the run
        plan_by_stamp = {stamp_ns(m): (t, m) for t, m in plans}
        chosen: list[int] = []
        if plan_by_stamp and n_overlays > 0:
            stamps = sorted(plan_by_stamp)
            idx = np.unique(np.linspace(0, len(stamps) - 1, min(n_overlays, len(stamps))).round().astype(int))
            chosen = [stamps[i] for i in idx]
        frames: dict[int, np.ndarray] = {}
        if chosen and inputs is not None and front in inputs.cameras:
            conn = inputs.cameras[front]
            want = set(chosen)
            for _, _, raw in reader.messages(connections=[conn]):
                msg = reader.deserialize(raw, conn.msgtype)
                st = stamp_ns(msg)
                if st in want:
                    try:
                        frames[st] = _decode(msg, conn.msgtype)
                    except Exception:  # noqa: BLE001 - an undecodable frame just has no overlay
                        pass
                    if len(frames) == len(want):
                        break

    # ---- metrics ----
    lat = [float(m.model_latency_ms) for _, m in plans]
    dropped = sum(int(m.frames_dropped) for _, m in plans)
    e2e = [float(v) for v in summary.get("end_to_end_ms", [])]
    ends = sum(1 for _, m in plans if m.end_of_instruction)
    errs = []
    for st, (_, m) in sorted(plan_by_stamp.items()):
        if st in gt:
            errs.append(ade_fde(_path_xy(m.path), gt[st]))
    ade = float(np.mean([e[0] for e in errs])) if errs else None
    fde = float(np.mean([e[1] for e in errs])) if errs else None
    nonfinite = sum(1 for _, p in paths if not np.all(np.isfinite(_path_xy(p))))
    levels: dict[str, int] = {}
    last_values: dict[str, str] = {}
    for _, arr in diags:
        for st in arr.status:
            if st.name == "dsdrive_node: planner":
                lv = int(st.level[0]) if isinstance(st.level, (bytes, bytearray)) else int(st.level)
                levels[_LEVELS.get(lv, str(lv))] = levels.get(_LEVELS.get(lv, str(lv)), 0) + 1
                last_values = {kv.key: kv.value for kv in st.values}
    backend = plans[-1][1].backend if plans else last_values.get("backend", "n/a")

    # ---- overlays ----
    ov_dir = out / "overlays"
    ov_dir.mkdir(parents=True, exist_ok=True)
    for old in ov_dir.glob("*.png"):
        old.unlink()
    overlay_files: list[tuple[str, int]] = []
    cam_source = "n/a"
    reasoning_times = [(t, m.data) for t, m in reasonings]
    for i, st in enumerate(chosen):
        rgb = frames.get(st)
        if rgb is None:
            continue
        h, w = rgb.shape[:2]
        cam = (CameraModel.from_camera_info(info, w, h, x=cam_x, z=cam_z) if info is not None
               else CameraModel.from_fov(w, h, fov_deg, x=cam_x, z=cam_z))
        cam_source = cam.source
        t_recv, m = plan_by_stamp[st]
        text = m.reasoning
        if not text:  # the newest reasoning published up to this plan
            prior = [r for t, r in reasoning_times if t <= t_recv]
            text = prior[-1] if prior else ""
        pred = _path_xy(m.path)
        g = gt.get(st)
        lines = plan_lines(st, m.instruction, m.end_probability, m.model_latency_ms, m.backend)
        if g is not None:
            a, f_ = ade_fde(pred, g)
            lines.append(f"ADE {a:.2f} m  FDE {f_:.2f} m")
        img = render_overlay(rgb, cam, pred, g, lines, text)
        name = f"{i:02d}_{st}.png"
        cv2.imwrite(str(ov_dir / name), img)
        overlay_files.append((name, st))

    # ---- markdown ----
    L: list[str] = []
    L.append("# dsdrive replay report\n")
    L.append(f"- bag: `{bag}`")
    if model_dir is not None or summary.get("model_dir"):
        L.append(f"- model: `{summary.get('model_dir', model_dir)}`")
    L.append(f"- backend: `{backend}`")
    L.append(f"- RViz: `rviz2 -d {share_file('config/dsdrive.rviz')}` shows the path, "
             "`dsdrive/markers` and the front camera (live: replay with `--domain-id $ROS_DOMAIN_ID`)")
    if summary:
        rate = summary.get("rate")
        L.append(f"- rate: {rate} ({'as fast as the node keeps up' if rate == 0 else 'x recorded timing'})"
                 f", transport: {summary.get('transport')}, wall time {summary.get('wall_s', 0):.1f} s"
                 f", node exit code {summary.get('node_exit_code')}")
    L.append("")
    L.append("## Counts\n")
    L.append("| what | count |\n|---|---|")
    for cam in cameras:
        if inputs is not None and cam in inputs.cameras:
            L.append(f"| input frames `{inputs.cameras[cam].topic}` | {inputs.cameras[cam].msgcount} |")
    if summary:
        L.append(f"| camera sets sent | {summary.get('camera_sets', 'n/a')} |")
        L.append(f"| sets without output (timeout, rate 0) | {summary.get('sets_without_output', 'n/a')} |")
    L.append(f"| paths received (`/dsdrive/path`) | {len(paths)} |")
    L.append(f"| plans received (`/dsdrive/plan`) | {len(plans)} |")
    L.append(f"| planned / anchor frames | {len(plan_by_stamp)} / {anchor_frames} "
             f"({100.0 * len(plan_by_stamp) / anchor_frames if anchor_frames else 0:.0f} %) |")
    L.append(f"| reasoning texts (`/dsdrive/reasoning`) | {len(reasonings)} |")
    L.append(f"| marker arrays (`/dsdrive/markers`) | {len(outs.get('/dsdrive/markers', []))} |")
    L.append(f"| non-finite paths | {nonfinite} |")
    L.append(f"| plans with end_of_instruction | {ends} |")
    L.append(f"| /diagnostics reports | {len(diags)} ({', '.join(f'{k} {v}' for k, v in sorted(levels.items())) or 'none'}) |")
    L.append("")
    L.append("## Latency and drops\n")
    L.append("| metric | p50 | p99 | max |\n|---|---|---|---|")
    L.append(f"| model latency (ms) | {_f(_pct(lat, 50))} | {_f(_pct(lat, 99))} | {_f(max(lat) if lat else None)} |")
    if e2e:
        L.append(f"| publish -> path received (ms) | {_f(_pct(e2e, 50))} | {_f(_pct(e2e, 99))} | {_f(max(e2e))} |")
    # DrivingPlan.frame_age_ms (publish time - camera stamp) is not shown: in a replay the camera
    # stamps are the recording's, so it measures the bag's age, not the node.
    L.append("")
    L.append(f"- frame sets dropped by keep-latest (sum of DrivingPlan.frames_dropped): {dropped}")
    keys = ("sets_dropped", "skew_rejects", "stale_rejects", "missing_rejects", "time_jumps",
            "decode_errors", "bad_odom", "bad_instruction", "invalid_outputs", "inference_errors")
    if last_values:
        L.append("- node counters (last /diagnostics): " + ", ".join(
            f"{k} {last_values[k]}" for k in keys if k in last_values))
        if last_values.get("latency_p50_ms"):
            L.append(f"- node latency window: p50 {last_values.get('latency_p50_ms')} ms, "
                     f"p99 {last_values.get('latency_p99_ms')} ms")
    L.append("")
    L.append("## Accuracy against /ground_truth/path\n")
    if errs:
        L.append(f"- matched plans: {len(errs)} (by header stamp)")
        L.append(f"- ADE: {ade:.3f} m, FDE: {fde:.3f} m (mean over plans; common prefix of the paths)")
    else:
        L.append("- the bag has no `/ground_truth/path` matching the planned stamps: no ADE/FDE")
    L.append("")
    L.append("## Front camera overlays\n")
    if overlay_files:
        L.append(f"Camera model: {cam_source}; mounted x={cam_x} m, z={cam_z} m. "
                 "Red: predicted path; green: ground truth.\n")
        for name, st in overlay_files:
            L.append(f"### t = {st / 1e9:.3f} s\n\n![{name}](overlays/{name})\n")
    else:
        L.append("- no overlay (no plans, or no matching front frames)")
    if reasonings:
        L.append("\n## Reasoning (last 3)\n")
        for _, m in reasonings[-3:]:
            L.append("> " + (m.data.replace("\n", " ")[:500] or "(empty)") + "\n")
    report = out / "report.md"
    report.write_text("\n".join(L) + "\n")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsdrive_ros.replay.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("bag", type=Path)
    ap.add_argument("out", type=Path, help="replay output folder (holds outputs/)")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--overlays", type=int, default=4)
    ap.add_argument("--camera", default=None, help="camera for overlays (default: the first)")
    ap.add_argument("--fov", type=float, default=DEFAULT_FOV_DEG)
    a = ap.parse_args(argv)
    print(write_report(a.bag, a.out, model_dir=a.model_dir, n_overlays=a.overlays, camera=a.camera,
                       fov_deg=a.fov))
    return 0


if __name__ == "__main__":
    sys.exit(main())

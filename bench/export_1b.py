#!/usr/bin/env python3
"""The `1b` export on this machine, measured: wall time, peak RSS, files; then ONNX Runtime (CPU) on it.

    python bench/export_1b.py --out /tmp/dsdrive-1b [--dtype fp32] [--tokens 16]

Runs `export/to_onnx.py --random --preset 1b` under `/usr/bin/time -v` (a separate process: its peak
RSS is the export's alone), lists the files it wrote (one .onnx.data per graph above 2 GB, no loose
weight files), then loads the model with ONNX Runtime on the CPU and times one planner step and
decoding per token. Writes bench/results/export_1b.json. The model files stay in --out (never commit
them). A benchmark: asserts nothing, but exits 1 if the export fails.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from dsdrive_ros.runners import ModelSpec, PlannerSession, load_tokenizer  # noqa: E402
from dsdrive_ros.runners.onnxruntime_runner import OnnxRuntimeRunner  # noqa: E402

from bench_io import emit  # noqa: E402


def time_v(cmd: list[str]) -> tuple[int, dict, str]:
    """(exit code, {wall_s, peak_rss_gib}, output) of cmd under /usr/bin/time -v."""
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    out = r.stdout + r.stderr
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", out)
    secs = 0.0
    for part in (wall.group(1) if wall else "0").split(":"):
        secs = secs * 60 + float(part)
    return r.returncode, {"wall_s": secs, "peak_rss_gib": int(rss.group(1)) / 2**20 if rss else None}, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="where the model goes (e.g. /tmp/dsdrive-1b)")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--preset", default="1b", help="tiny: a quick check of this script")
    ap.add_argument("--tokens", type=int, default=16, help="decode steps timed")
    ap.add_argument("--result", type=Path, default=ROOT / "bench" / "results" / "export_1b.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    cmd = [sys.executable, str(ROOT / "export" / "to_onnx.py"), "--random", "--preset", args.preset,
           "--dtype", args.dtype, "--out", str(args.out)]
    rc, export, log = time_v(cmd)
    res: dict = {"command": " ".join(["/usr/bin/time", "-v", *cmd[1:]]), "export": export, "exit_code": rc,
                 "loadavg_before": load_before, "loadavg_after_export": os.getloadavg(), "cpu_count": os.cpu_count()}
    if rc != 0:
        print(log[-4000:], file=sys.stderr)
        res["error"] = log[-2000:]
        args.result.write_text(json.dumps(res, indent=2) + "\n")
        return 1
    res["validation_line"] = next((ln for ln in log.splitlines() if ln.startswith("wrote ")), "")
    res["files_bytes"] = {f.name: f.stat().st_size for f in sorted(args.out.iterdir()) if f.is_file()}
    res["loose_weight_files"] = [f.name for f in args.out.iterdir()
                                 if f.is_file() and not f.name.endswith((".onnx", ".onnx.data", ".json",
                                                                          ".safetensors"))]

    spec = ModelSpec.load(args.out)
    t0 = time.monotonic()
    runner = OnnxRuntimeRunner(spec, warmup=False)
    load_s = time.monotonic() - t0
    session = PlannerSession(spec, runner, load_tokenizer(spec))
    images = np.random.default_rng(0).standard_normal(spec.fixed_shape("planner", "inputs", "images")).astype(np.float32)
    plan_s = []
    for _ in range(3):
        t0 = time.monotonic()
        result = session.step(images, "turn left at the next intersection", 5.0)
        plan_s.append(time.monotonic() - t0)
    t0 = time.monotonic()
    ids = runner.generate_ids(result["reasoner_kv"], spec.tokens["bos"], -1, args.tokens)
    decode_s = time.monotonic() - t0
    res["onnxruntime_cpu"] = {
        "runner": runner.name, "load_s": load_s, "plan_step_s": plan_s,
        "waypoints_finite": bool(np.isfinite(result["waypoints"]).all()),
        "decode_ms_per_token": decode_s / max(1, len(ids)) * 1e3, "tokens": len(ids),
        "process_max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    res["loadavg_end"] = os.getloadavg()
    emit(res, args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Planner latency (ONNX Runtime fp32 / int8 Q/DQ vs PyTorch eager) and reasoner per-token time.

    python bench/model_bench.py --model-dir MODEL_DIR [--calib BAG_OR_DATASET] [--iters 200]

Prints a table and writes bench/results/model_bench.json. A benchmark, not a test: nothing asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsdrive_ros.planner.load import load_session  # noqa: E402
from dsdrive_ros.runners import ModelSpec, make_runner  # noqa: E402


def feeds_for(spec: ModelSpec, calib: Path | None) -> list[dict]:
    """Real frames as the node's Planner feeds them, else one random image with an empty history."""
    if calib:
        from dsdrive_ros.export.quantize import planner_inputs
        return planner_inputs(spec, calib, 32)
    session, _ = load_session(spec, "onnxruntime")
    rng = np.random.default_rng(0)
    return [{**session.inputs, "images": rng.standard_normal(session.inputs["history_tokens"].shape[:1]
                                                            + spec.fixed_shape("planner", "inputs", "images")[1:])
             .astype(np.float32)}]


def time_plan(runner, feeds: list[dict], iters: int) -> dict:
    for f in feeds[:5]:
        runner.plan(f)
    t = []
    for i in range(iters):
        t0 = time.perf_counter()
        runner.plan(feeds[i % len(feeds)])
        t.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
            "mean_ms": float(np.mean(t)), "iters": iters}


def time_tokens(runner, prefix_kv: np.ndarray, n: int, repeats: int, first_id: int = 0) -> np.ndarray:
    """Seconds per decode step at each position 1..n (median over repeats), greedy from first_id."""
    per = np.zeros((repeats, n))
    ids = np.zeros((prefix_kv.shape[2], 1), np.int64)
    for r in range(repeats):
        past = prefix_kv
        ids[:] = first_id
        for i in range(n):
            t0 = time.perf_counter()
            logits, past = runner.decode(ids, past)
            per[r, i] = time.perf_counter() - t0
            ids[:] = int(np.argmax(logits[0, -1]))
    return np.median(per, axis=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--calib", type=Path, help="real frames for inputs (and int8 calibration if missing)")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "model_bench.json")
    args = ap.parse_args()
    spec = ModelSpec.load(args.model_dir)
    if args.calib and not spec.file("planner").with_suffix(".int8.onnx").is_file():
        from dsdrive_ros.export.quantize import quantize_planner
        quantize_planner(spec.dir, args.calib)
    feeds = feeds_for(spec, args.calib)

    backends = [("onnxruntime fp32", "onnxruntime", "fp32"), ("onnxruntime int8 (Q/DQ)", "onnxruntime", "int8"),
                ("pytorch eager fp32", "torch", "fp32")]
    results = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version(), "load_avg_at_start": os.getloadavg()},
               "model_dir": str(spec.dir), "preset": spec.raw.get("preset"), "cameras": len(spec.cameras),
               "input": f"{len(spec.cameras)}x3x{spec.image['height']}x{spec.image['width']}",
               "real_frames": bool(args.calib), "planner": {}}
    runners = {}
    for label, backend, precision in backends:
        try:
            runners[label] = make_runner(spec, backend, precision)
        except Exception as e:  # a missing int8 file or torch weights: say so, bench the rest
            results["planner"][label] = {"skipped": str(e)}
            continue
        results["planner"][label] = time_plan(runners[label], feeds, args.iters)
    ort = runners["onnxruntime fp32"]
    prefix = ort.plan(feeds[0])["reasoner_kv"]
    per_token = time_tokens(ort, prefix, 200, repeats=3)
    results["reasoner_onnxruntime"] = {
        "per_token_ms_at_20": float(np.median(per_token[17:22]) * 1e3),
        "per_token_ms_at_200": float(np.median(per_token[195:200]) * 1e3),
        "tokens_per_s_first_200": float(200 / per_token.sum()),
    }
    eager = results["planner"].get("pytorch eager fp32", {})
    if "p50_ms" in eager:
        results["speedup_onnxruntime_vs_eager_p50"] = eager["p50_ms"] / results["planner"]["onnxruntime fp32"]["p50_ms"]

    print(f"planner, {results['input']}, {os.cpu_count()} cores, load average at start "
          f"{results['machine']['load_avg_at_start'][0]:.1f}")
    for label, r in results["planner"].items():
        print(f"  {label:26s} " + (f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms" if "p50_ms" in r
                                   else f"skipped: {r['skipped']}"))
    rr = results["reasoner_onnxruntime"]
    print(f"reasoner: {rr['per_token_ms_at_20']:.2f} ms/token at 20, {rr['per_token_ms_at_200']:.2f} ms/token at 200,"
          f" {rr['tokens_per_s_first_200']:.0f} tokens/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

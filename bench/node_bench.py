#!/usr/bin/env python3
"""End-to-end benchmark of dsdrive_node: camera frames in -> nav_msgs/Path out, over real DDS.

    . scripts/ros_env.sh
    python bench/node_bench.py --model-dir build/models/random-tiny [--frames 200] [--quick]

One process (this one) publishes the cameras (wall-clock header stamps) and subscribes to the outputs;
the node runs in a subprocess (``bench/node_probe.py``: the node, its Planner's stage times published
on ``dsdrive_bench/stages``), Fast DDS profile config/fastdds_large_data.xml, its own ROS_DOMAIN_ID.
Images are at the model's input resolution, raw rgb8 and JPEG; the phases at camera resolution
(raw 1280x720 and 1920x1080, JPEG 1920x1080, from camera driver processes) are ``camera_res.py``,
on this bench's ``run_node``. The rig, the statistics and the report are ``node_rig.py``,
``node_stats.py`` and ``node_report.py``.

Measured, side by side:
  * latency = Path receive time - camera stamp: p50/p99/max at 10 and 20 Hz, ONNX Runtime and
    PyTorch eager, raw and JPEG; drop ratio; per-frame stage breakdown (transport in, decode, sync,
    queue wait, preprocess, inference, parse, fill+publish, transport out) and the node's overhead;
  * input faster than the model (30 Hz, a burst): output age and drop ratio (keep-latest);
  * planning with reasoning on vs off (parameter reasoning.enabled, alternated blocks at 20 Hz) and
    with reasoning generating continuously (reasoning.max_rate_hz 0);
  * reasoning alone (bare runner, model_bench.py's timing): tokens/s, per-token time at token 20 and 200;
  * the node's peak RSS (VmHWM), CPU use, the model's bytes on disk; load average for every figure.
Writes bench/results/node_bench.json and node_bench.md. A benchmark, not a test: nothing asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from model_bench import time_tokens
from node_report import BLOCKS, targets, write_markdown
from node_rig import UNTUNED_ORT, Rig, _load, _proc_cpu_s, _proc_mem_kb, _proc_threads_nice, make_images, start_node
from node_stats import _pct, collect, pooled, summarize

RESULTS = Path(__file__).resolve().parent / "results"
INSTRUCTION = "follow the road and turn left at the next intersection"


def run_node(args, rig: Rig, env: dict, workdir: Path, name: str, backend: str, transport: str,
             phases: list[tuple], log=print) -> dict:
    params = {"backend": backend, "image_transport": transport, "cameras": "[" + ",".join(rig.cameras) + "]"}
    log(f"[{name}] starting the node ({backend}, {transport}); load {_load()}")
    t_start = time.monotonic()
    node = start_node(args.model_dir, workdir, params, env)
    result: dict[str, Any] = {"name": name, "backend": backend, "transport": transport, "phases": {}}
    try:
        ok = rig.wait_for(lambda: not node.alive() or rig.discovered(transport), 180.0)
        if not node.alive() or not ok:
            result["error"] = f"node not up: {node.log_tail()}"
            log(result["error"])
            return result
        result["startup_s"] = time.monotonic() - t_start
        rig.send_instruction(INSTRUCTION)
        rig.stream(transport, 10.0, args.warmup)  # warm-up: caches, first allocations, reasoning
        rig.wait_quiet()
        rig.reset_records()
        for phase in phases:
            label, rate, n = phase[:3]
            params_set = phase[3] if len(phase) > 3 else {}
            if params_set:
                ok = rig.set_params(**params_set)
                if not all(ok):
                    log(f"[{name}] setting {params_set} failed: {ok}")
                time.sleep(0.3)
            rig.reset_records()
            load0, cpu0, t0 = _load(), _proc_cpu_s(node.pid), time.monotonic()
            stamps = rig.stream(transport, rate, n)
            t_pub = time.monotonic()
            rig.wait_quiet()
            wall = time.monotonic() - t0
            cpu1 = _proc_cpu_s(node.pid)
            with rig.lock:
                reasoning_texts = len(rig.reasoning)
                last_out = max((r for _, r in rig.paths), default=None)
            extra = {"load_avg_start": load0, "load_avg_end": _load(),
                     "node_cpu_pct": None if cpu0 is None or cpu1 is None else 100.0 * (cpu1 - cpu0) / wall,
                     "reasoning_texts": reasoning_texts, "params": params_set,
                     "publish_s": t_pub - t0}
            rows = collect(rig, stamps)
            res = summarize(rows, len(stamps), label, rate)
            res.update(extra)
            res["_rows"] = rows
            if rate <= 0 and last_out is not None:
                time.sleep(0.5)  # bursts apart
                # burst: how long after the newest frame was sent its plan (or the last plan) came
                res["settle_ms_after_last_frame"] = (last_out - stamps[-1]) / 1e6
                with rig.lock:
                    res["newest_frame_planned"] = any(s == stamps[-1] for s, _ in rig.paths)
            diag = rig.latest_diag(time.time_ns())
            res["diagnostics"] = {k: v for k, v in diag.items()
                                  if k.startswith("stage.") or k in ("sets", "sets_dropped", "plans",
                                                                     "skew_rejects", "latency_p50_ms",
                                                                     "latency_p99_ms")}
            result["phases"][label] = res
            e = res["e2e_ms"]
            log(f"[{name}] {label:>22s}: sent {res['sent']:4d} recv {res['received']:4d} "
                f"drop {res['drop_ratio']:.0%}  e2e p50 {e['p50'] or float('nan'):6.1f} p99 "
                f"{e['p99'] or float('nan'):6.1f} max {e['max'] or float('nan'):6.1f} ms  "
                f"infer p50 {(res.get('stages_ms', {}).get('inference', {}).get('p50') or float('nan')):5.1f}"
                f"  load {load0}")
        result["threads_by_nice"] = _proc_threads_nice(node.pid)
        mem = _proc_mem_kb(node.pid)
        result["node_vmhwm_mb"] = mem.get("VmHWM", 0) / 1024.0
        result["node_vmrss_mb"] = mem.get("VmRSS", 0) / 1024.0
    finally:
        rc = node.stop()
        result["exit_code"] = rc
        if rc not in (0, None):
            result["log_tail"] = node.log_tail(1500) if not node._log.closed else node.log_path.read_text()[-1500:]
    return result


def bare_figures(spec, iters: int, tokens: int, log=print) -> dict:
    """Planner step and reasoning per token on the bare runners (no ROS), in this process."""
    from dsdrive_ros.runners import PlannerSession, load_tokenizer, make_runner

    out: dict[str, Any] = {"load_avg_start": _load()}
    rng = np.random.default_rng(0)
    images = rng.standard_normal(spec.fixed_shape("planner", "inputs", "images")).astype(np.float32)
    tok = spec.tokens
    import ort_options  # bench/ (this script's directory is on sys.path)

    for key, backend, ort_conf in (("onnxruntime, ORT defaults (before)", "onnxruntime", UNTUNED_ORT),
                                   ("onnxruntime", "onnxruntime", ""),
                                   ("torch", "torch", "")):
        ort_options.apply(ort_conf)
        try:
            runner = make_runner(spec, backend)
        except Exception as exc:  # noqa: BLE001
            out[key] = {"skipped": str(exc)}
            continue
        finally:
            ort_options.apply("")
        sess = PlannerSession(spec, runner, load_tokenizer(spec))
        for _ in range(5):
            sess.step(images, INSTRUCTION, 3.0)
        t = []
        for _ in range(iters):
            t0 = time.perf_counter()
            res = sess.step(images, INSTRUCTION, 3.0)
            t.append((time.perf_counter() - t0) * 1e3)
        # forced length (no eos stop): per-token cost vs position
        per_tok = time_tokens(runner, res["reasoner_kv"], tokens, repeats=3, first_id=tok["bos"]) * 1e3
        out[key] = {
            "plan_step_ms": {"p50": _pct(t, 50), "p99": _pct(t, 99), "iters": iters},
            "reasoning": {"tokens": tokens, "tokens_per_s": float(tokens / (per_tok.sum() / 1e3)),
                          "per_token_ms_at_20": float(np.median(per_tok[17:22])),
                          "per_token_ms_at_200": float(np.median(per_tok[min(tokens, 200) - 5:min(tokens, 200)])),
                          "kv_len_at_end": int(res["reasoner_kv"].shape[4]) + tokens},
        }
        v = out[key]
        log(f"[bare] {key}: plan p50 {v['plan_step_ms']['p50']:.1f} ms, reasoning "
            f"{v['reasoning']['tokens_per_s']:.0f} tok/s, {v['reasoning']['per_token_ms_at_20']:.2f} ms @20, "
            f"{v['reasoning']['per_token_ms_at_200']:.2f} ms @200; load {_load()}")
        del runner, sess
    out["load_avg_end"] = _load()
    return out


def model_bytes(model_dir: Path, spec) -> dict:
    files = {p.name: p.stat().st_size for p in sorted(model_dir.iterdir()) if p.is_file()}
    runtime = [spec.raw["files"][k] for k in ("planner", "reasoner", "tokenizer")] + ["config.json"]
    return {"files": files, "runtime_bytes": int(sum(files.get(f, 0) for f in runtime)),
            "total_bytes": int(sum(files.values()))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=200, help="frame sets per phase (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="frame sets at 10 Hz before measuring")
    ap.add_argument("--burst", type=int, default=30,
                    help="frame sets sent back to back in each of 3 bursts")
    ap.add_argument("--runs", default="ort_raw_before,ort_raw,ort_jpeg,torch_raw",
                    help="comma list of ort_raw_before (the node before the thread fixes), ort_raw (as "
                         "shipped), ort_jpeg, torch_raw")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare-runner figures")
    ap.add_argument("--quick", action="store_true", help="60 frames per phase (a smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS / "node_bench.json")
    ap.add_argument("--domain-id", type=int, default=None)
    args = ap.parse_args()
    if args.quick:
        args.frames, args.warmup, args.burst = 60, 10, 15
    args.model_dir = args.model_dir.resolve()
    try:
        import rclpy  # noqa: F401

        from dsdrive_ros.msg import DrivingPlan  # noqa: F401
    except ImportError as exc:
        print(f"needs the ROS environment and the built package: `make build && . scripts/ros_env.sh` ({exc})")
        return 2
    from dsdrive_ros.runners import ModelSpec

    spec = ModelSpec.load(args.model_dir)
    cameras = list(spec.cameras)
    h, w = int(spec.image["height"]), int(spec.image["width"])
    from dsdrive_ros.node.process import node_env, private_domain, use_dds_profile

    domain = private_domain(args.domain_id)
    use_dds_profile()  # this process and the node alike
    env = node_env()  # with the domain set above

    n = args.frames
    quarter = max(1, n // 4)
    ort_raw_phases = [("10hz", 10.0, n)]
    # reasoning on (default: 1 Hz, 64 tokens) and off in alternated blocks: both share the load drift
    for b in BLOCKS:
        ort_raw_phases += [(f"20hz_{b}", 20.0, quarter, {"reasoning__enabled": True}),
                           (f"20hz_reasoning_off_{b}", 20.0, quarter, {"reasoning__enabled": False})]
    ort_raw_phases += [
        ("20hz_reasoning_continuous", 20.0, n, {"reasoning__enabled": True, "reasoning__max_rate_hz": 0.0}),
        ("30hz", 30.0, n, {"reasoning__max_rate_hz": 1.0}),
    ] + [(f"burst_{i}", 0.0, args.burst) for i in range(3)]
    simple = [("10hz", 10.0, n), ("20hz", 20.0, n)]
    # name, backend, transport, phases, environment of the node (node_probe.py A/B switches)
    before = {"DSDRIVE_BENCH_REASONING_NICE": "0", "DSDRIVE_BENCH_ORT": UNTUNED_ORT}
    run_defs = {
        "ort_raw_before": ("onnxruntime raw, before", "onnxruntime", "raw", ort_raw_phases, before),
        "ort_raw": ("onnxruntime raw", "onnxruntime", "raw", ort_raw_phases, {}),
        "ort_jpeg": ("onnxruntime jpeg", "onnxruntime", "compressed", simple, {}),
        "torch_raw": ("torch raw", "torch", "raw", simple, {}),
    }

    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "model_dir": str(args.model_dir), "preset": spec.raw.get("preset"), "cameras": cameras,
        "input": f"{len(cameras)}x3x{h}x{w}", "frames": n, "ros_domain_id": domain,
        "load_avg_start": _load(), "runs": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="node_bench_"))
    rig = Rig(cameras, make_images(8, cameras, h, w))
    res["image_bytes"] = {"raw": rig.raw_bytes, "jpeg_mean": rig.jpeg_bytes}
    try:
        for key in [k.strip() for k in args.runs.split(",") if k.strip()]:
            name, backend, transport, phases, run_env = run_defs[key]
            run = run_node(args, rig, {**env, **run_env}, workdir, name, backend, transport, phases)
            run["node_env"], run["key"] = run_env, key
            # pool the alternated blocks into the headline figures
            ph = run.get("phases", {})
            for cond in ("20hz", "20hz_reasoning_off"):
                blocks = [f"{cond}_{b}" for b in BLOCKS]
                if all(b in ph for b in blocks):
                    ph[cond] = pooled([ph[b] for b in blocks], cond)
                    for b in blocks:  # the blocks stay in the JSON, the table shows the pooled figure
                        run.setdefault("blocks", {})[b] = ph.pop(b)
            bursts = [k for k in ph if k.startswith("burst_")]
            if bursts:
                parts = [ph.pop(k) for k in bursts]
                ph["burst"] = pooled(parts, "burst")
                ph["burst"]["settle_ms_after_last_frame"] = [p.get("settle_ms_after_last_frame") for p in parts]
                ph["burst"]["newest_frame_planned"] = [p.get("newest_frame_planned") for p in parts]
                ph["burst"]["sets_per_burst"] = args.burst
            blocks = run.get("blocks", {})
            for cond, prefix in (("on", "20hz_"), ("off", "20hz_reasoning_off_")):
                p99s = [blocks[f"{prefix}{b}"]["e2e_ms"]["p99"] for b in BLOCKS if f"{prefix}{b}" in blocks]
                p99s = [x for x in p99s if x is not None]
                if p99s:
                    run.setdefault("median_block_p99_ms", {})[cond] = float(np.median(p99s))
            for p in list(ph.values()) + list(blocks.values()):
                p.pop("_rows", None)
            first = [k for k in ("10hz", "20hz", "20hz_reasoning_off") if k in ph]
            run["phases"] = {k: ph[k] for k in first + [k for k in ph if k not in first]}
            res["runs"].append(run)
    finally:
        rig.close()
    if not args.no_bare:
        res["bare"] = bare_figures(spec, iters=100, tokens=200)
    res["model_bytes"] = model_bytes(args.model_dir, spec)
    res["load_avg_end"] = _load()
    res["targets"] = targets(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=str))
    write_markdown(res, args.out.with_suffix(".md"))
    for t in res["targets"]:
        print(f"  {'OK ' if t['met'] else 'MISS' if t['met'] is False else '   '} {t['target']}: {t['value']}")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

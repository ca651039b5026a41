#!/usr/bin/env python3
"""GPU figures for the `1b` preset (random weights): planner step and reasoner per-token time.

    python bench/gpu_1b.py [--dtype bf16|fp16] [--out bench/results/gpu_1b.json]

PyTorch with CUDA graphs (the best runtime on GPU machines without TensorRT). A benchmark: prints and
writes JSON, asserts nothing. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsdrive_ros.model.config import preset  # noqa: E402
from dsdrive_ros.model.dsdrive import DSDrive, init_weights  # noqa: E402


def timed(fn, iters: int) -> dict:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    t = torch.tensor(times)
    return {"p50_ms": float(t.median()), "p99_ms": float(t.quantile(0.99)), "iters": iters}


def graphed(fn):
    """Capture fn (static inputs/outputs) into a CUDA graph; returns a replay callable."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_1b.json")
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    dev = "cuda"
    cfg = preset("1b")
    t0 = time.time()
    model = init_weights(DSDrive(cfg)).to(dev, dtype).eval()
    build_s = time.time() - t0
    hist = cfg.history_frames - 1
    x = dict(images=torch.randn(1, cfg.n_cameras, 3, cfg.image_height, cfg.image_width, device=dev, dtype=dtype),
             instruction_ids=torch.randint(3, cfg.vocab_size, (1, cfg.max_instruction_tokens), device=dev),
             instruction_mask=torch.ones(1, cfg.max_instruction_tokens, dtype=torch.bool, device=dev),
             history_tokens=torch.randn(1, hist, cfg.n_query, cfg.dim, device=dev, dtype=dtype),
             history_mask=torch.ones(1, hist, dtype=torch.bool, device=dev),
             speed=torch.ones(1, 1, device=dev, dtype=dtype))
    res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "dtype": args.dtype, "preset": "1b",
           "params": model.num_params(), "weights_gib": model.num_params() * 2 / 2**30,
           "sequence": cfg.max_instruction_tokens + cfg.history_frames * cfg.n_query, "build_s": build_s}
    with torch.inference_mode():
        out = {}

        def plan():
            out.update(model.plan(**x))

        res["planner_eager"] = timed(plan, args.iters)
        res["planner_cuda_graph"] = timed(graphed(plan), args.iters)
        prefix = out["reasoner_kv"].clone()
        ids = torch.zeros(1, 1, dtype=torch.long, device=dev)
        for pos in (20, 200):
            past = torch.cat([prefix, torch.randn(*prefix.shape[:4], pos, prefix.shape[5], device=dev,
                                                  dtype=dtype)], dim=4)
            step = lambda: model.reasoner.step(ids, past)  # noqa: E731
            res[f"reasoner_token_{pos}_eager"] = timed(step, args.iters)
            res[f"reasoner_token_{pos}_cuda_graph"] = timed(graphed(step), args.iters)
        res["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(res, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

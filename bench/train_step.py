#!/usr/bin/env python3
"""A training step in fp32 against bf16 autocast (TrainConfig.precision), side by side on real clips.

    python bench/train_step.py --config config/train_tiny_towns.yaml --data data/sim-val [--steps 40]

Two copies of the same initial model train on the same batches, one step each in turn, so both see
the same machine load: the step time of each precision and the losses they reach. The batches are
built once, before timing (data loading is not measured). Writes bench/results/train_step_cpu.json
(or --out). A benchmark, not a test: nothing asserts.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_io import emit  # noqa: E402
from dsdrive_ros.model.config import preset  # noqa: E402
from dsdrive_ros.model.dsdrive import DSDrive, init_weights  # noqa: E402
from dsdrive_ros.model.tokenizer import DSDriveTokenizer  # noqa: E402
from dsdrive_ros.train.augment import Augment  # noqa: E402
from dsdrive_ros.train.data import ClipDataset, collate, corpus  # noqa: E402
from dsdrive_ros.train.loop import TrainConfig, load_episodes, make_optimizer, train_step  # noqa: E402


def model_and_batches(c: TrainConfig, data: list[str], n: int) -> tuple[DSDrive, list[dict]]:
    """A freshly initialised model of the config and ``n`` training batches of its recipe."""
    c = dataclasses.replace(c, datasets=data, val_towns=[])
    episodes, _ = load_episodes(c)
    cfg = preset(c.preset, **c.model)
    tokenizer = DSDriveTokenizer.train(corpus(episodes), vocab_size=cfg.vocab_size)
    ds = ClipDataset(episodes, cfg, tokenizer, Augment(c.camera_shift_px, c.exposure_jitter), c.seed)
    loader = DataLoader(ds, batch_size=c.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(c.seed), collate_fn=lambda b: collate(b, cfg.pad_id))
    out = []
    for batch in loader:
        out.append({k: v for k, v in batch.items() if k != "action"})
        if len(out) == n:
            break
    return init_weights(DSDrive(cfg), c.seed), out


def cpu_model() -> dict:
    """The CPU's name and whether it has native bf16 (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return {"cpu": name, "native_bf16": "avx512_bf16" in flags or "amx_bf16" in flags}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config/train_tiny_towns.yaml", help="the recipe (model, batch, augmentation)")
    ap.add_argument("--data", nargs="+", required=True, help="dataset folders in the simulator's layout")
    ap.add_argument("--steps", type=int, default=40, help="steps per precision")
    ap.add_argument("--batches", type=int, default=8, help="distinct batches, cycled (held in memory)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results/train_step_cpu.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)  # the parameters init_weights leaves to torch's generator (embeddings of positions, views)
    c = TrainConfig.from_file(a.config)
    model, data = model_and_batches(c, a.data, a.batches)
    runs = {}
    for precision in ("fp32", "bf16"):
        m = copy.deepcopy(model).train()
        runs[precision] = {"model": m, "opt": make_optimizer(m, c), "config": dataclasses.replace(c, precision=precision),
                           "seconds": [], "loss": []}
    load_before = os.getloadavg()
    for step in range(a.steps):
        batch = data[step % len(data)]
        for r in runs.values():
            t0 = time.perf_counter()
            o = train_step(r["model"], r["opt"], batch, r["config"], "cpu")
            r["seconds"].append(time.perf_counter() - t0)
            r["loss"].append(o["loss"].item())
    tail = max(1, a.steps // 4)
    result = {
        "what": "one training step (forward, backward, AdamW) of the recipe, fp32 vs bf16 autocast, "
                "interleaved on the same batches from the same initial weights",
        "command": "python bench/train_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": a.config, "batch_size": c.batch_size, "history_grad": c.history_grad,
        "cameras": model.cfg.n_cameras, "steps": a.steps, "threads": a.threads,
        "machine": {**cpu_model(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "precisions": {p: {"median_step_s": round(statistics.median(r["seconds"][1:]), 3),
                           "first_loss": round(r["loss"][0], 4),
                           f"mean_loss_last_{tail}_steps": round(statistics.fmean(r["loss"][-tail:]), 4)}
                       for p, r in runs.items()},
    }
    f, b = (result["precisions"][p]["median_step_s"] for p in ("fp32", "bf16"))
    result["speedup_bf16"] = round(f / b, 2)
    emit(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The node's planning path without ROS, on `1b` random weights, with the reasoner streaming beside it.

    python bench/gpu_core.py [--preset 1b] [--device cuda:0] [--precision bf16] [--seconds 20]
    python bench/gpu_core.py --preset tiny --device cpu --seconds 5     # CPU smoke run

Camera sets arrive at --rate-hz (20) from a feeder thread; the planning thread runs what the node's
does: the Planner (CameraSync -> keep-latest -> TorchPreprocessor on the device -> PlannerSession
on the torch runner (CUDA graph planner step) -> parse_plan); the ReasoningWorker generates text
from every plan's prefix, back to back (no rate limit, no eos), on the static device KV cache,
pausing while a plan runs as in the node. Two phases: reasoning off, then on. Writes JSON:
planning p50/p99 per phase (preprocess + inference + parse, and from set completion), tokens/s
while planning, GPU memory. A benchmark: asserts nothing.

Needs only torch and numpy (no onnxruntime, rclpy, OpenCV, tokenizers, network) and, of this tree,
`dsdrive_ros/` and this file (under 1 MiB): `git archive HEAD dsdrive_ros bench/gpu_core.py | tar x -C DIR`.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from dsdrive_ros.export.onnx_export import runtime_config  # noqa: E402
from dsdrive_ros.frames.preprocess_torch import TorchPreprocessor  # noqa: E402
from dsdrive_ros.model.config import preset  # noqa: E402
from dsdrive_ros.model.dsdrive import DSDrive, init_weights  # noqa: E402
from dsdrive_ros.planner.planner import Planner  # noqa: E402
from dsdrive_ros.planner.reasoning import ReasoningWorker  # noqa: E402
from dsdrive_ros.outputs.parse import PlanParseError  # noqa: E402
from dsdrive_ros.runners.session import PlannerSession  # noqa: E402
from dsdrive_ros.runners.spec import ModelSpec  # noqa: E402
from dsdrive_ros.runners.torch_runner import TorchRunner  # noqa: E402

from bench_io import emit  # noqa: E402

# The targets for `1b` on an H100/H200 (bf16 or fp16).
TARGETS = {"planning_p50_ms_max": 6.0, "planning_p99_ms_max": 10.0, "reasoner_tokens_per_s_min": 1000.0}


class FixedInstruction:
    """Stands in for the tokenizer (`tokenizers` is not on a bare GPU machine): one fixed, valid
    instruction of random ids; the bench counts tokens and never needs their text."""

    def __init__(self, ids: dict[str, int], vocab: int, seed: int = 0):
        self.ids = ids
        self._rng = np.random.default_rng(seed)
        self._vocab = vocab

    def encode_instruction(self, text: str, length: int) -> tuple[np.ndarray, np.ndarray]:
        n = max(1, length // 2)
        ids = np.zeros((1, length), np.int64)
        ids[0, :n] = self._rng.integers(4, self._vocab, n)
        return ids, ids != 0

    def decode(self, ids: list[int]) -> str:
        return ""


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "n": 0}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "n": len(values)}


class Bench:
    def __init__(self, args: argparse.Namespace):
        cfg = preset(args.preset)
        t0 = time.monotonic()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = init_weights(DSDrive(cfg))
        self.params = model.num_params()
        self.tokenizer = FixedInstruction({"pad": cfg.pad_id, "bos": cfg.bos_id, "eos": cfg.eos_id, "unk": 3},
                                          cfg.vocab_size)
        self.spec = ModelSpec(Path("."), runtime_config(model, self.tokenizer, args.preset))
        self.runner = TorchRunner(self.spec, args.precision, args.device, model=model, threads=args.threads)
        self.load_s = time.monotonic() - t0
        self.device = self.runner.device
        session = PlannerSession(self.spec, self.runner, self.tokenizer)
        self.core = Planner(self.spec, session, backend=self.runner.name,
                             preprocessor=TorchPreprocessor.from_spec(self.spec.image, self.spec.cameras,
                                                                      self.device),
                             max_skew_ms=50.0, stale_after_ms=1000.0)
        self.core.set_instruction("turn left at the next intersection")
        self.max_tokens = min(args.max_tokens, self.spec.max_reasoning_tokens)
        self.tokens = 0
        self.tokens_lock = threading.Lock()
        self.generating = threading.Event()
        self.worker = ReasoningWorker(self._generate, lambda *_: None, max_tokens=self.max_tokens,
                                      max_rate_hz=0.0)
        rng = np.random.default_rng(1)
        h, w = args.camera_hw
        self.frames = {c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in self.spec.cameras}
        self.rate_hz = args.rate_hz

    def _generate(self, raw: dict, max_tokens: int) -> str:
        """What the node's reasoning thread runs, counting tokens (eos -1: every text is max_tokens)."""
        idle = self.core.planner_idle
        self.generating.set()
        try:
            ids = self.runner.generate_ids(raw["reasoner_kv"], self.spec.tokens["bos"], -1, max_tokens,
                                           before_step=lambda: idle.wait(0.1))
        finally:
            self.generating.clear()
        with self.tokens_lock:
            self.tokens += len(ids)
        return ""

    def phase(self, seconds: float, reasoning: bool) -> dict:
        """Feed camera sets at rate_hz for `seconds`, plan each, time it."""
        self.worker.enabled = reasoning
        deadline = time.monotonic() + 60.0
        while not reasoning and self.generating.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)  # the text in flight finishes before a phase without reasoning starts
        stop = threading.Event()
        latencies, from_ready, stages = [], [], {}

        def feed() -> None:
            period, n = 1.0 / self.rate_hz, 0
            start = time.monotonic()
            while not stop.is_set():
                stamp = time.time_ns()
                for cam, rgb in self.frames.items():
                    self.core.on_frame(cam, stamp, rgb)
                n += 1
                stop.wait(max(0.0, start + n * period - time.monotonic()))

        feeder = threading.Thread(target=feed, name="bench-feeder", daemon=True)
        with self.tokens_lock:
            tokens0 = self.tokens
        texts0 = self.worker.counters.get("texts")
        dropped0 = self.core.counters.get("sets_dropped")
        t0 = time.monotonic()
        feeder.start()
        while time.monotonic() - t0 < seconds:
            pending = self.core.next_set(0.5)
            if pending is None:
                continue
            try:
                out, raw, _ = self.core.plan(pending)
            except PlanParseError:  # random weights: counted by the core (invalid_outputs), not timed
                continue
            st = out.timings.stages_ms()
            latencies.append(st["preprocess"] + st["inference"] + st["parse"])
            from_ready.append(sum(st.values()))
            for k, v in st.items():
                stages.setdefault(k, []).append(v)
            if reasoning:
                self.worker.submit(raw, out.stamp_ns)
        stop.set()
        feeder.join()
        wall = time.monotonic() - t0
        with self.tokens_lock:
            tokens = self.tokens - tokens0
        return {
            "seconds": wall, "plans": len(latencies), "plans_per_s": len(latencies) / wall,
            "sets_dropped": self.core.counters.get("sets_dropped") - dropped0,
            "invalid_outputs_total": self.core.counters.get("invalid_outputs"),
            "planning_ms": percentiles(latencies),
            "planning_from_set_complete_ms": percentiles(from_ready),
            "stages_p50_ms": {k: percentiles(v)["p50"] for k, v in stages.items()},
            "reasoner_tokens": tokens, "reasoner_tokens_per_s": tokens / wall,
            "reasoning_texts": self.worker.counters.get("texts") - texts0,
        }


def memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"gpu_max_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                "gpu_max_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
                "gpu_total_gib": torch.cuda.get_device_properties(device).total_memory / 2**30}
    return {"gpu": "none (CPU run)", "process_max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="1b")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default="bf16")
    ap.add_argument("--seconds", type=float, default=20.0, help="per phase (reasoning off, then on)")
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--rate-hz", type=float, default=20.0)
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens per reasoning text")
    ap.add_argument("--camera-hw", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpu_core.json")
    args = ap.parse_args(argv)

    bench = Bench(args)
    bench.worker.start()
    bench.phase(args.warmup_s, reasoning=True)  # first replays, allocator growth, worker running
    off = bench.phase(args.seconds, reasoning=False)
    time.sleep(0.5)
    on = bench.phase(args.seconds, reasoning=True)
    bench.worker.stop()
    dev = bench.device
    on_gpu = dev.type == "cuda"
    res = {
        "what": "bench/gpu_core.py: Planner + ReasoningWorker on the torch runner, no ROS",
        "command": " ".join(["python", "bench/gpu_core.py", *(sys.argv[1:] if argv is None else argv)]),
        "run": "GPU" if on_gpu else "CPU smoke run (not a GPU figure; checks that the script runs)",
        "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if on_gpu else None,
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "preset": args.preset, "precision": args.precision, "params": bench.params,
        "backend": bench.runner.name, "load_s": bench.load_s, "rate_hz": args.rate_hz,
        "camera_hw": args.camera_hw, "max_tokens_per_text": bench.max_tokens,
        "reasoning_off": off, "reasoning_on": on, "memory": memory(dev),
        "targets_h100_1b": TARGETS, "loadavg": os.getloadavg(), "cpu_count": os.cpu_count(),
    }
    if on_gpu and args.preset == "1b":
        res["targets_met"] = {
            "planning_p50": on["planning_ms"]["p50"] <= TARGETS["planning_p50_ms_max"],
            "planning_p99": on["planning_ms"]["p99"] <= TARGETS["planning_p99_ms_max"],
            "reasoner_tokens_per_s": on["reasoner_tokens_per_s"] >= TARGETS["reasoner_tokens_per_s_min"],
        }
    emit(res, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

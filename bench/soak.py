#!/usr/bin/env python3
"""Soak: N camera sets through the real dsdrive_node (subprocess, real DDS); memory and accounting.

    . scripts/ros_env.sh
    python bench/soak.py --model-dir build/models/random-tiny [--sets 10000] [--rate 30]
                         [--out bench/results/soak.json]

4 cameras, rgb8 frames at the model's input size (config.json), distinct content per set (a small
pool of prebuilt images, restamped), wall-clock stamps; instruction latched, odometry at 10 Hz,
reasoning on (the shipped parameter file). ``--rate 30``: open loop at 30 sets/s, so the node's
keep-latest policy drops what it cannot plan; ``--rate 0``: closed loop, the next set goes when the
previous one's Path arrived ("as fast as it keeps up").

Measured and checked (exit 1 when a check fails):
  * RSS of the node process (VmRSS, /proc/<pid>/status) sampled every second: growth from the end
    of warm-up (the first 10 % of the sets, at least 100) to the end must stay < 5 %;
  * accounting: every set sent is either a Path received or counted by the node — keep-latest
    drops (``sets_dropped``), sync rejects, model failures, or camera messages the middleware
    reported lost (``transport_lost``, front = the anchor camera); nothing unaccounted;
  * the plan messages' ``frames_dropped`` add up to the node's ``sets_dropped`` (drops after the
    last plan aside).
Writes the figures as JSON (``--out``). test/test_soak.py runs a 1,000-set version of the same.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))  # ros_harness: NodeProcess, DriveRig

from ros_harness import DriveRig, NodeProcess, proc_rss_kib  # noqa: E402

RSS_GROWTH_LIMIT_PCT = 5.0


def _model_hw(model_dir: Path) -> tuple[int, int]:
    cfg = json.loads((model_dir / "config.json").read_text())
    return int(cfg["image"]["height"]), int(cfg["image"]["width"])


def _settled_values(rig: DriveRig, quiet_s: float = 1.5, timeout: float = 30.0) -> dict[str, str]:
    """Planner values once the counters stopped moving (everything sent has been handled)."""
    keys = ("anchor_frames", "plans", "sets_dropped", "skew_rejects", "stale_rejects", "missing_rejects")
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        values = rig.wait_diag(lambda *_: True, timeout=5.0)[2]
        snap = tuple(values.get(k) for k in keys)
        if snap != last:
            last, since = snap, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return values
    return rig.last_diag()[2]


def run_soak(model_dir: Path, sets: int = 10_000, rate_hz: float = 30.0, workdir: Optional[Path] = None,
             params: tuple[str, ...] = (), warmup: Optional[int] = None, pool: int = 16,
             progress: bool = False) -> dict[str, Any]:
    """Run the soak; returns the figures (``ok`` and ``failures`` included). Raises only when the
    node cannot be started or dies."""
    model_dir = Path(model_dir).resolve()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="dsdrive_soak_"))
    workdir.mkdir(parents=True, exist_ok=True)
    warmup = max(100, sets // 10) if warmup is None else warmup
    hw = _model_hw(model_dir)
    rig = DriveRig("dsdrive_soak", image_hw=hw)
    node = NodeProcess(model_dir, workdir, ["diagnostics_period_s:=0.5", *params])
    rss: list[tuple[float, int, int]] = []  # (t since start, sets sent, VmRSS KiB)
    stop = threading.Event()
    t_start = time.monotonic()

    def sample() -> None:
        while not stop.wait(1.0):
            try:
                rss.append((time.monotonic() - t_start, rig.sent, proc_rss_kib(node.proc.pid)))
            except (OSError, RuntimeError):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        rig.wait_discovery(node)
        rig.send_instruction("follow the road and stop at the next intersection")
        for seed in range(pool):
            rig.camera_set(seed)  # prebuilt before timing starts
        assert rig.serves(timeout=60.0), f"no first Path:\n{node.log()[-3000:]}"
        base = _settled_values(rig)  # the warm-up sets all handled
        lost0 = {c: int(rig.last_diag(f"camera {c}")[2].get("transport_lost", "0")) for c in rig.cameras}
        rig.h.clear()
        sent0 = rig.sent
        sampler.start()
        t0 = time.monotonic()
        rss_warm: Optional[int] = None
        period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        next_t = time.monotonic()
        for i in range(sets):
            if i == warmup:
                rss_warm = proc_rss_kib(node.proc.pid)
            if i % 3 == 0:
                rig.send_odom(5.0 + (i % 50) * 0.1)
            if rate_hz > 0:
                next_t += period
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                rig.send_set(seed=i % pool)
            else:  # closed loop: wait for this set's Path (or give up after 2 s: counted below)
                n = len(rig.paths())
                rig.send_set(seed=i % pool)
                rig.h.wait_for(lambda: len(rig.paths()) > n, 2.0, 0.001)
            if progress and i and i % 1000 == 0:
                print(f"  {i} sets, {len(rig.paths())} paths, RSS {proc_rss_kib(node.proc.pid)} KiB",
                      flush=True)
            if i % 200 == 0 and not node.alive():
                raise RuntimeError(f"node died after {i} sets:\n{node.log()[-3000:]}")
        send_s = time.monotonic() - t0
        values = _settled_values(rig)
        rss_end = proc_rss_kib(node.proc.pid)
        stop.set()
        sampler.join(2.0)
        cam_lost = {c: int(rig.last_diag(f"camera {c}")[2].get("transport_lost", "0")) - lost0[c]
                    for c in rig.cameras}
        alive = node.alive()
    finally:
        stop.set()
        rc = node.stop()
        rig_paths, rig_plans = rig.paths(), rig.plans()
        rig.close()

    def delta(key: str) -> int:
        return int(values.get(key, "0")) - int(base.get(key, "0"))

    sent = rig.sent - sent0
    paths = len(rig_paths)
    c = {k: delta(k) for k in ("anchor_frames", "plans", "sets_dropped", "skew_rejects", "stale_rejects",
                                "missing_rejects", "inference_errors", "invalid_outputs", "decode_errors",
                                "published.path", "transport_lost", "time_jumps", "history_resets")}
    rejects = c["skew_rejects"] + c["stale_rejects"] + c["missing_rejects"]
    failed = c["inference_errors"] + c["invalid_outputs"]
    anchor_lost = cam_lost.get(rig.cameras[0], 0)
    counted = c["sets_dropped"] + rejects + failed + anchor_lost
    unaccounted = sent - paths - counted
    frames_dropped_sum = sum(int(p.frames_dropped) for p in rig_plans)
    rss_warm = rss_warm if rss_warm is not None else (rss[0][2] if rss else rss_end)
    after = [r for _, n, r in rss if n >= sent0 + warmup] or [rss_end]
    growth = 100.0 * (rss_end - rss_warm) / rss_warm
    latency = {k: values.get(k) for k in ("latency_p50_ms", "latency_p99_ms")}
    result: dict[str, Any] = {
        "sets": sent,
        "rate_hz": rate_hz,
        "image_hw": list(hw),
        "send_s": round(send_s, 1),
        "achieved_send_hz": round(sent / send_s, 2) if send_s else None,
        "paths_received": paths,
        "plan_msgs_received": len(rig_plans),
        "node": c,
        "transport_lost_per_camera": cam_lost,
        "accounting": {
            "sent": sent, "paths": paths, "keep_latest_drops": c["sets_dropped"], "sync_rejects": rejects,
            "model_failures": failed, "anchor_lost_in_transport": anchor_lost, "unaccounted": unaccounted,
            "node_anchor_identity": c["anchor_frames"] - (c["plans"] + c["sets_dropped"] + rejects + failed),
            "plan_frames_dropped_sum": frames_dropped_sum,
        },
        "rss_kib": {"warm": rss_warm, "end": rss_end, "max_after_warmup": max(after),
                    "min_after_warmup": min(after), "growth_pct": round(growth, 2),
                    "samples": [[round(t, 1), n - sent0, r] for t, n, r in rss]},
        "latency_ms": latency,
        "node_alive_at_end": alive,
        "node_exit_code": rc,
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    failures = []
    if not alive:
        failures.append("node died")
    if rc != 0:
        failures.append(f"node exit code {rc}")
    if growth >= RSS_GROWTH_LIMIT_PCT:
        failures.append(f"RSS grew {growth:.1f} % after warm-up ({rss_warm} -> {rss_end} KiB)")
    if unaccounted != 0:
        failures.append(f"{unaccounted} set(s) neither published nor counted by the node")
    if c["published.path"] != paths:
        failures.append(f"node published {c['published.path']} Paths, {paths} received")
    if not (0 <= c["sets_dropped"] - frames_dropped_sum <= 1):
        failures.append(f"plans' frames_dropped sum {frames_dropped_sum} != sets_dropped {c['sets_dropped']}")
    result["failures"] = failures
    result["ok"] = not failures
    return result


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=Path(os.environ.get("DSDRIVE_TEST_MODEL_DIR",
                                                                          ROOT / "build/models/random-tiny")))
    ap.add_argument("--sets", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=30.0, help="sets per second; 0 = closed loop")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/soak.json")
    ap.add_argument("-p", "--param", action="append", default=[], help="extra node parameter name:=value")
    args = ap.parse_args(argv)
    print(f"soak: {args.sets} sets at {args.rate or 'closed-loop'} Hz, model {args.model_dir}", flush=True)
    res = run_soak(args.model_dir, args.sets, args.rate, params=tuple(args.param), progress=True)
    res["model_dir"] = str(args.model_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    a, r = res["accounting"], res["rss_kib"]
    print(f"sent {a['sent']} in {res['send_s']} s: {a['paths']} Paths + {a['keep_latest_drops']} keep-latest "
          f"drops + {a['sync_rejects']} sync rejects + {a['model_failures']} failures + "
          f"{a['anchor_lost_in_transport']} lost in transport; unaccounted {a['unaccounted']}")
    print(f"RSS warm {r['warm']} KiB -> end {r['end']} KiB ({r['growth_pct']:+.2f} %), max {r['max_after_warmup']}")
    print(f"wrote {args.out}; {'OK' if res['ok'] else 'FAILED: ' + '; '.join(res['failures'])}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

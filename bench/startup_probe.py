"""Start-up probe (the inertia problem): on frames where the ego stands (< 0.5 m/s) and the expert
drives off, how far does the model's path go in 2.5 s, next to the expert's, and would LMDrive's PID
move (desired speed |wp1 - wp0| / dt at least its brake_speed)? And the other side: on frames where
the ego stands and the expert stays (at a light or in a queue), how often would the PID move (a false
start)?

    python bench/startup_probe.py --checkpoint models/dsdrive-tiny --data data/sim-val [--json OUT]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dsdrive_ros.model.checkpoint import load_checkpoint
from dsdrive_ros.model.tokenizer import DSDriveTokenizer
from dsdrive_ros.policies.controller import PIDParams
from dsdrive_ros.data.dataset import DatasetReader
from dsdrive_ros.train.data import ClipDataset, collate
from dsdrive_ros.train.loop import is_startup


@torch.inference_mode()
def probe(ckpt: Path, data: list[str], max_frames: int = 256) -> dict:
    model = load_checkpoint(ckpt).eval()
    tok = DSDriveTokenizer.load(ckpt / "tokenizer.json")
    eps = [ep for root in data for ep in DatasetReader(root).episodes()]
    ds = ClipDataset(eps, model.cfg, tok)
    dt = model.cfg.waypoint_dt
    moves = PIDParams().brake_speed  # LMDrive's PID brakes below this desired speed (m/s)

    def run(idx: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(model's distance at the last waypoint, expert's, PID desired speed) per frame."""
        pred_far, gt_far, desired = [], [], []
        for s in range(0, len(idx), 16):
            b = collate([ds[k] for k in idx[s:s + 16]], model.cfg.pad_id)
            wp = model({k: v for k, v in b.items() if k != "action"})["waypoints"].numpy()
            pred_far += np.linalg.norm(wp[:, -1], axis=-1).tolist()
            desired += (np.linalg.norm(wp[:, 1] - wp[:, 0], axis=-1) / dt).tolist()
            gt_far += np.linalg.norm(b["waypoints"].numpy()[:, -1], axis=-1).tolist()
        return np.asarray(pred_far), np.asarray(gt_far), np.asarray(desired)

    recs = [(k, it.episode.record(it.index)) for k, it in enumerate(ds.items)]
    starts = [k for k, r in recs if is_startup(r)]
    waits = [k for k, r in recs if r["speed"] < 0.5 and np.hypot(*r["waypoints"][-1]) < 0.5]
    rng = np.random.default_rng(0)  # an even spread when there are more frames than asked for
    starts, waits = (sorted(rng.choice(ix, min(len(ix), max_frames), replace=False).tolist()) if ix else []
                     for ix in (starts, waits))
    p, g, d = run(starts)
    wp_, _, wd = run(waits)
    return {"checkpoint": str(ckpt), "data": data, "startup_frames": len(starts),
            "pred_2p5s_m": {"mean": float(p.mean()), "p10": float(np.percentile(p, 10)), "p50": float(np.median(p))},
            "expert_2p5s_m": {"mean": float(g.mean()), "p50": float(np.median(g))},
            "share_pid_moves": float(np.mean(d >= moves)),
            "desired_speed_p50_mps": float(np.median(d)),
            "wait_frames": len(waits),
            "wait_false_start_share": float(np.mean(wd >= moves)) if len(waits) else None,
            "wait_pred_2p5s_m_p50": float(np.median(wp_)) if len(waits) else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    r = probe(a.checkpoint, a.data, a.frames)
    print(json.dumps(r, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(r, indent=1) + "\n")


if __name__ == "__main__":
    main()

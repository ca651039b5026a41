"""dsdrive-train --config FILE [--out DIR] [--steps N]: train, then evaluate open loop on held-out towns."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dsdrive-train", description=__doc__)
    ap.add_argument("--config", type=Path, required=True, help="training YAML (see config/train_tiny.yaml)")
    ap.add_argument("--out", help="override the output folder")
    ap.add_argument("--steps", type=int, help="override the number of steps")
    ap.add_argument("--eval-only", action="store_true", help="only evaluate OUT/last on the held-out towns")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from ..model.checkpoint import load_checkpoint
    from ..model.tokenizer import DSDriveTokenizer
    from .data import ClipDataset
    from .loop import TrainConfig, load_episodes, process_rank, train
    from .metrics import evaluate

    try:
        c = TrainConfig.from_file(args.config, out=args.out, steps=args.steps)
        last = Path(c.out) / "last" if args.eval_only else train(c)
        if process_rank() != 0:  # under torchrun rank 0 alone evaluates and writes open_loop.json
            return 0
        _, val = load_episodes(c)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if val:
        import torch

        model = load_checkpoint(last, "cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = DSDriveTokenizer.load(last / "tokenizer.json")
        m = evaluate(model, ClipDataset(val, model.cfg, tokenizer), tokenizer, max_frames=c.eval_frames)
        (Path(c.out) / "open_loop.json").write_text(json.dumps(m, indent=2))
        print(json.dumps(m, indent=2))
    print(f"checkpoint: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

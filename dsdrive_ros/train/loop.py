"""The training loop: joint loss, AdamW + warmup/cosine, resumable safetensors checkpoints, CSV + PNG.

Data-parallel on several GPUs/machines with the standard launcher:
    torchrun --nproc_per_node N -m dsdrive_ros.train.cli --config FILE
(each rank gets a DistributedSampler shard; rank 0 alone writes: config, metrics, checkpoints; every
rank waits for rank 0's final save before `train` returns, so any rank may then read the checkpoint).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, DistributedSampler, WeightedRandomSampler
from tqdm import tqdm

from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.config import DSDriveConfig, preset
from ..model.dsdrive import DSDrive, init_weights
from ..model.tokenizer import DSDriveTokenizer
from .augment import Augment
from .data import ClipDataset, collate, corpus
from .metrics import evaluate

log = logging.getLogger(__name__)


# the loss and its parts, as logged (loss_path / loss_speed: head_layout path_speed only)
LOSS_KEYS = ("loss", "loss_waypoints", "loss_path", "loss_speed", "loss_reasoning", "loss_end")
# TrainConfig.precision -> the autocast dtype of the forward pass (None: plain fp32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@dataclass
class TrainConfig:
    out: str
    datasets: list[str] = field(default_factory=list)  # simulator layout
    lmdrive: list[str] = field(default_factory=list)  # LMDrive layout
    val_towns: list[str] = field(default_factory=list)  # held out from training
    preset: str = "tiny"
    model: dict = field(default_factory=dict)  # DSDriveConfig overrides (e.g. lambda_reasoning: 0)
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 500
    save_every: int = 200
    eval_frames: int = 256
    workers: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    seed: int = 0
    init_from: str = ""  # fine-tune: start from this checkpoint folder (weights and tokenizer)
    # Frames where the ego stands but the expert drives off are ~2 % of the data; at that share a
    # speed-aware model learns "stopped -> stay stopped" (inertia). >1 oversamples them.
    startup_weight: float = 1.0
    # Sampling weight per dataset root (default 1): e.g. DAgger frames, the states the model itself
    # reaches, seen more often than their share. Multiplies startup_weight.
    dataset_weights: dict = field(default_factory=dict)
    # Sampling weight per expert action (record "action", default 1): turns are ~15 % of frames and
    # their lateral offsets are the minority an L1 loss gives up on (predicting the median y = 0).
    action_weights: dict = field(default_factory=dict)
    # ChauffeurNet's past-motion dropout: the share of training samples whose speed input reads 0
    # (labels unchanged), so "speed 0" stops being proof of "stay stopped" and images must decide.
    speed_dropout: float = 0.0
    # The share of samples seen without their earlier frames (as after a history reset), so that
    # "no history" (the start of every drive) is no cue for "drive off" either.
    history_dropout: float = 0.0
    # False: earlier frames are encoded without gradients, as the runtime's ring holds them (half the
    # CPU step time; the encoder still learns from each clip's current frame). See DSDrive.clip_tokens.
    history_grad: bool = True
    # Image augmentation (train/augment.py): camera jitter up to this many pixels, exposure gain
    # 1 +- this (training clips only; validation sees the images as recorded).
    camera_shift_px: int = 0
    exposure_jitter: float = 0.0
    # "bf16": the forward pass under bf16 autocast (CPU with AVX512-BF16/AMX, or GPU); weights, optimizer
    # state, the planning heads and the losses stay fp32. About 1.5x a CPU step here (bench/train_step.py).
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: choose one of {sorted(PRECISIONS)}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainConfig":
        import yaml

        d = yaml.safe_load(Path(path).read_text()) or {}
        d.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(d) - names):
            raise ValueError(f"{path}: unknown training config keys {unknown}")
        return cls(**d)


def is_startup(rec: dict) -> bool:
    """The ego stands (< 0.5 m/s) and the expert drives off (> 2 m within the horizon)."""
    return rec["speed"] < 0.5 and rec["waypoints"][-1][0] > 2.0


def sample_weights(items: list, c: TrainConfig) -> list[float]:
    """Sampling weight of each training clip: its dataset's weight x its action's weight x
    startup_weight for start-ups."""
    roots = {Path(k).resolve(): float(v) for k, v in c.dataset_weights.items()}
    weights = []
    for it in items:
        ep, rec = it.episode, it.episode.record(it.index)
        root = Path(getattr(ep, "dir", None) or ep.route_dir).parent.resolve()  # sim or LMDrive layout
        weights.append(roots.get(root, 1.0) * float(c.action_weights.get(rec.get("action"), 1.0))
                       * (c.startup_weight if is_startup(rec) else 1.0))
    return weights


def mixed_precision(device: str, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's autocast for TrainConfig.precision (no-op for fp32)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext()


def make_optimizer(model: torch.nn.Module, c: TrainConfig) -> torch.optim.AdamW:
    """AdamW, weight decay on matrices only (not on norms, biases or the 1-D embeddings)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=c.lr, betas=(0.9, 0.95))


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, c: TrainConfig,
               device: str) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch (forward under c.precision, gradient clipping); the model's outputs."""
    with mixed_precision(device, c.precision):
        o = model(batch, history_grad=c.history_grad)
    opt.zero_grad(set_to_none=True)
    o["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
    opt.step()
    return o


def drop_speed(speed: torch.Tensor, p: float) -> torch.Tensor:
    """Speed input (B, 1) with each sample's value set to 0 with probability ``p``."""
    if p <= 0:
        return speed
    return speed * (torch.rand(speed.shape[0], 1, device=speed.device) >= p)


def drop_history(frame_mask: torch.Tensor, p: float) -> torch.Tensor:
    """Frame mask (B, H), last = the current frame; each sample's earlier frames hidden with probability ``p``."""
    if p <= 0:
        return frame_mask
    keep = torch.rand(frame_mask.shape[0], 1, device=frame_mask.device) >= p
    out = frame_mask.clone()
    out[:, :-1] &= keep
    return out


def lr_at(step: int, c: TrainConfig) -> float:
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    p = min(1.0, (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps))
    return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * p))


def load_episodes(c: TrainConfig) -> tuple[list, list]:
    """(train, val) episodes; val = the held-out towns."""
    from ..data.dataset import DatasetReader
    from ..data.lmdrive_layout import LMDriveDataset

    train, val = [], []
    for root in c.datasets:
        for ep in DatasetReader(root).episodes():
            (val if ep.meta.get("town") in c.val_towns else train).append(ep)
    for root in c.lmdrive:
        for ep in LMDriveDataset(root).episodes():
            (val if ep.meta.get("town") in c.val_towns else train).append(ep)
    if not train:
        raise ValueError(f"no training episodes in {c.datasets + c.lmdrive} outside val towns {c.val_towns}")
    return train, val


def _save_state(out: Path, model: DSDrive, opt: torch.optim.Optimizer, step: int, tokenizer: DSDriveTokenizer):
    """Written beside ``out`` and swapped in by two renames; a kill at any point leaves a complete
    checkpoint that _finish_interrupted_save puts back at ``out``."""
    tmp, old = _save_siblings(out)
    shutil.rmtree(tmp, ignore_errors=True)  # half-written by a kill mid-save
    save_checkpoint(model, tmp)
    tokenizer.save(tmp / "tokenizer.json")
    state = opt.state_dict()
    tensors = {f"{i}.{k}": v for i, s in state["state"].items() for k, v in s.items() if torch.is_tensor(v)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "optimizer.safetensors"))
    # written last: its presence marks a complete checkpoint
    (tmp / "train_state.json").write_text(json.dumps({"step": step, "param_groups": state["param_groups"]}))
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _save_siblings(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".tmp"), out.with_name(out.name + ".old")


def _finish_interrupted_save(out: Path) -> None:
    """A kill between _save_state's renames leaves no ``out``: the newest complete checkpoint
    (``.tmp``, else ``.old``) becomes ``out`` again, so a resume does not restart at step 0."""
    if out.exists():
        return
    for candidate in _save_siblings(out):
        if (candidate / "train_state.json").exists():
            candidate.rename(out)
            log.warning("finished an interrupted checkpoint save: %s -> %s", candidate, out)
            return


def _load_state(ckpt: Path, model: DSDrive, opt: torch.optim.Optimizer) -> int:
    model.load_state_dict(load_checkpoint(ckpt).state_dict())
    meta = json.loads((ckpt / "train_state.json").read_text())
    flat = load_file(str(ckpt / "optimizer.safetensors"))
    state: dict[int, dict] = {}
    for key, v in flat.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"])


HEAD_MODULES = ("waypoint_head", "path_head", "speed_head")  # what a head_layout change swaps


def load_trunk(model: DSDrive, state: dict[str, torch.Tensor]) -> list[str]:
    """Load a checkpoint whose planning heads may differ from `model`'s (another head_layout): every
    other weight must match exactly. Returns the heads left at their init (trained from scratch)."""
    head = lambda k: k.split(".", 1)[0] in HEAD_MODULES  # noqa: E731
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if not head(k) or
                                                 k in model.state_dict()}, strict=False)
    if [k for k in missing if not head(k)] or unexpected:
        raise ValueError(f"checkpoint does not fit the model beyond its heads: missing "
                         f"{[k for k in missing if not head(k)][:5]}, unexpected {unexpected[:5]}")
    return sorted({k.split(".", 1)[0] for k in missing})


def plot_curves(csv_path: Path, png_path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key in LOSS_KEYS:
        vals = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
        ax.plot(steps, vals, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("DSDrive training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def process_rank() -> int:
    """This process's rank under torchrun (RANK), 0 in a single process."""
    return int(os.environ.get("RANK", "0"))


def train(c: TrainConfig) -> Path:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed + rank)
    random.seed(c.seed + rank)
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(c), indent=2))

    train_eps, val_eps = load_episodes(c)
    last = out / "last"
    if rank == 0:
        _finish_interrupted_save(last)
    if distributed:
        dist.barrier()  # every rank resumes from the same checkpoint
    init = load_checkpoint(c.init_from) if c.init_from else None
    if init is not None:  # `model` overrides change loss weights, or the head layout (new heads start fresh)
        cfg = DSDriveConfig.from_dict({**init.cfg.to_dict(), **c.model})
    else:
        cfg = preset(c.preset, **c.model)
    if (last / "tokenizer.json").exists():
        tokenizer = DSDriveTokenizer.load(last / "tokenizer.json")
    elif c.init_from:
        tokenizer = DSDriveTokenizer.load(Path(c.init_from) / "tokenizer.json")
    else:  # BPE on the teacher corpus (training towns only)
        tokenizer = DSDriveTokenizer.train(corpus(train_eps), vocab_size=cfg.vocab_size)
    train_ds = ClipDataset(train_eps, cfg, tokenizer, Augment(c.camera_shift_px, c.exposure_jitter), c.seed + rank)
    val_ds = ClipDataset(val_eps, cfg, tokenizer) if val_eps else None
    model = init_weights(DSDrive(cfg), c.seed).to(device)
    opt = make_optimizer(model, c)
    step = _load_state(last, model, opt) if (last / "train_state.json").exists() else 0
    if step:
        log.info("resumed from %s at step %d", last, step)
    elif init is not None:
        fresh = load_trunk(model, init.state_dict())
        log.info("fine-tuning from %s%s", c.init_from, f" (new heads: {', '.join(fresh)})" if fresh else "")
    ddp = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    if distributed:
        if c.startup_weight != 1.0 or c.dataset_weights or c.action_weights:
            raise ValueError("startup_weight, dataset_weights and action_weights need a single process "
                             "(no DistributedSampler weighting)")
        sampler = DistributedSampler(train_ds, seed=c.seed)
    elif c.startup_weight != 1.0 or c.dataset_weights or c.action_weights:
        weights = sample_weights(train_ds.items, c)
        sampler = WeightedRandomSampler(weights, len(weights), generator=torch.Generator().manual_seed(c.seed))
    else:
        sampler = None
    loader = DataLoader(train_ds, batch_size=c.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=c.workers, drop_last=True, collate_fn=lambda b: collate(b, cfg.pad_id),
                        persistent_workers=c.workers > 0)
    csv_path = out / "metrics.csv"
    fields = ["step", "lr", *LOSS_KEYS, "val_ade_m", "val_fde_m", "val_end_accuracy", "seconds"]
    if rank == 0 and not csv_path.exists():
        csv.writer(csv_path.open("w")).writerow(fields)
    t0, epoch = time.monotonic(), 0
    bar = tqdm(total=c.steps, initial=step, desc="train", disable=rank != 0, dynamic_ncols=True)
    while step < c.steps:
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        for batch in loader:
            if step >= c.steps:
                break
            model.train()
            for g in opt.param_groups:
                g["lr"] = lr_at(step, c)
            batch = {k: v.to(device) for k, v in batch.items() if k != "action"}
            batch["speed"] = drop_speed(batch["speed"], c.speed_dropout)
            batch["frame_mask"] = drop_history(batch["frame_mask"], c.history_dropout)
            o = train_step(ddp, opt, batch, c, device)
            step += 1
            bar.update(1)
            row = {}
            if rank == 0 and (step % c.log_every == 0 or step == c.steps):
                row = {"step": step, "lr": f"{lr_at(step - 1, c):.3g}", "seconds": f"{time.monotonic() - t0:.0f}",
                       **{k: f"{o[k].item():.4f}" for k in LOSS_KEYS if k in o}}
                bar.set_postfix(loss=row["loss"], wp=row["loss_waypoints"])
            if rank == 0 and val_ds is not None and (step % c.eval_every == 0 or step == c.steps):
                m = evaluate(model, val_ds, tokenizer, max_frames=c.eval_frames, text_frames=0)
                row.update({"step": step, "val_ade_m": f"{m['ade_m']:.3f}", "val_fde_m": f"{m['fde_m']:.3f}",
                             "val_end_accuracy": f"{m['end_accuracy']:.3f}"})
                tqdm.write(f"step {step}: val ADE {m['ade_m']:.2f} m FDE {m['fde_m']:.2f} m")
            if row:
                csv.writer(csv_path.open("a")).writerow([row.get(f, "") for f in fields])
            if rank == 0 and (step % c.save_every == 0 or step == c.steps):
                _save_state(last, model, opt, step, tokenizer)
                plot_curves(csv_path, out / "loss_curve.png")
        epoch += 1
    bar.close()
    if distributed:
        dist.barrier()  # rank 0's final save is complete before any rank returns `last`
        dist.destroy_process_group()
    return last

"""Training clips: the current frame plus up to H-1 earlier frames of the same instruction.

Sources are anything with `episodes()` yielding episodes with `len()` and `.frame(i)` — the
simulator's DatasetReader and the LMDrive-layout reader alike.
"""
from __future__ import annotations

import os

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ..frames.preprocess import Preprocessor
from ..model.config import DSDriveConfig
from ..model.reasoning_format import format_reasoning
from ..model.tokenizer import DSDriveTokenizer
from .augment import Augment


@dataclass(frozen=True)
class _Item:
    episode: object
    index: int


class PathSpeedLabels(NamedTuple):
    path: np.ndarray  # (P, 2) base_link points at 1..P x spacing metres along the future track (or plan)
    path_mask: np.ndarray  # (P,) bool: the track (plan) reaches that far
    speed_target: np.ndarray  # (C,) the speed `speed_horizon_s` ahead as two-hot bin weights (the CE target)

    @property
    def speed_class(self) -> int:
        """The bin nearest to that speed (accuracy figures): the heavier of the two weights."""
        return int(np.argmax(self.speed_target))


def _checkpoints(along: np.ndarray, xy: np.ndarray, cfg: DSDriveConfig) -> tuple[np.ndarray, np.ndarray]:
    """The points 1..P x path_spacing_m along a polyline `xy` (`along`: its cumulative distance from the
    ego), and whether the polyline reaches each (past its end: its last point, masked)."""
    d = np.arange(1, cfg.path_points + 1) * cfg.path_spacing_m
    return np.stack([np.interp(d, along, xy[:, 0]), np.interp(d, along, xy[:, 1])], axis=1), d <= along[-1]


def _speed_target(v: float, cfg: DSDriveConfig) -> np.ndarray:
    """Two-hot weights on the two bins around `v` whose expected speed is `v`. The runtime rebuilds
    waypoints from the expected class speed, so a one-hot target on the nearest bin (8.4 m/s -> 7) is the
    label's own error: rebuilt from the true path and nearest-bin speeds, validation waypoints are
    1.28 m off on 'go' frames, from two-hot 0.14."""
    bins = np.asarray(cfg.speed_bins, np.float64)
    v = float(np.clip(v, bins[0], bins[-1]))
    j = int(np.clip(np.searchsorted(bins, v), 1, len(bins) - 1))
    w = (v - bins[j - 1]) / (bins[j] - bins[j - 1])
    target = np.zeros(len(bins), np.float32)
    target[j - 1], target[j] = 1.0 - w, w
    return target


class EpisodeTrack:
    """An episode's poses, speeds and cumulative distance, read once for the path/speed labels."""

    def __init__(self, ep, rate_hz: float):
        recs = [ep.record(i) for i in range(len(ep))]
        self.xy = np.array([[r["pose"]["x"], r["pose"]["y"]] for r in recs], np.float64).reshape(-1, 2)
        self.yaw = np.array([r["pose"]["yaw"] for r in recs], np.float64)
        self.speed = np.array([r["speed"] for r in recs], np.float64)
        steps = np.linalg.norm(np.diff(self.xy, axis=0), axis=1)
        self.cum = np.concatenate([[0.0], np.cumsum(steps)])
        self.rate_hz = rate_hz

    def labels(self, i: int, cfg: DSDriveConfig) -> PathSpeedLabels:
        pts, mask = _checkpoints(self.cum[i:] - self.cum[i], self.xy[i:], cfg)
        c, s = np.cos(self.yaw[i]), np.sin(self.yaw[i])
        dx, dy = pts[:, 0] - self.xy[i, 0], pts[:, 1] - self.xy[i, 1]
        path = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1).astype(np.float32)
        j = min(i + int(round(cfg.speed_horizon_s * self.rate_hz)), len(self.speed) - 1)
        return PathSpeedLabels(path, mask, _speed_target(self.speed[j], cfg))


def plan_labels(waypoints, cfg: DSDriveConfig) -> PathSpeedLabels:
    """Path and speed labels from a timed plan (K, 2) in base_link, 1..K x waypoint_dt ahead: the
    checkpoints along the plan's polyline from the ego, and the plan's speed over the waypoint step
    centred `speed_horizon_s` ahead."""
    pts = np.vstack([np.zeros((1, 2)), np.asarray(waypoints, np.float64).reshape(-1, 2)])
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    path, mask = _checkpoints(along, pts, cfg)
    t, h, dt = np.arange(len(pts)) * cfg.waypoint_dt, cfg.speed_horizon_s, cfg.waypoint_dt
    v = (np.interp(h + dt / 2, t, along) - np.interp(h - dt / 2, t, along)) / dt
    return PathSpeedLabels(path.astype(np.float32), mask, _speed_target(v, cfg))


def labelled_by_plans(ep) -> bool:
    """DAgger drives (data.dagger): each frame's waypoints are the expert's plan from that state, while
    the drive's own future is mostly the model's (standing where the expert would go). Their path and
    speed labels come from the plan; every other episode's from its future track."""
    return "dagger" in (getattr(ep, "meta", None) or {})


def preprocessor_for(cfg: DSDriveConfig) -> Preprocessor:
    """The runtime's preprocessing, from the same fields export writes into config.json."""
    return Preprocessor(cfg.cameras, cfg.image_height, cfg.image_width, cfg.image_mean, cfg.image_std, 255.0)


class ClipDataset(Dataset):
    def __init__(self, episodes: list, cfg: DSDriveConfig, tokenizer: DSDriveTokenizer,
                 augment: Augment | None = None, seed: int = 0):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.augment = augment if augment is not None and augment.active else None
        self._seed, self._rng, self._rng_pid = seed, None, -1
        self._mean = np.asarray(cfg.image_mean, np.float32)
        self._std = np.asarray(cfg.image_std, np.float32)
        self.items = [_Item(ep, i) for ep in episodes for i in range(len(ep))]
        self.pre = preprocessor_for(cfg)
        self.tracks: dict[int, EpisodeTrack] = {}
        if cfg.head_layout == "path_speed":
            self.tracks = {id(ep): EpisodeTrack(ep, getattr(ep, "rate_hz", None) or 10.0) for ep in episodes
                           if not labelled_by_plans(ep)}

    def __len__(self) -> int:
        return len(self.items)

    def _process_rng(self) -> np.random.Generator:
        """One generator per process: DataLoader workers are forks and would repeat the parent's draws;
        torch gives each worker its own initial seed, which tells them apart."""
        if self._rng_pid != os.getpid():
            worker = torch.utils.data.get_worker_info() is not None
            self._rng = np.random.default_rng([self._seed, torch.initial_seed() % 2**32 if worker else 0])
            self._rng_pid = os.getpid()
        return self._rng

    def _images(self, ep, i: int) -> np.ndarray:
        # decoded on every use: a cache of normalized float frames would not fit in memory for a real
        # dataset. (NCAM, 3, H, W): a view of the preprocessor's buffer, valid until its next call
        return self.pre(ep.frame(i).images)[0]

    def __getitem__(self, k: int) -> dict:
        cfg = self.cfg
        item = self.items[k]
        ep, i = item.episode, item.index
        rec = ep.record(i)
        hist = cfg.history_frames
        images = np.zeros((hist, cfg.n_cameras, 3, cfg.image_height, cfg.image_width), np.float32)
        mask = np.zeros(hist, bool)
        speeds = np.zeros(hist, np.float32)  # each frame's own speed, as the runtime encoded it
        for h in range(hist):
            j = i - (hist - 1 - h)
            if j < 0:
                continue
            past = ep.record(j)
            # LMDrive clears its frame buffer when the instruction changes: train the same way
            if past["instruction_id"] == rec["instruction_id"]:
                images[h], mask[h], speeds[h] = self._images(ep, j), True, past["speed"]
        if self.augment is not None:
            images = self.augment(images, self._mean, self._std, self._process_rng())
        ids, imask = self.tokenizer.encode_instruction(rec["instruction"], cfg.max_instruction_tokens)
        if rec["teacher"]:
            reasoning = self.tokenizer.encode_reasoning(format_reasoning(rec["teacher"], rec["waypoints"]),
                                                        cfg.max_reasoning_tokens)
        else:  # no chain of thought (e.g. LMDrive data): nothing for the reasoning loss to learn
            reasoning = [cfg.bos_id]
        out = {
            "images": torch.from_numpy(images), "frame_mask": torch.from_numpy(mask),
            "instruction_ids": torch.from_numpy(ids[0]), "instruction_mask": torch.from_numpy(imask[0]),
            "speed": torch.tensor([float(rec["speed"])], dtype=torch.float32),
            "history_speed": torch.from_numpy(speeds[:-1]),
            "waypoints": torch.tensor(rec["waypoints"], dtype=torch.float32),
            "end": torch.tensor(int(rec["end"]), dtype=torch.long),
            "reasoning_ids": torch.tensor(reasoning, dtype=torch.long),
            "action": rec.get("action", ""),
        }
        if cfg.head_layout == "path_speed":
            track = self.tracks.get(id(ep))
            lab = track.labels(i, cfg) if track is not None else plan_labels(rec["waypoints"], cfg)
            out.update(path=torch.from_numpy(lab.path), path_mask=torch.from_numpy(lab.path_mask),
                       speed_target=torch.from_numpy(lab.speed_target))
        return out


def collate(items: list[dict], pad_id: int) -> dict:
    # default_collate stacks a worker's batch straight into shared memory (one copy of ~200 MB fewer)
    out = {k: default_collate([it[k] for it in items]) for k in items[0] if k not in ("reasoning_ids", "action")}
    longest = max(len(it["reasoning_ids"]) for it in items)
    r = torch.full((len(items), longest), pad_id, dtype=torch.long)
    for row, it in zip(r, items):
        row[: len(it["reasoning_ids"])] = it["reasoning_ids"]
    out["reasoning_ids"] = r
    out["action"] = [it["action"] for it in items]
    return out


def corpus(episodes: list) -> list[str]:
    """Text the BPE tokenizer is trained on: instructions and the reasoning targets."""
    texts = []
    for ep in episodes:
        for i in range(len(ep)):
            rec = ep.record(i)
            texts.append(rec["instruction"])
            if rec["teacher"]:
                texts.append(format_reasoning(rec["teacher"], rec["waypoints"]))
    return texts

"""Open-loop metrics: waypoint ADE/FDE, end-flag accuracy, reasoning token accuracy and
plan-reasoning consistency (does the action stated in the generated text match the predicted path?)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..model.dsdrive import DSDrive
from ..model.tokenizer import DSDriveTokenizer
from ..data.actions import action_from_text
from .data import ClipDataset, collate


def action_from_waypoints(waypoints: np.ndarray, speed: float, dt_s: float) -> str:
    """The action a path expresses: stop / slow / go / turn left / turn right (base_link, x fwd, y left)."""
    wp = np.asarray(waypoints, dtype=float)
    travelled = float(np.hypot(*wp[-1]))
    if travelled < 1.0:
        return "stop"
    seg = wp[-1] - wp[-2] if len(wp) > 1 else wp[-1]
    heading = math.degrees(math.atan2(seg[1], seg[0]))
    if abs(heading) > 25.0 and abs(wp[-1, 1]) > 1.5:
        return "turn left" if heading > 0 else "turn right"
    if speed > 1.0 and travelled / (dt_s * len(wp)) < 0.7 * speed - 0.3:
        return "slow"
    return "go"


@torch.inference_mode()
def greedy_text(model: DSDrive, prefix_kv: torch.Tensor, tokenizer: DSDriveTokenizer, max_tokens: int) -> list[str]:
    b, dev = prefix_kv.shape[2], prefix_kv.device
    ids = torch.full((b, 1), tokenizer.ids["bos"], dtype=torch.long, device=dev)
    out, done, past = [[] for _ in range(b)], torch.zeros(b, dtype=torch.bool, device=dev), prefix_kv
    for _ in range(max_tokens):
        logits, past = model.reasoner.step(ids, past)
        ids = logits[:, -1].argmax(-1, keepdim=True)
        done |= ids[:, 0] == tokenizer.ids["eos"]
        for row, (tok, d) in enumerate(zip(ids[:, 0].tolist(), done.tolist())):
            if not d:
                out[row].append(tok)
        if done.all():
            break
    return [tokenizer.decode(o) for o in out]


def by_action(actions: list[str], ade: list[float], cv_ade: list[float]) -> dict:
    """{expert action: {frames, ade_m, constant_velocity_ade_m}}: a mean ADE hides which
    situations fail (e.g. turns, ~15 % of frames, predicted as straight)."""
    a, m, cv = np.asarray(actions), np.asarray(ade), np.asarray(cv_ade)
    return {k: {"frames": int((a == k).sum()), "ade_m": float(m[a == k].mean()),
                "constant_velocity_ade_m": float(cv[a == k].mean())} for k in sorted(set(actions)) if k}


@torch.inference_mode()
def evaluate(model: DSDrive, dataset: ClipDataset, tokenizer: DSDriveTokenizer, max_frames: int = 256,
             batch_size: int = 16, text_frames: int = 64, max_tokens: int = 160) -> dict:
    model.eval()
    cfg = model.cfg
    n = min(len(dataset), max_frames)
    idx = np.linspace(0, len(dataset) - 1, n).astype(int).tolist()  # spread over all episodes
    loader = DataLoader(torch.utils.data.Subset(dataset, idx), batch_size=batch_size,
                        collate_fn=lambda b: collate(b, cfg.pad_id))
    ade, fde, end_ok, tok_ok, tok_n, agree, stated, texts = [], [], [], 0, 0, 0, 0, []
    cv_ade, cv_fde, actions, label_ade = [], [], [], []
    t = torch.arange(1, cfg.n_waypoints + 1, dtype=torch.float32) * cfg.waypoint_dt
    dev = next(model.parameters()).device
    for batch in loader:
        actions += batch["action"]
        batch = {k: v.to(dev) for k, v in batch.items() if k != "action"}
        out = model(batch)
        err = torch.linalg.norm(out["waypoints"] - batch["waypoints"], dim=-1)
        ade += err.mean(-1).tolist()
        fde += err[:, -1].tolist()
        # the constant-velocity baseline: straight ahead at the current speed
        cv = torch.stack([batch["speed"].cpu() * t, torch.zeros(len(t)).expand(len(batch["speed"]), -1)], -1)
        cv_err = torch.linalg.norm(cv - batch["waypoints"].cpu(), dim=-1)
        cv_ade += cv_err.mean(-1).tolist()
        cv_fde += cv_err[:, -1].tolist()
        if cfg.head_layout == "path_speed":  # the labels' own error: waypoints rebuilt from them
            rebuilt = model.rebuild_waypoints(batch["path"], batch["speed_target"], batch["speed"])
            label_ade += torch.linalg.norm(rebuilt - batch["waypoints"], dim=-1).mean(-1).tolist()
        end_ok += ((out["end_logits"].argmax(-1) == batch["end"]).float()).tolist()
        if "reasoning_logits" in out:
            target = batch["reasoning_ids"][:, 1:]
            valid = target != cfg.pad_id
            tok_ok += int(((out["reasoning_logits"].argmax(-1) == target) & valid).sum())
            tok_n += int(valid.sum())
        if cfg.lambda_reasoning > 0 and len(texts) < text_frames:
            # forward's prefix is the runtime's: the same history tokens (clip_tokens)
            generated = greedy_text(model, out["reasoner_kv"], tokenizer, max_tokens)
            for text, wp, speed in zip(generated, out["waypoints"].cpu().numpy(), batch["speed"][:, 0].tolist()):
                said = action_from_text(text)
                stated += said is not None
                agree += said == action_from_waypoints(wp, speed, cfg.waypoint_dt)
                texts.append(text)
    result = {"frames": n, "ade_m": float(np.mean(ade)), "fde_m": float(np.mean(fde)),
              "end_accuracy": float(np.mean(end_ok)),
              "constant_velocity_ade_m": float(np.mean(cv_ade)), "constant_velocity_fde_m": float(np.mean(cv_fde)),
              "by_action": by_action(actions, ade, cv_ade)}
    if label_ade:
        result["label_rebuild_ade_m"] = float(np.mean(label_ade))
    if tok_n:
        result["reasoning_token_accuracy"] = tok_ok / tok_n
    if texts:
        result.update(plan_reasoning_consistency=agree / len(texts), action_stated_share=stated / len(texts),
                      text_frames=len(texts), example_text=texts[0])
    return result

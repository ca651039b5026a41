"""Greedy text generation with the reasoner's KV cache."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .base import Runner


def generate(runner: Runner, prefix_kv: np.ndarray, bos: int, eos: int, max_tokens: int,
             before_step: Optional[Callable[[], object]] = None) -> list[int]:
    """Token ids after `bos` until `eos` (excluded) or `max_tokens`, one decode step per token.

    `before_step` runs before every decode step: the node passes a wait for the planner to be idle,
    so that text generation only uses the CPU between plans. A runner that keeps the KV cache on
    its device decodes itself (`generate_ids`, same contract; `before_step` may then run once per
    few steps)."""
    own = getattr(runner, "generate_ids", None)
    if own is not None:
        return own(prefix_kv, bos, eos, max_tokens, before_step)
    past, token, out = prefix_kv, bos, []
    ids = np.empty((prefix_kv.shape[2], 1), dtype=np.int64)
    for _ in range(max_tokens):
        if before_step is not None:
            before_step()
        ids[:] = token
        logits, past = runner.decode(ids, past)
        token = int(np.argmax(logits[0, -1]))
        if token == eos:
            break
        out.append(token)
    return out


def generate_recompute(runner: Runner, prefix_kv: np.ndarray, bos: int, eos: int, max_tokens: int) -> list[int]:
    """The same without a growing cache: the whole sequence again each step (reference for tests)."""
    seq = [bos]
    for _ in range(max_tokens):
        logits, _ = runner.decode(np.array([seq], dtype=np.int64), prefix_kv)
        token = int(np.argmax(logits[0, -1]))
        if token == eos:
            break
        seq.append(token)
    return seq[1:]

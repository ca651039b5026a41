"""Greedy text generation with the reasoner's KV cache."""
from __future__ import annotations

import numpy as np

from .base import Runner


def generate(runner: Runner, prefix_kv: np.ndarray, bos: int, eos: int, max_tokens: int) -> list[int]:
    """Token ids after `bos` until `eos` (excluded) or `max_tokens`, one decode step per token."""
    past, token, out = prefix_kv, bos, []
    ids = np.empty((prefix_kv.shape[2], 1), dtype=np.int64)
    for _ in range(max_tokens):
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

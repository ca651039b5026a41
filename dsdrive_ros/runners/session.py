"""One driving session on a runner: instruction tokens, the frame-history ring, resets, reasoning."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from .base import Runner
from .generate import generate
from .spec import ModelSpec

if TYPE_CHECKING:
    from ..model.tokenizer import DSDriveTokenizer


class PlannerSession:
    """Feeds the planner, keeps the last H-1 frames' tokens, resets like LMDrive.

    History is cleared when the instruction changes, when the end-of-instruction probability of the
    previous step exceeded the threshold (the manoeuvre is done), or when the caller says so (e.g. a
    bag loop). Not thread-safe: one caller at a time.
    """

    def __init__(self, spec: ModelSpec, runner: Runner, tokenizer: DSDriveTokenizer):
        self.spec, self.runner, self.tokenizer = spec, runner, tokenizer
        hist_shape = spec.fixed_shape("planner", "inputs", "history_tokens")
        self.inputs = {
            "history_tokens": np.zeros(hist_shape, dtype=np.float32),
            "history_mask": np.zeros(hist_shape[:2], dtype=bool),
            "speed": np.zeros((1, 1), dtype=np.float32),
        }
        self.instruction: str | None = None
        self.end_resets = 0  # history cleared by the end-of-instruction probability (training never does)
        self.set_instruction("")

    def set_instruction(self, text: str) -> None:
        if text == self.instruction:
            return
        self.instruction = text
        ids, mask = self.tokenizer.encode_instruction(text, self.spec.max_instruction_tokens)
        self.inputs["instruction_ids"], self.inputs["instruction_mask"] = ids, mask
        self.reset()

    def reset(self) -> None:
        self.inputs["history_mask"][:] = False

    def step(self, images: np.ndarray, instruction: str, speed: float) -> dict[str, np.ndarray]:
        """images (1, NCAM, 3, H, W) float32 preprocessed -> planner outputs for batch item 0."""
        self.set_instruction(instruction)
        self.inputs["images"] = images
        self.inputs["speed"][0, 0] = speed if np.isfinite(speed) else 0.0
        out = self.runner.plan(self.inputs)
        # shift the ring: oldest slot out, this frame in at the end
        tokens, mask = self.inputs["history_tokens"], self.inputs["history_mask"]
        if tokens.shape[1]:
            tokens[:, :-1], mask[:, :-1] = tokens[:, 1:], mask[:, 1:]
            tokens[:, -1], mask[:, -1] = out["frame_tokens"], True
        result = {"waypoints": out["waypoints"][0], "end_prob": float(out["end_prob"][0]),
                  "reasoner_kv": out["reasoner_kv"]}
        if result["end_prob"] > self.spec.end_threshold:
            self.end_resets += 1
            self.reset()
        return result

    def reason(self, result: dict, max_tokens: int | None = None,
               before_step: Callable[[], object] | None = None) -> str:
        tok = self.spec.tokens
        ids = generate(self.runner, result["reasoner_kv"], tok["bos"], tok["eos"],
                       max_tokens or self.spec.max_reasoning_tokens, before_step)
        return self.tokenizer.decode(ids)

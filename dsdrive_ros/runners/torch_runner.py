"""PyTorch eager on the model's safetensors: the comparison point for benchmarks (not the runtime path)."""
from __future__ import annotations

import numpy as np
import torch

from ..model.checkpoint import load_checkpoint
from .base import RunnerError
from .spec import ModelSpec


class TorchRunner:
    def __init__(self, spec: ModelSpec, precision: str = "fp32", device: str = "cpu"):
        if not (spec.dir / "model.safetensors").is_file():
            raise RunnerError(f"{spec.dir}/model.safetensors is missing: the torch backend needs the weights")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        if dtype is None:
            raise RunnerError(f"torch backend precision must be fp32, fp16 or bf16, not {precision!r}")
        self.spec, self.device, self.dtype = spec, device, dtype
        self.model = load_checkpoint(spec.dir, device=device).to(dtype)
        self.name = f"torch:{device}:{precision}"

    def _t(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        return t.to(self.dtype) if t.is_floating_point() else t

    @torch.inference_mode()
    def plan(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model.plan(**{k: self._t(v) for k, v in inputs.items()})
        return {k: out[k].float().cpu().numpy() for k in ("waypoints", "end_prob", "frame_tokens", "reasoner_kv")}

    @torch.inference_mode()
    def decode(self, input_ids: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, present = self.model.reasoner.step(self._t(input_ids), self._t(past_kv))
        return logits.float().cpu().numpy(), present.float().cpu().numpy()

"""Checkpoints are a folder: config.json + model.safetensors (+ tokenizer.json). Never pickle."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from .config import DSDriveConfig
from .dsdrive import DSDrive

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl"}


class CheckpointError(ValueError):
    pass


def save_checkpoint(model: DSDrive, out_dir: str | Path, extra: dict | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"model": model.cfg.to_dict(), **(extra or {})}, indent=2))
    # tied lm_head shares storage with the reasoner's embedding: store it once
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "reasoner.lm_head.weight"}
    save_file(state, str(out / "model.safetensors"))
    return out


def _resolve(path: Path) -> Path:
    if path.suffix in PICKLE_SUFFIXES or (path.is_dir() and any(path.glob("*.pt*"))
                                         and not (path / "model.safetensors").exists()):
        raise CheckpointError(
            f"{path}: pickle checkpoints (.pt/.pth/.bin/.ckpt) are refused because unpickling runs "
            "arbitrary code. Convert it to safetensors (config.json + model.safetensors).")
    if path.is_file() and path.suffix == ".safetensors":
        return path.parent
    if not (path / "model.safetensors").exists() or not (path / "config.json").exists():
        raise CheckpointError(f"{path}: expected a folder with config.json and model.safetensors")
    return path


def load_config(path: str | Path) -> DSDriveConfig:
    d = json.loads((_resolve(Path(path)) / "config.json").read_text())
    return DSDriveConfig.from_dict(d["model"])


def load_checkpoint(path: str | Path, device: str = "cpu") -> DSDrive:
    ckpt = _resolve(Path(path))
    model = DSDrive(load_config(ckpt))
    tensors = load_file(str(ckpt / "model.safetensors"), device=device)
    expected = {k: v for k, v in model.state_dict().items() if k != "reasoner.lm_head.weight"}
    for name, ref in expected.items():
        if name not in tensors:
            raise CheckpointError(f"{ckpt}: tensor {name!r} is missing (config.json does not match the weights)")
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise CheckpointError(f"{ckpt}: tensor {name!r} has shape {tuple(tensors[name].shape)} but "
                                  f"config.json implies {tuple(ref.shape)}")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(f"{ckpt}: unexpected tensor {unexpected[0]!r} (config.json does not match)")
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval()

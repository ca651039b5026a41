"""PyTorch DSDrive -> planner.onnx + reasoner.onnx + config.json + tokenizer.json, self-validated.

config.json is the single source of truth for every runtime: camera order, input size, normalization,
waypoint count and spacing, token ids, history length and the graphs' I/O.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn

from ..model.dsdrive import DSDrive

if TYPE_CHECKING:  # annotations only: bench/gpu_core.py imports runtime_config without `tokenizers`
    from ..model.tokenizer import DSDriveTokenizer

log = logging.getLogger(__name__)
FORMAT = "dsdrive-onnx/1"
PLANNER_INPUTS = ["images", "instruction_ids", "instruction_mask", "history_tokens", "history_mask", "speed"]
PLANNER_OUTPUTS = ["waypoints", "end_prob", "frame_tokens", "reasoner_kv"]
REASONER_INPUTS = ["input_ids", "past_kv"]
REASONER_OUTPUTS = ["logits", "present_kv"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Largest abs error ONNX Runtime vs PyTorch (same weights, same dtype) that a faithful export shows:
# fp32 agrees to ~1e-6; half precision rounds differently op by op (fp16: 10 mantissa bits, bf16: 7).
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2, "bf16": 2.5e-1}
BF16_REFUSED = ("bf16 ONNX is not exported: ONNX's Conv has no bfloat16 before opset 22 (torch's exporter "
                "stops at 20) and ONNX Runtime's CPU has no bf16 kernels to validate it. Export fp32 and "
                "let TensorRT build it in fp16, export --dtype fp16, or run bf16 with the torch backend "
                "(precision: bf16, from model.safetensors)")


class ExportValidationError(RuntimeError):
    pass


def weight_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


class PlannerGraph(nn.Module):
    """The graph's I/O stays float32 whatever the weights' dtype (config.json `io` is dtype-free):
    casts at the edges, none at all for an fp32 model (tracing drops a same-dtype `.to`)."""

    def __init__(self, model: DSDrive):
        super().__init__()
        self.model = model

    def forward(self, images, instruction_ids, instruction_mask, history_tokens, history_mask, speed):
        dt = weight_dtype(self.model)
        o = self.model.plan(images.to(dt), instruction_ids, instruction_mask, history_tokens.to(dt),
                            history_mask, speed.to(dt))
        return tuple(o[k].float() for k in PLANNER_OUTPUTS)


class ReasonerGraph(nn.Module):
    def __init__(self, model: DSDrive):
        super().__init__()
        self.reasoner = model.reasoner

    def forward(self, input_ids, past_kv):
        logits, present = self.reasoner.step(input_ids, past_kv.to(weight_dtype(self.reasoner)))
        return logits.float(), present.float()


def example_inputs(model: DSDrive, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but valid planner inputs (partly filled history, padded instruction); batch 1."""
    cfg = model.cfg
    batch = 1
    g = torch.Generator().manual_seed(seed)
    hist, length = cfg.history_frames - 1, cfg.max_instruction_tokens
    n_words = max(1, length // 2)
    imask = torch.arange(length)[None].expand(batch, -1) < n_words
    return {
        "images": torch.randn(batch, cfg.n_cameras, 3, cfg.image_height, cfg.image_width, generator=g),
        "instruction_ids": torch.randint(3, cfg.vocab_size, (batch, length), generator=g) * imask,
        "instruction_mask": imask.clone(),
        "history_tokens": torch.randn(batch, hist, cfg.n_query, cfg.dim, generator=g),
        "history_mask": torch.arange(hist)[None].expand(batch, -1) >= hist // 2,
        "speed": torch.rand(batch, 1, generator=g) * 10,
    }


def _kv_shape(model: DSDrive, batch, past) -> list:
    cfg = model.cfg
    return [cfg.reasoner_layers, 2, batch, cfg.reasoner_kv_heads, past, cfg.reasoner_head_dim]


def io_spec(model: DSDrive) -> dict:
    """Shapes (a name = a dynamic axis) and dtypes of both graphs, written into config.json.

    The planner is static (batch 1: the node plans one camera set at a time): with no dynamic axis,
    ONNX Runtime and TensorRT fold all shape arithmetic (the tiny planner drops from 1752 to 1261 nodes
    and ~9 % of its latency on the CPU). The reasoner keeps dynamic batch, sequence and cache lengths."""
    cfg = model.cfg
    f, i, b = "float32", "int64", "bool"
    hist, nq = cfg.history_frames - 1, cfg.n_query
    return {
        "planner": {
            "inputs": {
                "images": ([1, cfg.n_cameras, 3, cfg.image_height, cfg.image_width], f),
                "instruction_ids": ([1, cfg.max_instruction_tokens], i),
                "instruction_mask": ([1, cfg.max_instruction_tokens], b),
                "history_tokens": ([1, hist, nq, cfg.dim], f),
                "history_mask": ([1, hist], b),
                "speed": ([1, 1], f),
            },
            "outputs": {
                "waypoints": ([1, cfg.n_waypoints, 2], f),
                "end_prob": ([1], f),
                "frame_tokens": ([1, nq, cfg.dim], f),
                "reasoner_kv": (_kv_shape(model, 1, nq), f),
            },
        },
        "reasoner": {
            "inputs": {"input_ids": (["batch", "seq"], i), "past_kv": (_kv_shape(model, "batch", "past"), f)},
            "outputs": {"logits": (["batch", "seq", cfg.vocab_size], f),
                        "present_kv": (_kv_shape(model, "batch", "total"), f)},
        },
    }


def _dynamic_axes(spec: dict) -> dict:
    axes = {}
    for name, (shape, _) in {**spec["inputs"], **spec["outputs"]}.items():
        named = {d: s for d, s in enumerate(shape) if isinstance(s, str)}
        if named:
            axes[name] = named
    return axes


def runtime_config(model: DSDrive, tokenizer: DSDriveTokenizer, preset: str | None,
                   data_files: dict[str, str] | None = None) -> dict:
    """data_files: {"planner_data": "planner.onnx.data", ...} for graphs with external weights."""
    cfg = model.cfg
    io = {g: {k: {n: {"shape": s, "dtype": d} for n, (s, d) in v.items()} for k, v in spec.items()}
          for g, spec in io_spec(model).items()}
    return {
        "format": FORMAT,
        "preset": preset,
        "model": cfg.to_dict(),
        "cameras": list(cfg.cameras),
        "image": {"height": cfg.image_height, "width": cfg.image_width, "channel_order": "rgb",
                  "mean": list(cfg.image_mean), "std": list(cfg.image_std), "scale": 255.0},
        "waypoints": {"count": cfg.n_waypoints, "dt_s": cfg.waypoint_dt, "frame_id": "base_link"},
        # how the graph makes `waypoints` (both layouts give the same outputs; DSDrive.rebuild_waypoints)
        "heads": {"layout": cfg.head_layout, **({"path_points": cfg.path_points,
                                                   "path_spacing_m": cfg.path_spacing_m,
                                                   "speed_bins_mps": list(cfg.speed_bins),
                                                   "brake_threshold": cfg.brake_threshold}
                                                  if cfg.head_layout == "path_speed" else {})},
        "history_frames": cfg.history_frames,
        "query_tokens": cfg.n_query,
        "max_instruction_tokens": cfg.max_instruction_tokens,
        "max_reasoning_tokens": cfg.max_reasoning_tokens,
        "tokens": dict(tokenizer.ids),
        "end_threshold": cfg.end_threshold,
        "weights_dtype": next(k for k, v in DTYPES.items() if v == weight_dtype(model)),
        "files": {"planner": "planner.onnx", "reasoner": "reasoner.onnx", "tokenizer": "tokenizer.json",
                  **(data_files or {})},
        "io": io,
    }


def _export(module: nn.Module, args: tuple, path: Path, spec: dict, opset: int, external_data: bool) -> str | None:
    """Export into a scratch folder (torch's loose weight files of a > 2 GB graph land there), then
    write `path` with its weights inline or in one `<name>.data` file (its name returned)."""
    from .external_data import consolidate, data_file_name  # onnx: not needed by runtime_config's users

    scratch = path.parent / f".{path.stem}.export"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        torch.onnx.export(module, args, str(scratch / path.name), input_names=list(spec["inputs"]),
                          output_names=list(spec["outputs"]), dynamic_axes=_dynamic_axes(spec),
                          opset_version=opset, dynamo=False)
        stale = path.with_name(data_file_name(path.name))
        stale.unlink(missing_ok=True)  # a re-export into the same folder must not keep old weights
        data = consolidate(scratch / path.name, path, force=external_data)
        return None if data is None else data.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def export_onnx(model: DSDrive, tokenizer: DSDriveTokenizer, out_dir: str | Path, preset: str | None = None,
                opset: int = 17, tolerance: float | None = None, external_data: bool = False) -> dict:
    """Export both graphs, write config.json + tokenizer.json, validate against PyTorch.

    The model is exported in its own dtype (cast it first for fp16). `external_data`: weights in
    `<graph>.onnx.data` even for a graph under 2 GB; a planner over 2 GB gets it, and then the reasoner
    too (one layout for the whole model). Returns the
    validation report; raises ExportValidationError above `tolerance` (default: TOLERANCE[dtype]).
    """
    if tokenizer.vocab_size > model.cfg.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {model.cfg.vocab_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    spec = io_spec(model)
    dtype_name = next(k for k, v in DTYPES.items() if v == weight_dtype(model))
    if dtype_name == "bf16":
        raise ValueError(BF16_REFUSED)
    tolerance = TOLERANCE[dtype_name] if tolerance is None else tolerance
    x = example_inputs(model)
    data_files: dict[str, str | None] = {}
    with torch.no_grad():
        log.info("exporting planner.onnx (%s)", dtype_name)
        data_files["planner_data"] = _export(PlannerGraph(model), tuple(x[k] for k in PLANNER_INPUTS),
                                             out / "planner.onnx", spec["planner"], opset, external_data)
        # a model too large for one graph keeps every graph's weights beside it: one layout to ship
        external_data = external_data or data_files["planner_data"] is not None
        past = PlannerGraph(model)(*(x[k] for k in PLANNER_INPUTS))[PLANNER_OUTPUTS.index("reasoner_kv")]
        log.info("exporting reasoner.onnx (%s)", dtype_name)
        data_files["reasoner_data"] = _export(ReasonerGraph(model), (torch.tensor([[tokenizer.ids["bos"], 5, 6]]),
                                                                    past),
                                              out / "reasoner.onnx", spec["reasoner"], opset, external_data)
    tokenizer.save(out / "tokenizer.json")
    cfg = runtime_config(model, tokenizer, preset, {k: v for k, v in data_files.items() if v})
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    report = validate_export(model, out)
    worst = max(report.values())
    if worst > tolerance:
        raise ExportValidationError(f"ONNX Runtime differs from PyTorch by {worst:.3g} > {tolerance:g}: {report}")
    return report


def validate_export(model: DSDrive, out_dir: Path, seeds: tuple[int, ...] = (1, 2)) -> dict[str, float]:
    """Max abs error ONNX Runtime vs PyTorch per output, over random inputs and reasoner lengths."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # No second, pre-packed copy of the MatMul weights: the `1b` planner is 5 GB in fp32 and the
    # PyTorch model stays in memory beside it (the export's peak must stay under 12 GB).
    opts.add_session_config_entry("session.disable_prepacking", "1")
    planner = ort.InferenceSession(str(out_dir / "planner.onnx"), opts, providers=["CPUExecutionProvider"])
    reasoner = ort.InferenceSession(str(out_dir / "reasoner.onnx"), opts, providers=["CPUExecutionProvider"])
    err: dict[str, float] = {}

    def note(name, a, b):
        err[name] = max(err.get(name, 0.0), float(np.max(np.abs(np.asarray(a) - b.detach().float().numpy()))))

    plan_graph, step_graph = PlannerGraph(model), ReasonerGraph(model)  # PyTorch with the same casts
    g = torch.Generator().manual_seed(0)
    for seed in seeds:
        x = example_inputs(model, seed=seed)
        with torch.no_grad():
            ref = dict(zip(PLANNER_OUTPUTS, plan_graph(*(x[k] for k in PLANNER_INPUTS))))
        got = planner.run(PLANNER_OUTPUTS, {k: v.numpy() for k, v in x.items()})
        for name, value in zip(PLANNER_OUTPUTS, got):
            note(f"planner.{name}", value, ref[name])
        # reasoner batch 1 and 2 (its batch axis is dynamic): a second, scaled copy of the prefix
        past = torch.cat([ref["reasoner_kv"], 0.5 * ref["reasoner_kv"]][:seed], dim=2)
        for t in (1, 7):  # one decode step and a multi-token prompt on a growing cache
            ids = torch.randint(3, model.cfg.vocab_size, (past.shape[2], t), generator=g)
            with torch.no_grad():
                logits, present = step_graph(ids, past)
            got_logits, got_present = reasoner.run(REASONER_OUTPUTS, {"input_ids": ids.numpy(),
                                                                      "past_kv": past.numpy()})
            note("reasoner.logits", got_logits, logits)
            note("reasoner.present_kv", got_present, present)
            past = present
    for name, e in sorted(err.items()):
        log.info("max abs error %-24s %.3g", name, e)
    return err

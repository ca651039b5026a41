"""Runtimes without ROS: the torch runner (static KV cache), ONNX Runtime's IO-binding decode, `auto`'s
fallback chain with unavailable backends (simulated by import failure), GPU-style preprocessing, and
external-data models."""
from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from dsdrive_ros.frames.preprocess import Preprocessor
from dsdrive_ros.frames.preprocess_torch import TorchPreprocessor
from dsdrive_ros.runners import (ModelSpec, ModelSpecError, PlannerSession, RunnerError, RunnerOptions,
                                 load_tokenizer, select_runner)
from dsdrive_ros.runners import select as select_mod
from dsdrive_ros.runners.generate import generate_recompute

INSTRUCTIONS = ("turn left at the next intersection", "stop at the traffic light", "follow the lane")


@pytest.fixture(scope="module")
def spec(model_dir: Path) -> ModelSpec:
    return ModelSpec.load(model_dir)


def _images(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 4, 3, 128, 224)).astype(np.float32)


def test_torch_runner_static_kv_cache_writes_the_same_text_as_onnxruntime(spec: ModelSpec) -> None:
    """Same weights, two runtimes: the torch runner's device-side decode (static cache, tokens read
    every few steps) and ONNX Runtime's IO-binding decode give the same greedy text."""
    tok = load_tokenizer(spec)
    ort_runner = select_runner(spec, "onnxruntime", RunnerOptions(device="cpu", threads=1)).runner
    torch_runner = select_runner(spec, "torch", RunnerOptions(device="cpu", threads=1)).runner
    assert torch_runner.name == "torch:cpu:fp32" and ort_runner.name == "onnxruntime:CPUExecutionProvider"
    texts = set()
    for i, instruction in enumerate(INSTRUCTIONS):
        a, b = PlannerSession(spec, ort_runner, tok), PlannerSession(spec, torch_runner, tok)
        ra, rb = a.step(_images(i), instruction, 3.0), b.step(_images(i), instruction, 3.0)
        assert np.abs(ra["waypoints"] - rb["waypoints"]).max() < 1e-4
        assert np.abs(ra["reasoner_kv"] - rb["reasoner_kv"]).max() < 1e-4
        text = a.reason(ra, 40)
        assert b.reason(rb, 40) == text and text
        texts.add(text)
    assert len(texts) > 1, "every input gave the same text: the comparison would be vacuous"


def test_static_cache_and_io_binding_equal_recomputation(spec: ModelSpec) -> None:
    """Past the prefix and across several host reads (SYNC_EVERY): no eos, so the full length."""
    tok = load_tokenizer(spec)
    runner = select_runner(spec, "torch", RunnerOptions(device="cpu", threads=1)).runner
    ort_runner = select_runner(spec, "onnxruntime", RunnerOptions(device="cpu", threads=1)).runner
    kv = PlannerSession(spec, ort_runner, tok).step(_images(7), INSTRUCTIONS[0], 5.0)["reasoner_kv"]
    bos = spec.tokens["bos"]
    reference = generate_recompute(ort_runner, kv, bos, eos=-1, max_tokens=40)
    assert runner.generate_ids(kv, bos, -1, 40) == reference
    assert ort_runner.generate_ids(kv, bos, -1, 40) == reference
    # the cache holds query_tokens + max_reasoning_tokens: never more tokens than that
    short = ModelSpec(spec.dir, {**spec.raw, "max_reasoning_tokens": 20})
    short_runner = select_runner(short, "torch", RunnerOptions(device="cpu", threads=1)).runner
    assert short_runner.generate_ids(kv, bos, -1, 10**6) == reference[:20]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torch_runner_half_precision_plans_close_to_fp32(spec: ModelSpec, precision: str) -> None:
    fp32 = select_runner(spec, "torch", RunnerOptions("fp32", device="cpu", threads=1)).runner
    half = select_runner(spec, "torch", RunnerOptions(precision, device="cpu", threads=1)).runner
    assert half.name == f"torch:cpu:{precision}"
    tok = load_tokenizer(spec)
    a = PlannerSession(spec, fp32, tok).step(_images(3), INSTRUCTIONS[1], 2.0)
    b = PlannerSession(spec, half, tok).step(_images(3), INSTRUCTIONS[1], 2.0)
    assert np.abs(a["waypoints"] - b["waypoints"]).max() < (0.05 if precision == "fp16" else 0.3)


# ------------------------------------------------------------------ backend selection

def _block_import(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """`import name` raises ImportError, as on a machine without that package."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "dsdrive_ros.runners.torch_runner", raising=False)


def test_auto_passes_over_backends_that_cannot_be_imported(spec: ModelSpec, monkeypatch) -> None:
    _block_import(monkeypatch, "tensorrt", "torch")
    monkeypatch.setattr(select_mod, "gpu_device_present", lambda: True)  # a GPU machine without torch
    sel = select_runner(spec, "auto", RunnerOptions())
    assert sel.runner.name == "onnxruntime:CPUExecutionProvider"
    assert list(sel.passed_over) == ["tensorrt", "onnxruntime-cuda", "torch-cuda"]
    assert "TensorRT is not importable" in sel.passed_over["tensorrt"]
    assert "no CUDAExecutionProvider" in sel.passed_over["onnxruntime-cuda"]
    assert "import torch failed" in sel.passed_over["torch-cuda"]
    line = sel.summary()
    assert line.startswith("backend auto: onnxruntime:CPUExecutionProvider (passed over - tensorrt: ")
    assert "\n" not in line


def test_auto_falls_back_when_tensorrt_imports_but_fails(spec: ModelSpec, monkeypatch) -> None:
    """The old `auto` stopped the node here: tensorrt importable, but no usable CUDA behind it."""
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # a broken install
    for name in ("cuda", "cuda.bindings", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    sel = select_runner(spec, "auto", RunnerOptions())
    assert sel.runner.name == "onnxruntime:CPUExecutionProvider"
    assert "import of cuda" in sel.passed_over["tensorrt"], sel.passed_over


def test_auto_on_device_cpu_goes_straight_to_onnxruntime_cpu(spec: ModelSpec) -> None:
    sel = select_runner(spec, "auto", RunnerOptions(device="cpu"))
    assert sel.runner.name == "onnxruntime:CPUExecutionProvider"
    assert set(sel.passed_over.values()) == {"device is cpu"}


def test_a_named_backend_that_fails_is_an_error_not_a_fallback(spec: ModelSpec, monkeypatch) -> None:
    from dsdrive_ros.export.tensorrt_build import TensorRTUnavailable

    _block_import(monkeypatch, "tensorrt")
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not importable"):
        select_runner(spec, "tensorrt", RunnerOptions())
    with pytest.raises(RunnerError, match="no CUDAExecutionProvider.*requirements-gpu.txt"):
        select_runner(spec, "onnxruntime", RunnerOptions(device="cuda:0"))
    if not torch.cuda.is_available():
        with pytest.raises(RunnerError, match="sees no CUDA GPU"):
            select_runner(spec, "torch", RunnerOptions(device="cuda:0"))
    with pytest.raises(RunnerError, match="no int8"):
        select_runner(spec, "torch", RunnerOptions("int8", device="cpu"))


# ------------------------------------------------------------------ preprocessing on the device

@pytest.mark.parametrize("hw,tol", [((128, 224), 1e-6), ((256, 448), 0.02), ((96, 160), 0.02), ((240, 400), 0.06)])
def test_torch_preprocessing_matches_opencv(spec: ModelSpec, hw: tuple[int, int], tol: float) -> None:
    """Same size: the same normalisation; 2x shrink: one grey level (OpenCV rounds to uint8 first);
    other sizes: within a few grey levels (area vs INTER_AREA weights) on a smooth image."""
    cams = spec.cameras
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    frames = {c: np.stack([xx * 255 // hw[1], yy * 255 // hw[0], (xx + yy) * 200 // sum(hw) + 10 * i], -1).astype(np.uint8)
              for i, c in enumerate(cams)}
    ref = Preprocessor.from_spec(spec.image, cams)(frames)
    got = TorchPreprocessor.from_spec(spec.image, cams, "cpu")(frames)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert np.abs(got.numpy() - ref).max() <= tol
    with pytest.raises(KeyError, match="missing frames"):
        TorchPreprocessor.from_spec(spec.image, cams, "cpu")({cams[0]: frames[cams[0]]})


# ------------------------------------------------------------------ external data

def test_a_missing_external_data_file_is_a_clear_error(tmp_path: Path) -> None:
    from dsdrive_ros.export.onnx_export import export_onnx
    from dsdrive_ros.export.random_model import random_model

    model, tokenizer = random_model("tiny", seed=1)
    export_onnx(model, tokenizer, tmp_path, preset="tiny", external_data=True)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["files"]["planner_data"] == "planner.onnx.data" and cfg["weights_dtype"] == "fp32"
    spec = ModelSpec.load(tmp_path)
    assert select_runner(spec, "onnxruntime", RunnerOptions(device="cpu", threads=1)).runner.name.startswith("onnxruntime")
    shutil.move(tmp_path / "reasoner.onnx.data", tmp_path / "elsewhere")
    with pytest.raises(ModelSpecError, match="reasoner.onnx.data is missing.*copy it with the model"):
        ModelSpec.load(tmp_path)


def test_loose_weight_files_become_one_data_file(spec: ModelSpec, tmp_path: Path) -> None:
    """What torch writes for a > 2 GB graph (one file per tensor) is rewritten into <graph>.onnx.data,
    streamed tensor by tensor; ONNX Runtime computes the same from it."""
    import onnx
    import onnxruntime as ort

    from dsdrive_ros.export.external_data import consolidate
    from dsdrive_ros.runners.base import zero_inputs

    loose = tmp_path / "loose"
    loose.mkdir()
    onnx.save_model(onnx.load(str(spec.file("planner"))), str(loose / "planner.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=False, size_threshold=1024)
    assert len(list(loose.iterdir())) > 50
    out = tmp_path / "one"
    out.mkdir()
    assert consolidate(loose / "planner.onnx", out / "planner.onnx") == out / "planner.onnx.data"
    assert sorted(f.name for f in out.iterdir()) == ["planner.onnx", "planner.onnx.data"]
    feeds = zero_inputs(spec)
    feeds["images"] = _images(4)
    ref = ort.InferenceSession(str(spec.file("planner")), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = ort.InferenceSession(str(out / "planner.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


def test_fp16_export_validates_at_its_tolerance_and_bf16_is_refused(tmp_path: Path) -> None:
    import subprocess

    from dsdrive_ros.export.onnx_export import TOLERANCE, export_onnx
    from dsdrive_ros.export.random_model import random_model

    model, tokenizer = random_model("tiny", seed=2)
    report = export_onnx(model.half(), tokenizer, tmp_path / "fp16", preset="tiny")
    assert TOLERANCE["fp32"] < max(report.values()) <= TOLERANCE["fp16"], report  # really half precision
    spec = ModelSpec.load(tmp_path / "fp16")
    assert spec.weights_dtype == "fp16" and (tmp_path / "fp16" / "planner.onnx").stat().st_size < 12 << 20
    runner = select_runner(spec, "onnxruntime", RunnerOptions(device="cpu")).runner
    assert runner.name == "onnxruntime:CPUExecutionProvider:fp16-weights"
    out = runner.plan({k: v for k, v in PlannerSession(spec, runner, load_tokenizer(spec)).inputs.items()}
                      | {"images": _images(0)})
    assert out["waypoints"].dtype == np.float32 and np.isfinite(out["waypoints"]).all()
    r = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "export" / "to_onnx.py"), "--random",
                        "--dtype", "bf16", "--out", str(tmp_path / "bf16")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "bf16 ONNX is not exported" in r.stderr and not (tmp_path / "bf16").exists()


def test_int8_quantization_reads_and_writes_external_data(tmp_path: Path) -> None:
    from dsdrive_ros.export.onnx_export import export_onnx
    from dsdrive_ros.export.quantize import quantize_planner
    from dsdrive_ros.export.random_model import random_model

    model, tokenizer = random_model("tiny", seed=5)
    export_onnx(model, tokenizer, tmp_path, preset="tiny", external_data=True)
    report = quantize_planner(tmp_path, Path(__file__).parents[1] / "samples" / "sample", n_calib=4, n_eval=4)
    assert report["calibration_frames"] == 4
    assert (tmp_path / "planner.int8.onnx.data").is_file() and not list(tmp_path.glob("*.prep.onnx*"))
    runner = select_runner(ModelSpec.load(tmp_path), "onnxruntime", RunnerOptions("int8", device="cpu")).runner
    assert runner.name == "onnxruntime:CPUExecutionProvider:int8"

"""TensorRT pieces that need no GPU: cache keys, profile shapes, and a clear exit without TensorRT."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import torch

from dsdrive_ros.export.onnx_export import export_onnx
from dsdrive_ros.export.random_model import random_model
from dsdrive_ros.export.tensorrt_build import (BuildSettings, cache_key, engine_key, engine_path, graph_files,
                                               profile_shapes, sha256_file)
from dsdrive_ros.runners import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def test_cache_key_changes_with_each_part():
    settings = BuildSettings("fp16", {"images": ((1, 4), (1, 4), (1, 4))}, 2.0)
    base = cache_key(["a" * 64], "10.3.0", "87", settings)
    assert base == cache_key(["a" * 64], "10.3.0", "87", BuildSettings("fp16", {"images": ((1, 4),) * 3}, 2.0))
    others = {cache_key(["b" * 64], "10.3.0", "87", settings),
              cache_key(["a" * 64, "c" * 64], "10.3.0", "87", settings),  # an external-data file
              cache_key(["a" * 64], "10.4.0", "87", settings), cache_key(["a" * 64], "10.3.0", "90", settings),
              cache_key(["a" * 64], "10.3.0", "87", BuildSettings("int8", settings.profiles, 2.0)),
              cache_key(["a" * 64], "10.3.0", "87", BuildSettings("fp16", settings.profiles, 4.0)),
              cache_key(["a" * 64], "10.3.0", "87", BuildSettings("fp16", {"images": ((1, 4), (1, 4), (1, 5))}))}
    assert base not in others and len(others) == 7
    with pytest.raises(ValueError, match="precision"):
        BuildSettings("fp8", {})
    p = engine_path(Path("/c"), "planner", base)
    assert p.path.name.startswith("planner.") and p.path.suffix == ".engine"


def test_key_changes_with_the_weights_of_an_external_data_graph(tmp_path):
    """Same graph, other weights: the .onnx files are byte-identical (their weights are in
    <graph>.onnx.data), yet the engine key changes, so a retrained model never loads a stale engine."""
    specs = []
    for retrained in (False, True):
        model, tokenizer = random_model("tiny", seed=0)
        if retrained:  # new embeddings: large tensors, in the data files (small ones stay in the graph)
            with torch.no_grad():
                model.tok_emb.weight.add_(0.01)
                model.reasoner.tok_emb.weight.add_(0.01)
        out = tmp_path / ("retrained" if retrained else "original")
        export_onnx(model, tokenizer, out, preset="tiny", external_data=True)
        specs.append(ModelSpec.load(out))
    a, b = specs
    for graph in ("planner", "reasoner"):
        assert graph_files(a.file(graph)) == [a.file(graph), a.data_file(graph)]
        assert sha256_file(a.file(graph)) == sha256_file(b.file(graph)), "the graphs should be identical"
        assert sha256_file(a.data_file(graph)) != sha256_file(b.data_file(graph))
        key_a, settings = engine_key(a, graph, "fp16", "10.3.0", "87")
        assert engine_key(a, graph, "fp16", "10.3.0", "87")[0] == key_a
        assert engine_key(b, graph, "fp16", "10.3.0", "87")[0] != key_a
        assert engine_key(a, graph, "fp16", "10.3.0", "87", workspace_gib=4.0)[0] != key_a
    # the profile's longest reasoning is the model's max_reasoning_tokens: it is in the key too
    _, settings = engine_key(a, "reasoner", "fp16", "10.3.0", "87")
    assert settings.profiles["input_ids"][2][1] == a.max_reasoning_tokens
    a.raw["max_reasoning_tokens"] = 128
    assert engine_key(a, "reasoner", "fp16", "10.3.0", "87")[0] != key_a


def test_profile_shapes_cover_dynamic_axes(model_dir):
    spec = ModelSpec.load(model_dir)
    planner = profile_shapes(spec, "planner")
    assert planner["images"][0] == planner["images"][2] == (1, 4, 3, 128, 224)
    reasoner = profile_shapes(spec, "reasoner", max_batch=2)
    lo, opt, hi = reasoner["past_kv"]
    assert lo[4] == spec.query_tokens and hi[4] == spec.query_tokens + spec.max_reasoning_tokens
    assert lo[4] <= opt[4] <= hi[4] and hi[2] == 2
    assert reasoner["input_ids"][2] == (2, spec.max_reasoning_tokens)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT present: the build runs")
def test_to_tensorrt_exits_clearly_without_tensorrt(model_dir):
    r = subprocess.run([sys.executable, str(ROOT / "export/to_tensorrt.py"), "--onnx-dir", str(model_dir),
                        "--precision", "fp16", "--build-only"], capture_output=True, text=True)
    assert r.returncode == 3
    assert "TensorRT is not importable" in r.stderr

"""TensorRT pieces that need no GPU: cache keys, profile shapes, and a clear exit without TensorRT."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dsdrive_ros.export.tensorrt_build import cache_key, engine_path, profile_shapes
from dsdrive_ros.runners import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def test_cache_key_changes_with_each_part():
    base = cache_key("a" * 64, "10.3.0", "87", "fp16")
    assert base == cache_key("a" * 64, "10.3.0", "87", "fp16")
    others = {cache_key("b" * 64, "10.3.0", "87", "fp16"), cache_key("a" * 64, "10.4.0", "87", "fp16"),
              cache_key("a" * 64, "10.3.0", "90", "fp16"), cache_key("a" * 64, "10.3.0", "87", "int8")}
    assert base not in others and len(others) == 4
    with pytest.raises(ValueError, match="precision"):
        cache_key("a" * 64, "10.3.0", "87", "fp8")
    p = engine_path(Path("/c"), "planner", base)
    assert p.path.name.startswith("planner.") and p.path.suffix == ".engine"


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

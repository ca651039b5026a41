"""bench/gpu_core.py runs where only torch and numpy are installed (a bare GPU machine): here on the
CPU with the tiny preset, every other installed package made unimportable."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run before the bench: any top-level import of an installed distribution other than torch, numpy and
# what torch itself requires fails, as it would on a machine that has only those.
_ONLY_TORCH_AND_NUMPY = r"""
import importlib.abc, importlib.metadata as md, re, runpy, sys

def requirements(dist, seen):
    name = re.split(r"[^A-Za-z0-9_.-]", dist, maxsplit=1)[0].lower().replace("_", "-")
    if name in seen:
        return seen
    seen.add(name)
    try:
        reqs = md.requires(name) or []
    except md.PackageNotFoundError:
        return seen
    for r in reqs:
        if "extra ==" not in r:
            requirements(r, seen)
    return seen

allowed = requirements("torch", set()) | requirements("numpy", set()) | {"dsdrive-ros"}  # and this tree
owners = {top: {d.lower().replace("_", "-") for d in ds} for top, ds in md.packages_distributions().items()}
blocked = []

class OnlyTorchAndNumpy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if "." not in name and name in owners and not owners[name] & allowed:
            blocked.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not torch/numpy)", name=name)
        return None

sys.meta_path.insert(0, OnlyTorchAndNumpy())
sys.argv = ["gpu_core.py"] + sys.argv[1:]
try:
    runpy.run_path("bench/gpu_core.py", run_name="__main__")
finally:
    print("BLOCKED", sorted(set(blocked)), file=sys.stderr)
"""


def test_gpu_core_runs_with_only_torch_and_numpy(tmp_path: Path) -> None:
    out = tmp_path / "gpu_core.json"
    r = subprocess.run([sys.executable, "-c", _ONLY_TORCH_AND_NUMPY, "--preset", "tiny", "--device", "cpu",
                        "--precision", "fp32", "--seconds", "1.5", "--warmup-s", "0.5", "--threads", "1",
                        "--max-tokens", "8", "--camera-hw", "128", "224", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["run"].startswith("CPU smoke run") and res["backend"] == "torch:cpu:fp32"
    assert res["reasoning_off"]["plans"] > 0 and res["reasoning_on"]["plans"] > 0
    assert res["reasoning_off"]["reasoner_tokens"] == 0
    assert res["reasoning_on"]["reasoner_tokens"] > 0, "the reasoner did not stream while planning"
    assert res["reasoning_on"]["planning_ms"]["p50"] > 0

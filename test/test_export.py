"""Export: ONNX Runtime == PyTorch, KV-cached generation == recomputation, I/O checks, checkpoints."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dsdrive_ros.export.onnx_export import export_onnx, validate_export
from dsdrive_ros.export.random_model import random_model
from dsdrive_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dsdrive_ros.runners import ModelSpec, ModelSpecError, PlannerSession, RunnerError, load_tokenizer, make_runner
from dsdrive_ros.runners.generate import generate, generate_recompute

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, tokenizer = random_model("tiny", seed=3)
    with torch.no_grad():  # livelier reasoner weights so greedy text is not one repeated token
        for p in model.reasoner.parameters():
            p.mul_(2.0)
    out = tmp_path_factory.mktemp("model")
    save_checkpoint(model, out)
    report = export_onnx(model, tokenizer, out, preset="tiny")
    return model, out, report


def test_onnxruntime_matches_pytorch(exported):
    model, out, report = exported
    assert set(report) >= {"planner.waypoints", "planner.end_prob", "planner.frame_tokens", "planner.reasoner_kv",
                           "reasoner.logits", "reasoner.present_kv"}
    assert max(report.values()) < 1e-4
    again = validate_export(model, out, seeds=(5,))
    assert max(again.values()) < 1e-4


def test_kv_cached_generation_equals_recomputation(exported):
    _, out, _ = exported
    spec = ModelSpec.load(out)
    runner = make_runner(spec, "onnxruntime")
    session = PlannerSession(spec, runner, load_tokenizer(spec))
    rng = np.random.default_rng(0)
    bos = spec.tokens["bos"]
    distinct = []
    # random weights can settle on one repeated token for some inputs: every sequence must match, and
    # at least one must be varied, or the comparison would be vacuous
    for instruction in ("turn left", "go straight at the junction", "stop at the light"):
        session.reset()
        result = session.step(rng.standard_normal((1, 4, 3, 128, 224)).astype(np.float32), instruction, 3.0)
        cached = generate(runner, result["reasoner_kv"], bos, eos=-1, max_tokens=50)
        full = generate_recompute(runner, result["reasoner_kv"], bos, eos=-1, max_tokens=50)
        assert len(cached) == 50
        assert cached == full
        distinct.append(len(set(cached)))
    assert max(distinct) > 3, f"degenerate generation on every input ({distinct} distinct tokens)"


def test_config_json_is_the_runtime_source_of_truth(exported):
    _, out, _ = exported
    cfg = json.loads((out / "config.json").read_text())
    spec = ModelSpec.load(out)
    assert spec.cameras == ["front", "left", "right", "rear"]
    assert spec.image["height"] == 128 and spec.image["width"] == 224 and len(spec.image["mean"]) == 3
    assert (spec.waypoint_count, spec.waypoint_dt, spec.frame_id) == (5, 0.5, "base_link")
    assert spec.tokens["bos"] == 1 and spec.tokens["eos"] == 2
    assert cfg["io"]["reasoner"]["inputs"]["past_kv"]["shape"][4] == "past"


def test_session_history_and_resets(exported):
    _, out, _ = exported
    spec = ModelSpec.load(out)
    spec.raw["end_threshold"] = 1.01  # never "completed": only the instruction change resets
    session = PlannerSession(spec, make_runner(spec), load_tokenizer(spec))
    img = np.zeros((1, 4, 3, 128, 224), np.float32)
    for _ in range(2):
        session.step(img, "go straight", 1.0)
    assert session.inputs["history_mask"].tolist() == [[False, True, True]]
    session.step(img, "turn right", 1.0)  # a new instruction clears the history first
    assert session.inputs["history_mask"].tolist() == [[False, False, True]]
    assert session.end_resets == 0
    spec.raw["end_threshold"] = -0.01  # every step completes the instruction: LMDrive clears the buffer
    session.step(img, "turn right", 1.0)
    assert not session.inputs["history_mask"].any()
    assert session.end_resets == 1


def test_torch_runner_matches_onnxruntime(exported):
    _, out, _ = exported
    spec = ModelSpec.load(out)
    ort_runner, torch_runner = make_runner(spec, "onnxruntime"), make_runner(spec, "torch")
    session = PlannerSession(spec, ort_runner, load_tokenizer(spec))
    feeds = {**session.inputs, "images": np.ones((1, 4, 3, 128, 224), np.float32)}
    a, b = ort_runner.plan(feeds), torch_runner.plan(feeds)
    np.testing.assert_allclose(a["waypoints"], b["waypoints"], atol=1e-4)


def test_onnx_not_matching_config_is_refused(exported, tmp_path):
    _, out, _ = exported
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in out.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((bad / "config.json").read_text())
    cfg["io"]["planner"]["inputs"]["images"]["shape"][1] = 3  # config says 3 cameras, the ONNX has 4
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunnerError, match="images"):
        make_runner(ModelSpec.load(bad), "onnxruntime")
    (bad / "planner.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(RunnerError, match="cannot load"):
        make_runner(ModelSpec.load(bad), "onnxruntime")


def test_model_dir_errors(tmp_path):
    with pytest.raises(ModelSpecError, match="does not exist"):
        ModelSpec.load(tmp_path / "nope")
    with pytest.raises(ModelSpecError, match="config.json is missing"):
        ModelSpec.load(tmp_path)


def test_pickle_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(pickle.dumps({"weights": 1}))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(bad)
    r = subprocess.run([sys.executable, str(ROOT / "export/to_onnx.py"), "--checkpoint", str(bad), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "safetensors" in r.stderr


def test_checkpoint_config_mismatch_names_the_tensor(exported, tmp_path):
    model, _, _ = exported
    save_checkpoint(model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model"]["ffn_dim"] = 512
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"layers\.0\.ffn\.w1\.weight.*shape"):
        load_checkpoint(tmp_path)


def test_random_model_is_the_same_in_every_process():
    """The stand-in model's weights depend on its seed only (CI and a developer export the same)."""
    code = ("import hashlib; from dsdrive_ros.export.random_model import random_model; m, _ = random_model('tiny', 3); "
            "print(hashlib.sha256(b''.join(v.numpy().tobytes() for v in m.state_dict().values())).hexdigest())")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout

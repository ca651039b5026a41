"""dsdrive-train end to end on a small dataset written in the simulator's layout."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml

from dsdrive_ros.model.checkpoint import load_checkpoint
from dsdrive_ros.data.dataset import DatasetWriter
from dsdrive_ros.train.cli import main as train_main
from dsdrive_ros.train.metrics import action_from_waypoints

CAMERAS = ["front", "left", "right", "rear"]


def write_dataset(root, towns=("grid4", "spider"), frames=12):
    """Episodes whose front image encodes the path: a bright column left or right of centre."""
    w = DatasetWriter(root)
    rng = np.random.default_rng(0)
    for e, town in enumerate(towns):
        with w.begin_episode(f"{town}_{e}", town=town, seed=e, meta={"cameras": CAMERAS, "rate_hz": 10}) as ep:
            for i in range(frames):
                side = 1.0 if (i // 3) % 2 else -1.0
                wp = [[2.0 * k, side * 0.3 * k * k] for k in range(1, 6)]
                images = {c: (rng.integers(0, 40, (128, 224, 3))).astype(np.uint8) for c in CAMERAS}
                col = 40 if side > 0 else 180
                images["front"][:, col:col + 8] = 255
                action = "turn left" if side > 0 else "turn right"
                rec = {"t": i * 0.1, "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0}, "speed": 4.0,
                       "instruction": "follow the lane", "instruction_id": i // 6, "end": int(i % 6 == 5),
                       "waypoints": wp, "action": action,
                       "teacher": f"Scene: a road. Objects: none. Plan: {action}. Reason: the route bends."}
                ep.add_frame(rec, images)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"))


@pytest.mark.timeout(900)  # ~35 s on an idle 2-core machine; CPU-bound training
def test_train_resume_and_evaluate(dataset, tmp_path):
    cfg = {"datasets": [str(dataset)], "val_towns": ["spider"], "out": str(tmp_path / "run"),
           "model": {"image_height": 64, "image_width": 96, "history_frames": 2, "max_reasoning_tokens": 48},
           "steps": 30, "batch_size": 4, "lr": 2e-3, "warmup_steps": 5, "log_every": 5, "eval_every": 15,
           "save_every": 15, "eval_frames": 8}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert train_main(["--config", str(path)]) == 0
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert losses[-1] < losses[0]
    assert any(r["val_ade_m"] for r in rows)
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000
    m = json.loads((tmp_path / "run" / "open_loop.json").read_text())
    assert {"ade_m", "fde_m", "end_accuracy", "reasoning_token_accuracy", "plan_reasoning_consistency",
            "constant_velocity_ade_m"} <= set(m)
    # the fixture's val episode (spider) turns left and right; per-action means add up to the mean
    assert set(m["by_action"]) == {"turn left", "turn right"}
    n = sum(v["frames"] for v in m["by_action"].values())
    assert n == m["frames"]
    assert sum(v["ade_m"] * v["frames"] for v in m["by_action"].values()) / n == pytest.approx(m["ade_m"])
    model = load_checkpoint(tmp_path / "run" / "last")
    assert model.cfg.image_height == 64
    # resume: 10 more steps continue from step 30, not from scratch
    assert train_main(["--config", str(path), "--steps", "40"]) == 0
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["loss"]][-2:] == [35, 40]
    assert json.loads((tmp_path / "run" / "last" / "train_state.json").read_text())["step"] == 40
    # fine-tune: `model` overrides change the loss weights of the loaded checkpoint's config; under bf16
    # autocast the weights move and stay fp32 (the checkpoint a node exports)
    ft = {**cfg, "out": str(tmp_path / "ft"), "init_from": str(tmp_path / "run" / "last"), "steps": 5,
          "eval_every": 100, "save_every": 5, "model": {"waypoint_lateral_weight": 3.0}, "precision": "bf16"}
    path.write_text(yaml.safe_dump(ft))
    start = load_checkpoint(tmp_path / "run" / "last")
    assert train_main(["--config", str(path)]) == 0
    tuned = load_checkpoint(tmp_path / "ft" / "last")
    assert tuned.cfg.waypoint_lateral_weight == 3.0 and tuned.cfg.image_height == 64
    before, after = start.state_dict(), tuned.state_dict()
    assert {v.dtype for v in after.values() if v.is_floating_point()} == {torch.float32}
    assert not torch.equal(before["layers.0.attn.wq.weight"], after["layers.0.attn.wq.weight"])


def test_config_errors(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path), "datasets": [], "learning_rate": 1}))
    assert train_main(["--config", str(path)]) == 2
    path.write_text(yaml.safe_dump({"out": str(tmp_path), "datasets": [], "precision": "fp16"}))
    assert train_main(["--config", str(path)]) == 2
    assert "precision 'fp16'" in capsys.readouterr().err


@pytest.mark.parametrize("wp,speed,expected", [
    ([[0.1, 0], [0.2, 0], [0.2, 0], [0.3, 0], [0.3, 0]], 0.5, "stop"),
    ([[2, 0], [4, 0], [6, 0], [8, 0], [10, 0]], 4.0, "go"),
    ([[1, 0], [2, 0], [2.5, 0], [3, 0], [3.2, 0]], 6.0, "slow"),
    ([[2, 0.1], [3.8, 0.6], [5, 1.8], [5.8, 3.5], [6.2, 5.5]], 4.0, "turn left"),
    ([[2, -0.1], [3.8, -0.6], [5, -1.8], [5.8, -3.5], [6.2, -5.5]], 4.0, "turn right"),
])
def test_action_from_waypoints(wp, speed, expected):
    assert action_from_waypoints(np.array(wp), speed, 0.5) == expected


def test_speed_dropout_zeroes_a_share_of_samples():
    import torch

    from dsdrive_ros.train.loop import drop_speed

    speed = torch.full((4000, 1), 5.0)
    assert torch.equal(drop_speed(speed, 0.0), speed)
    torch.manual_seed(0)
    out = drop_speed(speed, 0.25)
    zero = (out == 0).float().mean().item()
    assert 0.2 < zero < 0.3
    assert set(out.unique().tolist()) == {0.0, 5.0}  # dropped or kept, never scaled


def test_history_dropout_hides_earlier_frames_only():
    import torch

    from dsdrive_ros.train.loop import drop_history

    mask = torch.ones(4000, 4, dtype=torch.bool)
    assert torch.equal(drop_history(mask, 0.0), mask)
    torch.manual_seed(0)
    out = drop_history(mask, 0.3)
    assert out[:, -1].all()  # the current frame is always seen
    hidden = ~out[:, :-1].any(1)
    assert 0.25 < hidden.float().mean().item() < 0.35
    assert out[~hidden, :-1].all()  # a sample loses all its earlier frames or none
    assert mask.all()  # the input is not changed in place


def test_sample_weights_multiply_dataset_action_and_startup_weights(tmp_path):
    from dsdrive_ros.model.config import preset
    from dsdrive_ros.data.dataset import DatasetReader
    from dsdrive_ros.train.data import ClipDataset
    from dsdrive_ros.train.loop import TrainConfig, sample_weights

    a = write_dataset(tmp_path / "a", towns=("grid4",), frames=4)
    b = write_dataset(tmp_path / "b", towns=("spider",), frames=4)
    first = next(b.glob("*/frames/000000.json"))  # make b's first frame a start-up (stands, path ahead)
    first.write_text(json.dumps({**json.loads(first.read_text()), "speed": 0.0}))
    eps = list(DatasetReader(a).episodes()) + list(DatasetReader(b).episodes())
    items = ClipDataset(eps, preset("tiny"), tokenizer=None).items
    c = TrainConfig(out=str(tmp_path / "run"), dataset_weights={str(b): 3.0}, startup_weight=5.0)
    w = sample_weights(items, c)
    assert [x for x, it in zip(w, items) if it.episode is eps[0]] == [1.0] * 4
    assert [x for x, it in zip(w, items) if it.episode is eps[1]] == [15.0, 3.0, 3.0, 3.0]
    c.action_weights = {"turn left": 2.0}  # the fixture: frames 0-2 turn right, frame 3 turns left
    w = sample_weights(items, c)
    assert [x for x, it in zip(w, items) if it.episode is eps[0]] == [1.0, 1.0, 1.0, 2.0]
    assert [x for x, it in zip(w, items) if it.episode is eps[1]] == [15.0, 3.0, 3.0, 6.0]


@pytest.mark.parametrize("left", [("tmp", "old"), ("tmp",), ("old",)])
def test_checkpoint_save_killed_between_renames_resumes_from_the_newest(tmp_path, left):
    """_save_state swaps `last` by two renames; a kill between them leaves `last.tmp` (new) and/or
    `last.old` (previous) and no `last`. The next run puts the newest complete one back."""
    import shutil

    import torch

    from dsdrive_ros.model.config import preset
    from dsdrive_ros.model.dsdrive import DSDrive
    from dsdrive_ros.model.tokenizer import DSDriveTokenizer
    from dsdrive_ros.train import loop

    cfg = preset("tiny", image_height=32, image_width=48, history_frames=1)
    model = DSDrive(cfg)
    opt = torch.optim.AdamW(model.parameters())
    tok = DSDriveTokenizer.train(["turn left at the junction", "stop for the red light"] * 20, vocab_size=300)
    last = tmp_path / "last"
    loop._save_state(last, model, opt, 10, tok)
    loop._save_state(last, model, opt, 20, tok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # nothing left beside it
    step = {"tmp": 20, "old": 10}
    state = json.loads((last / "train_state.json").read_text())
    for name in left:  # the state a kill leaves
        shutil.copytree(last, tmp_path / f"last.{name}")
        (tmp_path / f"last.{name}" / "train_state.json").write_text(json.dumps({**state, "step": step[name]}))
    shutil.rmtree(last)
    loop._finish_interrupted_save(last)
    assert loop._load_state(last, DSDrive(cfg), torch.optim.AdamW(DSDrive(cfg).parameters())) == step[left[0]]
    # a half-written .tmp (no train_state.json) is never taken, and the next save replaces it
    (tmp_path / "last.tmp").mkdir(exist_ok=True)
    (tmp_path / "last.tmp" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "last.tmp" / "train_state.json").unlink(missing_ok=True)
    loop._finish_interrupted_save(last)
    loop._save_state(last, model, opt, 30, tok)
    assert json.loads((last / "train_state.json").read_text())["step"] == 30
    assert not (tmp_path / "last.tmp").exists()


@pytest.mark.timeout(300)  # ~30 s on an idle 2-core machine: two processes import torch and train
def test_two_process_gloo_step_and_save(dataset, tmp_path):
    """torchrun, 2 CPU processes on gloo: one DDP step, rank 0 alone saves and evaluates, and no rank
    returns before that save is complete (each rank then exits 0)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    cfg = {"datasets": [str(dataset)], "val_towns": ["spider"], "out": str(tmp_path / "run"),
           "model": {"image_height": 64, "image_width": 96, "history_frames": 2, "max_reasoning_tokens": 48},
           "steps": 1, "batch_size": 2, "warmup_steps": 1, "log_every": 1, "eval_every": 100,
           "save_every": 1, "eval_frames": 4, "workers": 0, "threads": 1}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "dsdrive_ros.train.cli", "--config", str(path)],
                         capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "last" / "train_state.json").read_text())["step"] == 1
    assert load_checkpoint(tmp_path / "run" / "last").cfg.image_height == 64
    assert out.stdout.count("checkpoint: ") == 1, out.stdout  # rank 0 alone evaluates and reports
    assert "ade_m" in json.loads((tmp_path / "run" / "open_loop.json").read_text())
    rows = list(csv.reader((tmp_path / "run" / "metrics.csv").open()))
    assert rows[0][0] == "step" and [r[0] for r in rows[1:]] == ["1"]  # one writer

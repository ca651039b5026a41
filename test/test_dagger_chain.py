"""dsdrive-dagger: a real round (collect with the model, fine-tune, export) and resuming."""
import json
from pathlib import Path

import pytest
import yaml

from dsdrive_ros.data.dataset import DatasetReader
from dsdrive_ros.train import dagger_chain as dc
from dsdrive_ros.train.dagger_chain import ChainConfig, jobs, last_done, main, round_datasets


def _chain(tmp_path: Path, start: Path, **over) -> Path:
    train = {"out": "ignored", "datasets": [], "steps": 2, "batch_size": 2, "lr": 1e-4, "warmup_steps": 1,
             "log_every": 1, "eval_every": 100, "save_every": 2, "eval_frames": 4, "threads": 1,
             "model": {"lambda_reasoning": 0.0}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train))
    chain = {"train": str(tmp_path / "train.yaml"), "start": str(start), "out": str(tmp_path / "runs"),
             "data_prefix": str(tmp_path / "data" / "c"), "rounds": 1, "aggregate": 1, "jobs": 1, "seed": 3,
             "towns": ["grid3"], "episodes": 1, "steps": 12, "collect_args": ["--beta", "0"], **over}
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(chain))
    return path


def test_round_datasets_aggregate_the_latest_rounds(tmp_path):
    c = ChainConfig.from_file(_chain(tmp_path, tmp_path, aggregate=2, jobs=2, episodes=2))
    prefix = str(tmp_path / "data" / "c")
    assert round_datasets(c, ["base"], 1) == ["base", f"{prefix}-round1-0", f"{prefix}-round1-1"]
    assert round_datasets(c, ["base"], 3) == ["base", *(f"{prefix}-round{k}-{j}" for k in (2, 3) for j in (0, 1))]


def test_the_jobs_drive_the_towns_in_turn_not_each_the_first_ones(tmp_path):
    towns = [f"t{i}" for i in range(5)]
    c = ChainConfig.from_file(_chain(tmp_path, tmp_path, jobs=2, episodes=5, towns=towns))
    driven = [job.towns[i % len(job.towns)] for job in jobs(c) for i in range(job.episodes)]
    assert [job.episodes for job in jobs(c)] == [3, 2]
    assert driven == towns  # one collection of 5 episodes would drive the same towns


def test_towns_may_name_a_split(tmp_path):
    from dsdrive_ros.sim.towns import TRAINING_TOWNS

    assert ChainConfig.from_file(_chain(tmp_path, tmp_path, towns="train")).towns == list(TRAINING_TOWNS)


@pytest.mark.parametrize("bad", [{"rounds": 0}, {"episodes": 1, "jobs": 2}, {"typo": 1}, {"towns": "nosuchsplit"}])
def test_config_errors(tmp_path, bad):
    with pytest.raises(ValueError):
        ChainConfig.from_file(_chain(tmp_path, tmp_path, **bad))


def test_a_copied_model_counts_its_round_as_done(tmp_path):
    c = ChainConfig.from_file(_chain(tmp_path, tmp_path, rounds=4))
    assert last_done(c) == 0
    dc.model_dir(c, 2).mkdir(parents=True)
    (dc.model_dir(c, 2) / "model.safetensors").write_bytes(b"")
    assert last_done(c) == 2
    # with aggregate 2, round 3 also reads round 2's drives again, and round 1's model that drove them is gone
    assert main(["--config", str(_chain(tmp_path, tmp_path, rounds=4, aggregate=2))]) == 2


@pytest.mark.timeout(600)
def test_one_round_collects_fine_tunes_exports_and_resumes(model_dir, tmp_path, capsys):
    pytest.importorskip("libsumo")
    path = _chain(tmp_path, model_dir)
    assert main(["--config", str(path)]) == 0
    c = ChainConfig.from_file(path)
    (episode,) = DatasetReader(tmp_path / "data" / "c-round1-0").episodes()
    assert len(episode) > 0 and episode.meta["dagger"]["model"] > 0  # beta 0: the model drove
    used = json.loads((tmp_path / "runs" / "round1" / "train_config.json").read_text())
    assert used["init_from"] == str(dc.model_dir(c, 0)) and used["datasets"] == [str(tmp_path / "data" / "c-round1-0")]
    assert used["model"] == {"lambda_reasoning": 0.0}
    assert (dc.model_dir(c, 1) / "planner.onnx").stat().st_size > 1e6
    before, after = (json.loads((dc.model_dir(c, k) / "config.json").read_text()) for k in (0, 1))
    assert after["model"]["lambda_reasoning"] == 0.0
    assert {k: v for k, v in after.items() if k != "model"} == {k: v for k, v in before.items() if k != "model"}
    # a second call finds the round done: nothing is collected or trained again
    stamp = (dc.model_dir(c, 1) / "planner.onnx").stat().st_mtime_ns
    assert main(["--config", str(path)]) == 0
    assert (dc.model_dir(c, 1) / "planner.onnx").stat().st_mtime_ns == stamp
    assert capsys.readouterr().out.strip().endswith(f"model: {dc.model_dir(c, 1)}")
    # weights copied without their graphs (a later session): round 2 exports them, then they drive
    for f in dc.model_dir(c, 1).glob("*.onnx"):
        f.unlink()
    assert main(["--config", str(_chain(tmp_path, model_dir, rounds=2))]) == 0
    assert (dc.model_dir(c, 1) / "planner.onnx").exists() and (dc.model_dir(c, 2) / "planner.onnx").exists()
    assert len(list(DatasetReader(tmp_path / "data" / "c-round2-0").episodes())) == 1

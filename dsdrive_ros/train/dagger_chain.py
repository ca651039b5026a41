"""dsdrive-dagger --config FILE: DAgger rounds (collect with the model, fine-tune on the aggregate).

Round k (1-based):
  1. the model of round k-1 drives in the simulator, the expert labels every state it reaches
     (`python -m dsdrive_ros.data.dagger`, `jobs` collections side by side, one per core);
  2. that model is fine-tuned on the base datasets plus the collections of the last `aggregate`
     rounds (the training template with `out`, `init_from` and `datasets` set per round);
  3. the result is exported to ONNX (`dsdrive-export`), the model the next round drives.

Everything lands under `out/roundK/` and `PREFIX-roundK-J/`. A second call resumes: collections skip
finished episodes, training resumes from its last checkpoint, and a round whose weights were exported
(`out/roundK/model/model.safetensors`) is done. Round 0's model is `start` exported. To go on from
copied weights (another machine, a later session), put model.safetensors, config.json and
tokenizer.json of rounds K-aggregate+1 .. K at `out/roundK/model`: rounds up to K are then done, the
ONNX graphs are exported again, and the collections the next fine-tune aggregates are made again by
the models that drove them.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)


@dataclass
class ChainConfig:
    train: str  # training YAML: the template of every round's fine-tune
    start: str  # checkpoint folder that drives round 1's collection
    out: str  # runs: out/roundK/{last, model}
    data_prefix: str  # collections: PREFIX-roundK-J
    rounds: int = 1
    aggregate: int = 2  # a fine-tune reads the collections of this many latest rounds
    jobs: int = 2  # collections per round, run side by side (one core each)
    seed: int = 0  # collection J of round K uses seed + 100 * K + J
    towns: list[str] = field(default_factory=lambda: ["grid4"])  # in YAML also a split name: `towns: train`
    episodes: int = 32  # per round, split over the jobs
    steps: int = 800  # model steps per episode (10 Hz)
    collect_args: list[str] = field(default_factory=list)  # more `data.dagger` flags, e.g. --off-route-m 1.0

    @classmethod
    def from_file(cls, path: str | Path) -> "ChainConfig":
        import yaml

        from ..sim.towns import town_names

        d = yaml.safe_load(Path(path).read_text()) or {}
        names = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(d) - names):
            raise ValueError(f"{path}: unknown DAgger chain keys {unknown}")
        if isinstance(d.get("towns"), str):  # a split of sim/towns.py, the one list of its towns
            d["towns"] = town_names(d["towns"])
        c = cls(**d)
        if c.rounds < 1 or c.aggregate < 1 or c.jobs < 1 or c.episodes < c.jobs:
            raise ValueError(f"{path}: need rounds, aggregate, jobs >= 1 and episodes >= jobs")
        return c


def model_dir(c: ChainConfig, k: int) -> Path:
    return Path(c.out) / f"round{k}" / "model"


def collections(c: ChainConfig, k: int) -> list[Path]:
    return [Path(f"{c.data_prefix}-round{k}-{j}") for j in range(c.jobs)]


def is_done(c: ChainConfig, k: int) -> bool:
    return (model_dir(c, k) / "model.safetensors").exists()


def last_done(c: ChainConfig) -> int:
    """The latest round whose model exists (0 when none, round 0 being `start`)."""
    return max((k for k in range(1, c.rounds + 1) if is_done(c, k)), default=0)


def round_datasets(c: ChainConfig, base: list[str], k: int) -> list[str]:
    """Base datasets, then the collections of rounds max(1, k - aggregate + 1) .. k."""
    first = max(1, k - c.aggregate + 1)
    return list(base) + [str(p) for r in range(first, k + 1) for p in collections(c, r)]


def export(checkpoint: Path, out: Path) -> None:
    from ..export.cli import main as export_main

    if export_main(["--checkpoint", str(checkpoint), "--out", str(out)]) != 0:
        raise RuntimeError(f"export of {checkpoint} failed")


class CollectionJob(NamedTuple):
    towns: list[str]  # the job's episode i drives towns[i % len(towns)] (data.build_dataset.episode_plan)
    episodes: int


def jobs(c: ChainConfig) -> list[CollectionJob]:
    """The round's episodes split over the jobs, each job's town list rotated to start where the
    previous job's episodes ended: together the jobs drive the towns in turn, as one collection
    would, rather than each driving the first towns of the list."""
    out, first = [], 0
    for j in range(c.jobs):
        n = c.episodes // c.jobs + (j < c.episodes % c.jobs)
        r = first % len(c.towns)
        out.append(CollectionJob(c.towns[r:] + c.towns[:r], n))
        first += n
    return out


def collect(c: ChainConfig, k: int) -> None:
    """Round k's collections, driven by round k-1's model, side by side."""
    driver = model_dir(c, k - 1)
    if not is_done(c, k - 1):
        raise FileNotFoundError(f"round {k} is driven by {driver}, which holds no model.safetensors")
    if not (driver / "planner.onnx").exists():  # copied weights only
        export(driver, driver)
    procs = []
    for j, (path, job) in enumerate(zip(collections(c, k), jobs(c))):
        cmd = [sys.executable, "-m", "dsdrive_ros.data.dagger", "--model-dir", str(driver),
               "--out", str(path), "--towns", ",".join(job.towns), "--episodes", str(job.episodes),
               "--steps", str(c.steps), "--seed", str(c.seed + 100 * k + j), *c.collect_args]
        log.info("$ %s", " ".join(cmd))
        procs.append(subprocess.Popen(cmd))
    if failed := [p.args for p in procs if p.wait() != 0]:
        raise RuntimeError(f"collection failed: {failed}")


def run(c: ChainConfig) -> Path:
    from .loop import TrainConfig, train

    template = TrainConfig.from_file(c.train)
    done = last_done(c)
    if done == 0 and not is_done(c, 0):
        export(Path(c.start), model_dir(c, 0))
    if done < c.rounds:  # copied weights: the earlier drives the next fine-tune reads are made again
        for r in range(max(1, done - c.aggregate + 2), done + 1):
            collect(c, r)
    for k in range(done + 1, c.rounds + 1):
        collect(c, k)
        run_dir = Path(c.out) / f"round{k}"
        tc = dataclasses.replace(template, out=str(run_dir), init_from=str(model_dir(c, k - 1)),
                                 datasets=round_datasets(c, template.datasets, k))
        export(train(tc), model_dir(c, k))
    return model_dir(c, c.rounds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dsdrive-dagger", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="DAgger chain YAML (see config/dagger_tiny_no_reasoning.yaml)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        final = run(ChainConfig.from_file(args.config))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"model: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

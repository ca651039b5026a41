"""Dataset shards for the 64 MiB carry limit: whole episodes, size-bounded, verified, resumable."""
import json

import numpy as np
import pytest

from dsdrive_ros.sim.dataset import DatasetReader, DatasetWriter
from dsdrive_ros.sim.shards import main, pack, unpack


def _dataset(root, episodes=5, frames=6):
    w = DatasetWriter(root, jpeg_quality=95)
    rng = np.random.default_rng(0)
    for e in range(episodes):
        with w.begin_episode(f"town-{e:03d}", town="town", seed=e, meta={"cameras": ["front", "rear"]}) as ew:
            for i in range(frames):
                rec = {"t": i / 10, "pose": {"x": float(i), "y": 0.0, "yaw": 0.0}, "speed": 1.0,
                       "instruction": "go", "instruction_id": 0, "end": 0, "waypoints": [[1.0, 0.0]],
                       "action": "go", "teacher": ""}
                ew.add_frame(rec, {c: rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for c in ("front", "rear")})
            ew.commit()


def test_pack_bounds_size_and_unpack_restores_every_byte(tmp_path):
    src, out, dst = tmp_path / "src", tmp_path / "shards", tmp_path / "dst"
    _dataset(src)
    ep_mib = sum(f.stat().st_size for f in (src / "town-000").rglob("*") if f.is_file()) / 2**20
    limit = 2.5 * ep_mib  # two episodes per shard, not three
    shards = pack(src, out, max_mib=limit)
    assert [len(s.episodes) for s in shards] == [2, 2, 1]
    assert all((out / s.name).stat().st_size <= limit * 2**20 for s in shards)
    assert pack(src, out, max_mib=limit) == shards  # deterministic: same bytes, same hashes
    # the first shard alone is a valid dataset; the rest arrive later
    (out / shards[2].name).rename(tmp_path / "late.tar")
    assert unpack(out, dst) == list(shards[0].episodes + shards[1].episodes)
    assert len(DatasetReader(dst).episode_names) == 4
    (tmp_path / "late.tar").rename(out / shards[2].name)
    unpack(out, dst)
    for f in (p for p in src.rglob("*") if p.is_file() and p.name != "index.jsonl"):
        assert (dst / f.relative_to(src)).read_bytes() == f.read_bytes()
    assert DatasetReader(dst).episode_names == DatasetReader(src).episode_names


def test_a_corrupt_shard_and_an_oversized_episode_are_refused(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "shards"
    _dataset(src, episodes=2)
    pack(src, out)
    name = json.loads((out / "shards.json").read_text())[0]["name"]
    data = bytearray((out / name).read_bytes())
    data[5000] ^= 0xFF
    (out / name).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        unpack(out, tmp_path / "dst")
    assert main(["pack", str(src), str(tmp_path / "tiny"), "--max-mib", "0.01"]) == 2
    assert "shard limit" in capsys.readouterr().err

"""Move a dataset in shards: tar files of whole episodes, each at most --max-mib (default 60 MiB).

    python -m dsdrive_ros.sim.shards pack data/towns-train shards/ [--max-mib 60]
    python -m dsdrive_ros.sim.shards unpack shards/ data/towns-train     # idempotent, any order

Why: the GPU machines take at most 64 MiB per call. A shard holds complete episode folders only
(`DatasetWriter`'s layout), so an unpacked subset is a valid dataset on its own and training can start
before the last shard arrives. `shards.json` lists each shard's episodes and sha256. Packing is
deterministic (sorted episodes, fixed tar metadata): packing the same dataset twice gives the same
bytes, and a shard already packed is not written again.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .dataset import DatasetReader, DatasetWriter

__all__ = ["Shard", "plan_shards", "pack", "unpack"]


@dataclass(frozen=True)
class Shard:
    name: str
    episodes: tuple[str, ...]
    bytes: int
    sha256: str = ""


def _episode_bytes(root: Path, episode: str) -> int:
    return sum(f.stat().st_size + 512 for f in (root / episode).rglob("*") if f.is_file())


def plan_shards(root: Path, max_bytes: int) -> list[Shard]:
    """Whole episodes, in name order, into consecutive shards under max_bytes (tar headers counted)."""
    shards, cur, size = [], [], 0
    for ep in sorted(DatasetReader(root, decode=False).episode_names):
        b = _episode_bytes(root, ep)
        if b + 1024 > max_bytes:
            raise ValueError(f"episode {ep} alone is {b / 2**20:.1f} MiB > the shard limit {max_bytes / 2**20:.1f} MiB")
        if cur and size + b + 1024 > max_bytes:
            shards.append(Shard(f"shard-{len(shards):04d}.tar", tuple(cur), size))
            cur, size = [], 0
        cur.append(ep)
        size += b
    if cur:
        shards.append(Shard(f"shard-{len(shards):04d}.tar", tuple(cur), size))
    return shards


def _tar_bytes(root: Path, episodes: tuple[str, ...]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ep in episodes:
            # meta.json marks an episode complete (DatasetWriter): last, so a cut extract is no episode
            files = sorted((f for f in (root / ep).rglob("*") if f.is_file()),
                           key=lambda f: (f.name == "meta.json", str(f)))
            for f in files:
                info = tarfile.TarInfo(str(f.relative_to(root)))
                info.size, info.mtime, info.mode = f.stat().st_size, 0, 0o644
                with f.open("rb") as fh:
                    tar.addfile(info, fh)
    return buf.getvalue()


def pack(root: str | Path, out: str | Path, max_mib: float = 60.0) -> list[Shard]:
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for s in plan_shards(root, int(max_mib * 2**20)):
        data = _tar_bytes(root, s.episodes)
        if len(data) > max_mib * 2**20:  # the plan's estimate is conservative; this is the guarantee
            raise RuntimeError(f"{s.name} came out at {len(data) / 2**20:.1f} MiB > {max_mib} MiB")
        target = out / s.name
        if not target.exists() or target.read_bytes() != data:
            tmp = target.with_suffix(".tar.partial")
            tmp.write_bytes(data)
            tmp.rename(target)
        done.append(Shard(s.name, s.episodes, len(data), hashlib.sha256(data).hexdigest()))
    (out / "shards.json").write_text(json.dumps([asdict(s) for s in done], indent=1))
    return done


def unpack(shards_dir: str | Path, root: str | Path) -> list[str]:
    """Extract every listed shard (checked against its sha256) into root; returns the episodes added."""
    shards_dir, root = Path(shards_dir), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    added = []
    for s in json.loads((shards_dir / "shards.json").read_text()):
        path = shards_dir / s["name"]
        if not path.exists():
            continue  # not arrived yet: the episodes that did are a valid dataset already
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != s["sha256"]:
            raise ValueError(f"{path}: sha256 mismatch (a partial or altered copy)")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(root, filter="data")
        added += s["episodes"]
    DatasetWriter(root)  # rebuilds the index from the complete episode folders
    return added


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsdrive_ros.sim.shards", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("dataset", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--max-mib", type=float, default=60.0)
    u = sub.add_parser("unpack")
    u.add_argument("shards", type=Path)
    u.add_argument("dataset", type=Path)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "pack":
            shards = pack(a.dataset, a.out, a.max_mib)
            print(f"{len(shards)} shards, {sum(s.bytes for s in shards) / 2**20:.1f} MiB -> {a.out}")
        else:
            print(f"{len(unpack(a.shards, a.dataset))} episodes -> {a.dataset}")
    except (ValueError, RuntimeError, OSError) as e:
        print(f"shards: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

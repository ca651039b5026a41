"""The training dataset on disk: `DatasetWriter` (simulator -> files) and `DatasetReader` (files -> frames).

Layout (docs/ARCHITECTURE.md), one folder per episode under DATASET/:

    DATASET/index.jsonl                   one line per COMPLETE episode:
                                          {"episode": str, "town": str, "seed": int, "frames": int}
    DATASET/<episode>/meta.json           {"format": "dsdrive-dataset/1", "episode", "town", "seed",
                                           "frames", "cameras": [...], "rate_hz", ... whatever the
                                           generator adds: intrinsics/extrinsics, route, net file ...}
    DATASET/<episode>/<camera>/<frame:06d>.jpg     RGB frames, JPEG
    DATASET/<episode>/frames/<frame:06d>.json      one record per frame:
        {"t": s, "pose": {"x", "y", "yaw"}, "speed": m/s, "instruction": str, "instruction_id": int,
         "end": 0|1, "waypoints": [[x, y] * K] (base_link), "action": "stop|slow|go|turn left|turn right",
         "teacher": str (chain of thought, no waypoints)}
    DATASET/.partial/<episode>/           an episode being written (not part of the dataset)

Resumable and crash-safe:
- an episode is written into `.partial/<episode>/`; `commit()` writes its meta.json last and renames
  the folder to `DATASET/<episode>/` (atomic on one filesystem). A folder `DATASET/<episode>/` with a
  meta.json is therefore always complete; a crash leaves only `.partial/` debris, which the next
  `begin_episode` of that name deletes.
- `index.jsonl` is rewritten atomically (temp file + rename) after each commit; `DatasetWriter(root)`
  reconciles it with the episode folders on open (adds complete folders missing from it, drops lines
  whose folder is gone), so a crash between rename and index update loses nothing.
- `is_complete(name)` tells a generator to skip an episode on a rerun.
One writer per dataset folder at a time (no locking).

Reading: `DatasetReader(root)` lists the complete episodes; `reader.episode(name)` gives an
`EpisodeData` (meta + frames, each a `Frame` with the record, decoded RGB images and the raw JPEG
bytes); `reader[i]` / `len(reader)` index all frames flatly for a training `Dataset`.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from dsdrive_ros.frames.image_codec import decode_compressed, encode_compressed
from dsdrive_ros.sim.scene import SceneState
from dsdrive_ros.data.actions import ACTIONS

FORMAT = "dsdrive-dataset/1"
RECORD_KEYS = ("t", "pose", "speed", "instruction", "instruction_id", "end", "waypoints", "action", "teacher")
PARTIAL_DIR = ".partial"
INDEX_FILE = "index.jsonl"


# --------------------------------------------------------------------------------------------
# Frame records
# --------------------------------------------------------------------------------------------

def record_from_state(state: SceneState, teacher: str) -> dict[str, Any]:
    """The per-frame JSON record (ARCHITECTURE.md schema) for one simulator step."""
    return {
        "t": round(float(state.t), 4),
        "pose": {"x": round(float(state.x), 4), "y": round(float(state.y), 4), "yaw": round(float(state.yaw), 6)},
        "speed": round(float(state.speed), 4),
        "instruction": str(state.instruction),
        "instruction_id": int(state.instruction_id),
        "end": int(bool(state.end)),
        "waypoints": [[round(float(x), 4), round(float(y), 4)] for x, y in state.waypoints],
        "action": str(state.action),
        "teacher": str(teacher),
    }


def validate_record(rec: Mapping[str, Any]) -> None:
    """Raise ValueError unless `rec` follows the frame schema."""
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise ValueError(f"frame record lacks {missing}")
    pose = rec["pose"]
    if not isinstance(pose, Mapping) or not all(k in pose for k in ("x", "y", "yaw")):
        raise ValueError(f"pose must be {{x, y, yaw}}, got {pose!r}")
    wps = np.asarray(rec["waypoints"], dtype=np.float64)
    if wps.ndim != 2 or wps.shape[1] != 2 or wps.shape[0] < 1 or not np.all(np.isfinite(wps)):
        raise ValueError(f"waypoints must be a finite K x 2 list, got shape {wps.shape}")
    if rec["action"] not in ACTIONS:
        raise ValueError(f"action {rec['action']!r} not in {ACTIONS}")
    if rec["end"] not in (0, 1, True, False):
        raise ValueError(f"end must be 0 or 1, got {rec['end']!r}")
    if not isinstance(rec["instruction"], str) or not isinstance(rec["teacher"], str):
        raise ValueError("instruction and teacher must be strings")


@dataclass
class Frame:
    """One frame for training: its record (schema above), decoded RGB images, raw JPEG bytes."""

    episode: str
    index: int
    record: dict[str, Any]
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> RGB uint8 (empty if not decoded)
    jpeg: dict[str, bytes] = field(default_factory=dict)  # camera -> encoded bytes as stored

    @property
    def waypoints(self) -> np.ndarray:
        return np.asarray(self.record["waypoints"], dtype=np.float32)

    @property
    def t(self) -> float:
        return float(self.record["t"])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_index(root: Path) -> list[dict[str, Any]]:
    path = root / INDEX_FILE
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not JSON ({e})") from None
    return out


def _index_entry(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"episode": meta["episode"], "town": meta.get("town", ""), "seed": int(meta.get("seed", 0)),
            "frames": int(meta["frames"])}


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------

class EpisodeWriter:
    """Writes one episode into `.partial/<name>/`; `commit()` publishes it. Use as a context manager
    (commits on success, aborts on an exception)."""

    def __init__(self, dataset: "DatasetWriter", name: str, town: str, seed: int, meta: Mapping[str, Any]):
        self.dataset = dataset
        self.name = name
        self.town = town
        self.seed = int(seed)
        self.meta = dict(meta)
        self.dir = dataset.root / PARTIAL_DIR / name
        self.frames = 0
        self.cameras: list[str] | None = list(meta["cameras"]) if "cameras" in meta else None
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._done = False
        if self.dir.exists():
            shutil.rmtree(self.dir)  # debris of an interrupted run
        (self.dir / "frames").mkdir(parents=True)

    def add_frame(self, record: Mapping[str, Any], images: Mapping[str, np.ndarray | bytes]) -> int:
        """Write one frame (record per the schema, images RGB uint8 or already-encoded JPEG bytes).
        Returns the frame index."""
        if self._done:
            raise RuntimeError(f"episode {self.name} already committed/aborted")
        validate_record(record)
        if self.cameras is None:
            self.cameras = list(images)
        if set(images) != set(self.cameras):
            raise ValueError(f"frame {self.frames}: cameras {sorted(images)} != episode cameras {sorted(self.cameras)}")
        idx = self.frames
        for cam in self.cameras:
            img = images[cam]
            if isinstance(img, (bytes, bytearray, memoryview)):
                data = bytes(img)
            else:
                arr = np.asarray(img)
                shape = self._shapes.setdefault(cam, arr.shape)
                if arr.shape != shape:
                    raise ValueError(f"camera {cam}: frame {idx} shape {arr.shape} != {shape}")
                data = encode_compressed(arr, "jpeg", self.dataset.jpeg_quality)
            cam_dir = self.dir / cam
            cam_dir.mkdir(exist_ok=True)
            (cam_dir / f"{idx:06d}.jpg").write_bytes(data)
        rec = dict(record)
        rec["end"] = int(bool(rec["end"]))
        (self.dir / "frames" / f"{idx:06d}.json").write_text(json.dumps(rec, separators=(",", ":")), encoding="utf-8")
        self.frames += 1
        return idx

    def add_state(self, state: SceneState, images: Mapping[str, np.ndarray | bytes], teacher: str) -> int:
        return self.add_frame(record_from_state(state, teacher), images)

    def commit(self, extra_meta: Mapping[str, Any] | None = None) -> Path:
        """Write meta.json, move the episode into place, update index.jsonl. Returns the episode dir."""
        if self._done:
            raise RuntimeError(f"episode {self.name} already committed/aborted")
        if self.frames == 0:
            raise ValueError(f"episode {self.name} has no frames")
        meta = dict(self.meta)
        meta.update(extra_meta or {})
        meta.update({"format": FORMAT, "episode": self.name, "town": self.town, "seed": self.seed,
                     "frames": self.frames, "cameras": list(self.cameras or [])})
        _atomic_write_text(self.dir / "meta.json", json.dumps(meta, indent=1))
        final = self.dataset.root / self.name
        if final.exists():  # only with overwrite=True (begin_episode refuses otherwise)
            shutil.rmtree(final)
        os.replace(self.dir, final)
        self._done = True
        self.dataset._register(meta)
        return final

    def abort(self) -> None:
        if not self._done:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._done = True

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._done:
                self.commit()
        else:
            self.abort()


class DatasetWriter:
    """Creates/extends a dataset folder (layout in the module docstring)."""

    def __init__(self, root: str | os.PathLike, jpeg_quality: int = 90):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.jpeg_quality = int(jpeg_quality)
        self._index: dict[str, dict[str, Any]] = {}
        self._reconcile()

    def _reconcile(self) -> None:
        entries = {e["episode"]: e for e in _read_index(self.root) if "episode" in e}
        found: dict[str, dict[str, Any]] = {}
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            meta_path = d / "meta.json"
            if not meta_path.exists():
                continue
            if d.name in entries:
                found[d.name] = entries[d.name]
            else:
                found[d.name] = _index_entry(json.loads(meta_path.read_text(encoding="utf-8")))
        changed = found != entries or not (self.root / INDEX_FILE).exists()
        self._index = found
        if changed:
            self._write_index()

    def _write_index(self) -> None:
        text = "".join(json.dumps(e) + "\n" for e in self._index.values())
        _atomic_write_text(self.root / INDEX_FILE, text)

    def _register(self, meta: Mapping[str, Any]) -> None:
        self._index[meta["episode"]] = _index_entry(meta)
        self._write_index()

    def is_complete(self, name: str) -> bool:
        return (self.root / name / "meta.json").exists()

    @property
    def episodes(self) -> list[str]:
        return list(self._index)

    def begin_episode(self, name: str, town: str = "", seed: int = 0, meta: Mapping[str, Any] | None = None,
                      overwrite: bool = False) -> EpisodeWriter:
        if not name or name.startswith(".") or "/" in name or os.sep in name:
            raise ValueError(f"bad episode name {name!r}")
        if self.is_complete(name) and not overwrite:
            raise FileExistsError(f"episode {name} is already complete in {self.root}")
        return EpisodeWriter(self, name, town, seed, meta or {})


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------

class EpisodeData:
    """One complete episode on disk."""

    def __init__(self, root: Path, name: str, cameras: Sequence[str] | None = None):
        self.dir = root / name
        self.name = name
        meta_path = self.dir / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"episode {name}: no meta.json (incomplete or missing) in {root}")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        self.cameras: list[str] = list(cameras) if cameras is not None else list(self.meta["cameras"])
        unknown = set(self.cameras) - set(self.meta["cameras"])
        if unknown:
            raise ValueError(f"episode {name} has no cameras {sorted(unknown)}")
        self.num_frames = int(self.meta["frames"])

    def __len__(self) -> int:
        return self.num_frames

    @property
    def rate_hz(self) -> float | None:
        r = self.meta.get("rate_hz")
        return None if r is None else float(r)

    def record(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.num_frames:
            raise IndexError(f"episode {self.name}: frame {i} out of range 0..{self.num_frames - 1}")
        return json.loads((self.dir / "frames" / f"{i:06d}.json").read_text(encoding="utf-8"))

    def frame(self, i: int, decode: bool = True) -> Frame:
        rec = self.record(i)
        jpeg = {cam: (self.dir / cam / f"{i:06d}.jpg").read_bytes() for cam in self.cameras}
        images = {cam: decode_compressed("jpeg", b) for cam, b in jpeg.items()} if decode else {}
        return Frame(self.name, i, rec, images, jpeg)

    def frames(self, decode: bool = True) -> Iterator[Frame]:
        for i in range(self.num_frames):
            yield self.frame(i, decode)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def records(self) -> list[dict[str, Any]]:
        return [self.record(i) for i in range(self.num_frames)]


class DatasetReader:
    """Complete episodes of a dataset folder. Iterating yields every frame (decoded)."""

    def __init__(self, root: str | os.PathLike, cameras: Sequence[str] | None = None, decode: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no dataset at {self.root}")
        self.cameras = list(cameras) if cameras is not None else None
        self.decode = decode
        # index order first; complete folders the index misses (writer killed between the rename
        # and the index update) are appended; lines whose folder is gone are dropped
        entries = [e for e in _read_index(self.root) if (self.root / e["episode"] / "meta.json").exists()]
        known = {e["episode"] for e in entries}
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and d.name not in known and (d / "meta.json").exists():
                entries.append(_index_entry(json.loads((d / "meta.json").read_text(encoding="utf-8"))))
        self.index: list[dict[str, Any]] = entries
        self._offsets = np.cumsum([0] + [int(e["frames"]) for e in self.index])
        self._cache: dict[str, EpisodeData] = {}

    @property
    def episode_names(self) -> list[str]:
        return [e["episode"] for e in self.index]

    def episode(self, name: str) -> EpisodeData:
        if name not in self._cache:
            self._cache[name] = EpisodeData(self.root, name, self.cameras)
        return self._cache[name]

    def episodes(self) -> Iterator[EpisodeData]:
        for name in self.episode_names:
            yield self.episode(name)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, i: int) -> tuple[str, int]:
        """Flat frame index -> (episode name, frame index)."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame {i} out of range (dataset has {n})")
        ep = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return self.index[ep]["episode"], int(i - self._offsets[ep])

    def __getitem__(self, i: int) -> Frame:
        name, j = self.locate(i)
        return self.episode(name).frame(j, self.decode)

    def __iter__(self) -> Iterator[Frame]:
        for ep in self.episodes():
            yield from ep.frames(self.decode)

"""Read a dataset in LMDrive's layout (opendilab/LMDrive) as `dataset.Frame` records.

LMDrive's layout (what its `CarlaVoiceDataset` reads):

    ROOT/navigation_instruction_list.txt     one JSON per line, one instruction clip each:
        {"route_path": "routes_town01_short_w1_.../", "town_id": 1, "weather_id": 1,
         "start_frame": 20, "end_frame": 80, "instruction": "Turn-04-L", "instruction_id": 33,
         "instruction_args": [12], "route_frames": 120, ...}
    ROOT/<route>/rgb_full/%04d.jpg            front/left/right/rear stacked vertically (each 800x600)
                                              (or rgb_front/, rgb_left/, rgb_right/, rgb_rear/)
    ROOT/<route>/measurements/%04d.json       per frame: gps_x, gps_y (GNSS frame, ~north/east),
                                              x, y (= gps_y, -gps_x), theta (compass: rad clockwise
                                              from north), speed, command (1 left, 2 right,
                                              3 straight, 4 follow, 5/6 lane change), ...
                                              (or one measurements_all.json list per route)

A route folder may also carry its own navigation_instruction_list.txt (lines without route_path);
a route without any instruction line becomes one clip over all its frames ("Follow the route.").

Each instruction clip becomes one episode (`LMDriveClip`) whose frames are records in our schema
(docs/ARCHITECTURE.md):
- pose: x = east, y = north, yaw = pi/2 - theta (counter-clockwise from east), as in SceneState;
- waypoints: the ego's own future positions at +stride, +2*stride, ... frames (LMDrive: 5 frames =
  0.5 s at 10 Hz; clamped to the route's last frame like LMDrive's loader) in base_link;
- end: 1 on the clip's end_frame only (LMDrive's end label);
- instruction: the text. The list stores a rule key ("Turn-04-L") and an id; the text comes from
  LMDrive's instruction_dict.json ({id: [variants]}, `instruction_dict=` or ROOT/instruction_dict.json,
  `[x]`/`left/right`/`[y]` filled from instruction_args), else from a built-in phrase per rule key, or
  from the line's "instruction_text"/"text" field when present;
- action: derived from the future trajectory (LMDrive logs no such label): "stop" when the ego
  moves < 1 m in the horizon, "turn left/right" when the route command is left/right and the path
  ends > 2.5 m sideways, "slow" when the horizon's mean speed is well below the current speed,
  else "go";
- teacher: "" (LMDrive has no chain of thought; mask the reasoning loss or run a teacher).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from dsdrive_ros.data.dataset import Frame
from dsdrive_ros.frames.image_codec import decode_compressed, encode_compressed

CAMERAS = ("front", "left", "right", "rear")
INSTRUCTION_LIST = "navigation_instruction_list.txt"
COMMANDS = {1: "left", 2: "right", 3: "straight", 4: "follow", 5: "change lane left", 6: "change lane right"}

_DIR_WORD = {"L": "left", "R": "right", "S": "straight"}


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fallback_text(rule: str, args: Sequence[Any]) -> str:
    """A plain instruction for an LMDrive rule key when its instruction_dict is not at hand."""
    parts = rule.split("-")
    kind = parts[0]
    dis = rule.endswith("-dis")
    x = args[0] if args else None
    pre = f"After {x} meters, " if dis and x is not None else ""

    def turn(d: str) -> str:
        return "go straight" if d == "straight" else f"turn {d}"

    if kind == "Turn" and len(parts) >= 3:
        num = parts[1]
        if num == "05":
            return f"Take exit {parts[2]} at the roundabout."
        if num == "06" and len(parts) >= 4:
            a, b = _DIR_WORD.get(parts[2], "straight"), _DIR_WORD.get(parts[3], "straight")
            return f"{_cap(turn(a))} here, then {turn(b)} at the next intersection."
        d = _DIR_WORD.get(parts[2], "straight")
        where = {"01": "ahead", "02": "at the next T-junction", "03": "at the next traffic light"}.get(num, "at the next intersection")
        text = f"{turn(d)} {where}."
        return (pre + text) if pre else _cap(text)
    if kind == "Follow" and len(parts) >= 3:
        if parts[1] in ("01",) and parts[2] in ("L", "R"):
            text = f"change to the {_DIR_WORD[parts[2]]} lane."
            return (pre + text) if pre else _cap(text)
        text = "follow the current road."
        return (pre + text) if pre else _cap(text)
    if kind == "Notice":
        return "Watch out for hazards ahead."
    return "Drive safely and follow the route."


def _fill(template: str, args: Sequence[Any]) -> str:
    if "[x]" in template and len(args) > 0:
        template = template.replace("[x]", str(args[0]))
    if "left/right" in template and len(args) > 1:
        template = template.replace("left/right", str(args[1]))
    if "[y]" in template and len(args) > 2:
        template = template.replace("[y]", str(args[2]))
    return template


def load_measurements(route_dir: Path) -> list[dict[str, Any]]:
    """All per-frame measurement dicts of a route, in frame order."""
    mdir = route_dir / "measurements"
    if mdir.is_dir():
        files = sorted(mdir.glob("*.json"), key=lambda p: int(p.stem))
        if files:
            if [int(p.stem) for p in files] != list(range(len(files))):
                raise ValueError(f"{mdir}: frame files are not 0..{len(files) - 1}")
            return [json.loads(p.read_text(encoding="utf-8")) for p in files]
    merged = route_dir / "measurements_all.json"
    if merged.exists():
        return list(json.loads(merged.read_text(encoding="utf-8")))
    raise FileNotFoundError(f"{route_dir}: no measurements/ or measurements_all.json")


def enu_pose(meas: Mapping[str, Any]) -> tuple[float, float, float]:
    """(east, north, yaw ccw from east) from an LMDrive measurement."""
    if "gps_x" in meas and "gps_y" in meas:
        north, east = float(meas["gps_x"]), float(meas["gps_y"])
    else:  # x = gps_y, y = -gps_x
        east, north = float(meas["x"]), -float(meas["y"])
    theta = float(meas.get("theta", 0.0))
    if math.isnan(theta):
        theta = 0.0
    yaw = (math.pi / 2.0 - theta + math.pi) % (2.0 * math.pi) - math.pi
    return east, north, yaw


def future_waypoints(measurements: Sequence[Mapping[str, Any]], i: int, count: int = 5, stride: int = 5) -> np.ndarray:
    """(count, 2) base_link positions of the ego at frames i+stride, i+2*stride, ... (clamped)."""
    ex, ny, yaw = enu_pose(measurements[i])
    c, s = math.cos(yaw), math.sin(yaw)
    last = len(measurements) - 1
    out = np.zeros((count, 2), dtype=np.float64)
    for k in range(1, count + 1):
        fx, fy, _ = enu_pose(measurements[min(i + k * stride, last)])
        dx, dy = fx - ex, fy - ny
        out[k - 1] = (c * dx + s * dy, -s * dx + c * dy)
    return out


def derive_action(waypoints: np.ndarray, speed: float, command: int | None, dt_s: float) -> str:
    """The action label for an LMDrive frame (see module docstring)."""
    end = waypoints[-1]
    travelled = float(np.hypot(*end))
    if travelled < 1.0:
        return "stop"
    if command in (1, 2) and abs(float(end[1])) > 2.5:
        if command == 1 and end[1] > 0:
            return "turn left"
        if command == 2 and end[1] < 0:
            return "turn right"
    horizon_s = dt_s * len(waypoints)
    mean_speed = travelled / horizon_s
    if speed > 1.0 and mean_speed < 0.7 * speed - 0.3:
        return "slow"
    return "go"


def split_stacked(img: np.ndarray, cameras: Sequence[str] = CAMERAS) -> dict[str, np.ndarray]:
    """rgb_full (views stacked vertically, equal heights) -> {camera: view}."""
    n = len(cameras)
    h = img.shape[0]
    if h % n:
        raise ValueError(f"stacked image height {h} is not a multiple of {n}")
    step = h // n
    return {cam: np.ascontiguousarray(img[k * step:(k + 1) * step]) for k, cam in enumerate(cameras)}


@dataclass
class _ClipInfo:
    name: str
    route_dir: Path
    start: int
    end: int
    text: str
    instruction_id: int
    info: dict[str, Any]


class LMDriveClip:
    """One instruction clip of one route, frames start..end inclusive."""

    def __init__(self, ds: "LMDriveDataset", info: _ClipInfo):
        self.ds = ds
        self.name = info.name
        self.route_dir = info.route_dir
        self.start = info.start
        self.end = info.end
        self.instruction = info.text
        self.instruction_id = info.instruction_id
        self.info = info.info
        self.cameras = list(ds.cameras)

    def __len__(self) -> int:
        return self.end - self.start + 1

    @property
    def meta(self) -> dict[str, Any]:
        return {"episode": self.name, "route": str(self.route_dir), "start_frame": self.start,
                "end_frame": self.end, "instruction": self.instruction, "cameras": self.cameras,
                "rate_hz": self.ds.rate_hz, "town": self.info.get("town_id"), "source": "lmdrive"}

    def record(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(f"clip {self.name}: frame {i} out of range")
        meas = self.ds.measurements(self.route_dir)
        fid = self.start + i
        m = meas[fid]
        east, north, yaw = enu_pose(m)
        wps = future_waypoints(meas, fid, self.ds.num_waypoints, self.ds.stride)
        speed = float(m.get("speed", 0.0) or 0.0)
        cmd = m.get("command")
        cmd = int(cmd) if cmd is not None else None
        return {
            "t": round(fid / self.ds.rate_hz, 4),
            "pose": {"x": round(east, 4), "y": round(north, 4), "yaw": round(yaw, 6)},
            "speed": round(speed, 4),
            "instruction": self.instruction,
            "instruction_id": self.instruction_id,
            "end": int(fid == self.end),
            "waypoints": [[round(float(a), 4), round(float(b), 4)] for a, b in wps],
            "action": derive_action(wps, speed, cmd, self.ds.stride / self.ds.rate_hz),
            "teacher": "",
            "command": COMMANDS.get(cmd, "unknown") if cmd is not None else "unknown",
            "frame_id": fid,
        }

    def _jpeg(self, fid: int) -> dict[str, bytes] | None:
        full = self.route_dir / "rgb_full" / f"{fid:04d}.jpg"
        if full.exists():
            return None
        return {cam: (self.route_dir / f"rgb_{cam}" / f"{fid:04d}.jpg").read_bytes() for cam in self.cameras}

    def frame(self, i: int, decode: bool = True) -> Frame:
        rec = self.record(i)
        fid = self.start + i
        per_cam = self._jpeg(fid)
        if per_cam is None:
            full = decode_compressed("jpeg", (self.route_dir / "rgb_full" / f"{fid:04d}.jpg").read_bytes())
            images = split_stacked(full, self.ds.stacked_order)
            images = {cam: images[cam] for cam in self.cameras}
            jpeg: dict[str, bytes] = {}
            if not decode:  # callers that want bytes get the crops re-encoded
                jpeg = {cam: encode_compressed(img, "jpeg") for cam, img in images.items()}
                images = {}
            return Frame(self.name, i, rec, images, jpeg)
        images = {cam: decode_compressed("jpeg", b) for cam, b in per_cam.items()} if decode else {}
        return Frame(self.name, i, rec, images, per_cam)

    def frames(self, decode: bool = True) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.frame(i, decode)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()


class LMDriveDataset:
    """All instruction clips of an LMDrive-layout dataset (see module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike,
        instruction_dict: str | os.PathLike | Mapping[str, Sequence[str]] | None = None,
        *,
        cameras: Sequence[str] = CAMERAS,
        stacked_order: Sequence[str] = CAMERAS,
        rate_hz: float = 10.0,
        stride: int = 5,
        num_waypoints: int = 5,
        decode: bool = True,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no LMDrive dataset at {self.root}")
        self.cameras = list(cameras)
        self.stacked_order = list(stacked_order)
        self.rate_hz = float(rate_hz)
        self.stride = int(stride)
        self.num_waypoints = int(num_waypoints)
        self.decode = decode
        if instruction_dict is None and (self.root / "instruction_dict.json").exists():
            instruction_dict = self.root / "instruction_dict.json"
        if isinstance(instruction_dict, (str, os.PathLike)):
            instruction_dict = json.loads(Path(instruction_dict).read_text(encoding="utf-8"))
        self.instruction_dict: Mapping[str, Sequence[str]] | None = instruction_dict
        self._meas: dict[Path, list[dict[str, Any]]] = {}
        self.clips: list[LMDriveClip] = [LMDriveClip(self, c) for c in self._parse()]
        self._offsets = np.cumsum([0] + [len(c) for c in self.clips])

    # -- parsing --------------------------------------------------------------------------------
    def measurements(self, route_dir: Path) -> list[dict[str, Any]]:
        if route_dir not in self._meas:
            self._meas[route_dir] = load_measurements(route_dir)
        return self._meas[route_dir]

    def _text(self, line: Mapping[str, Any]) -> str:
        for key in ("instruction_text", "text"):
            if isinstance(line.get(key), str) and line[key].strip():
                return line[key].strip()
        rule = str(line.get("instruction", ""))
        args = list(line.get("instruction_args", []) or [])
        if rule and not re.match(r"^(Turn|Follow|Notice|Other)-\d", rule):
            return rule  # already a sentence
        iid = line.get("instruction_id")
        if self.instruction_dict is not None and iid is not None and str(iid) in self.instruction_dict:
            variants = list(self.instruction_dict[str(iid)])
            if variants:
                return _fill(variants[0], args)
        return _fallback_text(rule, args) if rule else "Follow the route."

    def _route_dirs(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir()
                      if p.is_dir() and ((p / "measurements").is_dir() or (p / "measurements_all.json").exists()))

    def _parse(self) -> list[_ClipInfo]:
        lines: list[tuple[Path, dict[str, Any]]] = []
        top = self.root / INSTRUCTION_LIST
        if top.exists():
            for n, raw in enumerate(top.read_text(encoding="utf-8").splitlines(), 1):
                if len(raw.strip()) < 2:
                    continue
                try:
                    d = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{top}:{n}: not JSON ({e})") from None
                if "route_path" not in d:
                    raise ValueError(f"{top}:{n}: no route_path")
                lines.append((self.root / str(d["route_path"]).rstrip("/"), d))
        covered = {p.resolve() for p, _ in lines}
        for rd in self._route_dirs():
            if rd.resolve() in covered:
                continue
            own = rd / INSTRUCTION_LIST
            if own.exists():
                for n, raw in enumerate(own.read_text(encoding="utf-8").splitlines(), 1):
                    if len(raw.strip()) >= 2:
                        lines.append((rd, json.loads(raw)))
            else:
                lines.append((rd, {}))  # whole route, no instruction
        clips = []
        for k, (rd, d) in enumerate(lines):
            if not rd.is_dir():
                raise FileNotFoundError(f"route folder {rd} (from {INSTRUCTION_LIST}) does not exist")
            n_frames = len(self.measurements(rd))
            start = int(d.get("start_frame", 0))
            end = int(d.get("end_frame", n_frames - 1))
            if not 0 <= start <= end < n_frames:
                raise ValueError(f"{rd.name}: clip {start}..{end} outside the route's {n_frames} frames")
            text = self._text(d)
            clips.append(_ClipInfo(f"{rd.name}__{k:05d}", rd, start, end, text,
                                   int(d.get("instruction_id", -1)), dict(d)))
        return clips

    # -- access ---------------------------------------------------------------------------------
    @property
    def episode_names(self) -> list[str]:
        return [c.name for c in self.clips]

    def episode(self, key: int | str) -> LMDriveClip:
        if isinstance(key, int):
            return self.clips[key]
        for c in self.clips:
            if c.name == key:
                return c
        raise KeyError(key)

    def episodes(self) -> Iterator[LMDriveClip]:
        return iter(self.clips)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, i: int) -> Frame:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        c = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return self.clips[c].frame(int(i - self._offsets[c]), self.decode)

    def __iter__(self) -> Iterator[Frame]:
        for c in self.clips:
            yield from c.frames(self.decode)

"""Generate a training dataset: simulator + expert + teacher -> DatasetWriter.

    python -m dsdrive_ros.sim.generate --out data/sim --towns grid4,spider --episodes 20 --seed 0 \\
        [--steps 300] [--teacher scripted|vlm --vlm-url http://localhost:8000 --vlm-model NAME]

Episode i (0-based) drives town `towns[i % len(towns)]` with seed `seed * 10000 + i` and is named
`<town>-<episode seed:06d>`; the plan depends only on the arguments, so rerunning the same command
skips the complete episodes and redoes an interrupted one (DatasetWriter is resumable).

The teacher explains every step. With `--teacher vlm`, an answer whose plan disagrees with the
expert's action is replaced by the scripted teacher's (counted in the episode's meta.json under
"teacher_stats"); a `VLMError` stops the run unless `--vlm-on-error scripted`.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from dsdrive_ros.sim.dataset import DatasetWriter, record_from_state
from dsdrive_ros.sim.scene import SceneState
from dsdrive_ros.sim.teacher import ScriptedTeacher, Teacher, action_from_text

EpisodeFactory = Callable[[str, int, int | None], Any]


def episode_plan(towns: list[str], episodes: int, seed: int) -> list[tuple[str, str, int]]:
    """[(name, town, episode seed)] for a run."""
    if not towns:
        raise ValueError("no towns")
    plan = []
    for i in range(episodes):
        town = towns[i % len(towns)]
        ep_seed = seed * 10000 + i
        plan.append((f"{town}-{ep_seed:06d}", town, ep_seed))
    return plan


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def episode_meta(ep: Any) -> dict[str, Any]:
    """What an Episode object tells about itself (cameras, intrinsics, rate, route, net file...)."""
    for attr in ("meta", "describe", "metadata", "info"):
        val = getattr(ep, attr, None)
        if val is None:
            continue
        if callable(val):
            try:
                val = val()
            except TypeError:
                continue
        if isinstance(val, Mapping) or is_dataclass(val):
            return _jsonable(val)
    return {}


def focus_episode_factory(town: str, seed: int, steps: int | None) -> Any:
    """default_episode_factory with the focus view rendered too (sim.cameras.default_cameras)."""
    from dsdrive_ros.sim.cameras import default_cameras
    from dsdrive_ros.sim.episode import Episode

    return Episode(town=town, seed=seed, max_steps=steps, cameras=default_cameras(focus=True))


def default_episode_factory(town: str, seed: int, steps: int | None) -> Any:
    """Open the simulator's Episode (dsdrive_ros/sim/episode.py) for one drive with the expert.

    Factory contract: `factory(town, seed, steps)` returns an object iterable once as
    (SceneState with ground-truth waypoints, {camera: RGB}) and ending by itself (after about `steps`
    model steps when given); optionally `meta()`/`meta` and `close()`.
    Episode(max_steps=N) yields N+1 frames: the last one carries the end status and the final
    instruction's end flag, so nothing here cuts the iteration short."""
    from dsdrive_ros.sim.episode import Episode  # the simulator engineer's module; expert by default

    return Episode(town=town, seed=seed, max_steps=steps)


def dataset_meta(ep_meta: Mapping[str, Any]) -> dict[str, Any]:
    """Episode meta -> meta.json fields: `cameras` becomes the list of names (the dataset's
    contract) and a per-camera dict (intrinsics K, extrinsics T_base_cam, ...) moves to `camera_rig`."""
    meta = dict(ep_meta)
    cams = meta.get("cameras")
    if isinstance(cams, Mapping):
        meta["camera_rig"] = dict(cams)
        meta["cameras"] = list(meta.get("camera_names") or cams.keys())
    elif cams is None and meta.get("camera_names"):
        meta["cameras"] = list(meta["camera_names"])
    return meta


class _TeacherWithFallback:
    """Runs the main teacher; keeps its text only when the plan agrees with the expert."""

    def __init__(self, main: Teacher, fallback: ScriptedTeacher, on_error: str = "fail"):
        self.main = main
        self.fallback = fallback
        self.on_error = on_error
        self.stats = {"main": 0, "disagree": 0, "error": 0}

    def explain(self, state: SceneState, images: Mapping[str, np.ndarray]) -> str:
        from dsdrive_ros.sim.vlm_teacher import VLMError

        try:
            text = self.main.explain(state, images)
        except VLMError:
            if self.on_error != "scripted":
                raise
            self.stats["error"] += 1
            return self.fallback.explain(state, images)
        if action_from_text(text) != state.action:
            self.stats["disagree"] += 1
            return self.fallback.explain(state, images)
        self.stats["main"] += 1
        return text


def write_episode(writer: DatasetWriter, name: str, town: str, ep_seed: int, ep: Any, teacher: Teacher,
                  progress: Any = None) -> int:
    """Drive one episode into the dataset. Returns its frame count."""
    meta = {"generator": "dsdrive_ros.sim.generate", "teacher": type(teacher).__name__}
    meta.update(dataset_meta(episode_meta(ep)))
    meta.setdefault("rate_hz", 10.0)
    stats0 = dict(getattr(teacher, "stats", {}))
    t0 = time.monotonic()
    with writer.begin_episode(name, town=town, seed=ep_seed, meta=meta, overwrite=False) as ew:
        for state, images in ep:
            text = teacher.explain(state, images)
            ew.add_frame(record_from_state(state, text), images)
            if progress is not None:
                progress.update(1)
        extra: dict[str, Any] = {"wall_s": round(time.monotonic() - t0, 2)}
        stats = getattr(teacher, "stats", None)
        if stats:
            extra["teacher_stats"] = {k: stats[k] - stats0.get(k, 0) for k in stats}
        # what the episode knows only at its end (e.g. its score)
        extra.update({k: v for k, v in dataset_meta(episode_meta(ep)).items() if k not in meta})
        n = ew.frames
        ew.commit(extra)
    return n


def generate(out: str | Path, towns: list[str], episodes: int, seed: int, steps: int | None = None,
             teacher: Teacher | None = None, episode_factory: EpisodeFactory | None = None,
             progress: bool = True, jpeg_quality: int = 90) -> dict[str, Any]:
    """Run the plan, skipping complete episodes. Returns {"written": [...], "skipped": [...], "frames": N}."""
    factory = episode_factory or default_episode_factory
    teacher = teacher or ScriptedTeacher(seed)
    writer = DatasetWriter(out, jpeg_quality=jpeg_quality)
    plan = episode_plan(towns, episodes, seed)
    todo = [p for p in plan if not writer.is_complete(p[0])]
    skipped = [p[0] for p in plan if writer.is_complete(p[0])]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo) * (steps + 1) if steps else None, unit="frame", dynamic_ncols=True,
                   desc=f"{len(todo)} episodes ({len(skipped)} done)")
    written, frames = [], 0
    try:
        for name, town, ep_seed in todo:
            if bar is not None:
                bar.set_postfix_str(name)
            ep = factory(town, ep_seed, steps)
            try:
                frames += write_episode(writer, name, town, ep_seed, ep, teacher, bar)
            finally:
                close = getattr(ep, "close", None)
                if callable(close):
                    close()
            written.append(name)
    finally:
        if bar is not None:
            bar.close()
    return {"written": written, "skipped": skipped, "frames": frames}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsdrive_ros.sim.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="dataset folder (created or resumed)")
    ap.add_argument("--towns", default="grid4", help="comma-separated town names (dsdrive_ros.sim.world.TOWNS)")
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="max steps per episode (default: the episode's own end)")
    ap.add_argument("--teacher", choices=("scripted", "vlm"), default="scripted")
    ap.add_argument("--vlm-url", default=None, help="OpenAI-compatible base URL, e.g. http://localhost:8000")
    ap.add_argument("--vlm-model", default="Qwen/Qwen2.5-VL-7B-Instruct")
    ap.add_argument("--vlm-api-key", default=None)
    ap.add_argument("--vlm-timeout", type=float, default=60.0)
    ap.add_argument("--vlm-conversation", action="store_true", help="ask Q1/Q2/Q3 as three turns")
    ap.add_argument("--vlm-on-error", choices=("fail", "scripted"), default="fail")
    ap.add_argument("--jpeg-quality", type=int, default=90)
    ap.add_argument("--focus-view", action="store_true",
                    help="also record front_focus, a 30 deg view of the front camera's centre (for lights)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    towns = [t.strip() for t in args.towns.split(",") if t.strip()]
    scripted = ScriptedTeacher(args.seed)
    teacher: Teacher = scripted
    if args.teacher == "vlm":
        if not args.vlm_url:
            ap.error("--teacher vlm needs --vlm-url")
        from dsdrive_ros.sim.vlm_teacher import VLMTeacher

        vlm = VLMTeacher(args.vlm_url, args.vlm_model, api_key=args.vlm_api_key, timeout=args.vlm_timeout,
                         conversation=args.vlm_conversation)
        teacher = _TeacherWithFallback(vlm, scripted, args.vlm_on_error)
    res = generate(args.out, towns, args.episodes, args.seed, args.steps, teacher,
                   episode_factory=focus_episode_factory if args.focus_view else None,
                   progress=not args.no_progress, jpeg_quality=args.jpeg_quality)
    print(f"wrote {len(res['written'])} episodes ({res['frames']} frames), skipped {len(res['skipped'])} complete",
          file=sys.stderr)
    stats = getattr(teacher, "stats", None)
    if stats:
        print(f"teacher: {stats}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

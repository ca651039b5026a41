#!/usr/bin/env python3
"""Record one short held-out simulated drive into a rosbag2 (mcap) sample for the replay demo.

    python scripts/make_sample_bag.py --out samples/sample [--town grid5] [--seed 424254] [--seconds 30] [--focus-view]

The drive uses a held-out town (never used for training) and a seed outside the training plans;
the expert drives, the scripted teacher explains. The bag holds the node's inputs
(`/camera/<name>/image_raw/compressed`, `/instruction`, `/odom`) and the ground truth
(`/ground_truth/path`, `/ground_truth/reasoning`): see dsdrive_ros/data/bag_export.py.
The bag is written next to OUT and renamed into place when complete.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dsdrive_ros.data.bag_export import export_bag  # noqa: E402
from dsdrive_ros.data.build_dataset import default_episode_factory, episode_meta, focus_episode_factory  # noqa: E402
from dsdrive_ros.data.teacher import ScriptedTeacher  # noqa: E402


def _shrink(images, max_width: int | None):
    if not max_width:
        return images
    out = {}
    for cam, img in images.items():
        h, w = img.shape[:2]
        if w > max_width:
            img = cv2.resize(img, (max_width, int(round(h * max_width / w))), interpolation=cv2.INTER_AREA)
        out[cam] = np.ascontiguousarray(img)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="samples/sample", help="bag directory to create")
    ap.add_argument("--town", default="grid5", help="a town no training used (val or test split, dsdrive_ros.sim.towns)")
    ap.add_argument("--seed", type=int, default=424254)  # two right turns, four instructions
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate-hz", type=float, default=None, help="episode rate (default: the episode's own, else 10)")
    ap.add_argument("--jpeg-quality", type=int, default=80)
    ap.add_argument("--max-width", type=int, default=None, help="downscale wider camera images to this width")
    ap.add_argument("--focus-view", action="store_true",
                    help="also record front_focus (the front camera's centre at 30 deg), for models that read it")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = ap.parse_args(argv)

    try:
        from dsdrive_ros.sim.towns import TRAINING_TOWNS
        if args.town in TRAINING_TOWNS:
            print(f"warning: town {args.town!r} is a training town", file=sys.stderr)
    except ImportError:
        pass

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"{out} exists (use --force)", file=sys.stderr)
        return 1
    # written as <parent>/.<name>.partial/<name> (the mcap file inside is named after the folder)
    tmp_parent = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp_parent, ignore_errors=True)
    tmp_parent.mkdir(parents=True)
    tmp = tmp_parent / out.name

    factory = focus_episode_factory if args.focus_view else default_episode_factory
    ep = factory(args.town, args.seed, int(round(args.seconds * (args.rate_hz or 10.0))))
    rate = args.rate_hz or float(episode_meta(ep).get("rate_hz", 10.0))
    steps = int(round(args.seconds * rate))

    def items():  # Episode(max_steps=N) stops by itself (N+1 frames: the last carries the end status)
        for n, (state, images) in enumerate(ep):
            if n > steps:  # a factory that ignores max_steps
                break
            yield state, _shrink(images, args.max_width)

    try:
        summary = export_bag(items(), tmp, teacher=ScriptedTeacher(args.seed), jpeg_quality=args.jpeg_quality)
    except BaseException:
        shutil.rmtree(tmp_parent, ignore_errors=True)
        raise
    finally:
        close = getattr(ep, "close", None)
        if callable(close):
            close()
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    tmp_parent.rmdir()
    print(f"{out}: {summary.frames} frames, {summary.duration_s:.1f} s, cameras {summary.cameras}, "
          f"{summary.size_bytes / 1e6:.1f} MB; topics {summary.counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

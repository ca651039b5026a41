"""Closed-loop steps per second: no rendering / 1 camera / 4 cameras (SUMO + expert + renderer).

    .venv/bin/python bench/render_speed.py [--town grid4] [--seed 0] [--steps 300] [--width 224 --height 128]

Each configuration drives the same episode (same town, seed and route) for `--steps` model steps at
10 Hz after the world's warm-up; the time covers everything per step (SUMO step, state, expert,
rendering). Also reports the renderer alone (ms per frame) and the agent counts. Writes
bench/results/render_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsdrive_ros.sim.cameras import CameraRig, default_cameras  # noqa: E402
from dsdrive_ros.sim.episode import Episode, EpisodeConfig  # noqa: E402


def run(town: str, seed: int, steps: int, cams: list | None, render: bool) -> dict:
    rig = CameraRig(cams) if cams else CameraRig()
    ep = Episode(town=town, seed=seed, cameras=rig,
                 config=EpisodeConfig(render=render, max_steps=steps + 5))
    it = ep.run()
    # first step outside the timing (renderer precompute, subscriptions)
    t_build = time.perf_counter()
    next(it)
    t_build = time.perf_counter() - t_build
    n, agents = 0, 0
    t0 = time.perf_counter()
    for state, images in it:
        n += 1
        agents += len(state.agents)
        if n >= steps:
            break
    dt = time.perf_counter() - t0
    render_ms = None
    if render:
        r = ep.renderer
        st = ep.ego.state
        boxes = ep._observe(ep._read_agents())[1]
        tls = ep.world.tls_states()
        t1 = time.perf_counter()
        for _ in range(50):
            r.render((st.x, st.y, st.yaw), boxes, tls)
        render_ms = (time.perf_counter() - t1) / 50 * 1e3
    it.close()
    return {"cameras": len(rig.cameras) if render else 0, "steps": n, "seconds": round(dt, 3),
            "steps_per_s": round(n / dt, 1), "first_step_s": round(t_build, 3),
            "renderer_ms_per_frame": None if render_ms is None else round(render_ms, 2),
            "mean_agents_in_state": round(agents / max(n, 1), 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--town", default="grid4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--width", type=int, default=224)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "render_speed.json"))
    a = ap.parse_args()
    cams4 = default_cameras(a.width, a.height)
    rows = {
        "no_render": run(a.town, a.seed, a.steps, None, False),
        "front_camera": run(a.town, a.seed, a.steps, cams4[:1], True),
        "four_cameras": run(a.town, a.seed, a.steps, cams4, True),
    }
    out = {"town": a.town, "seed": a.seed, "resolution": [a.width, a.height], "model_hz": 10,
           "cpu_count": os.cpu_count(), "loadavg_1m_at_end": round(os.getloadavg()[0], 2), "machine": platform.machine(),
           "python": platform.python_version(), "results": rows,
           "note": "wall-clock per model step incl. SUMO, scene state, expert and rendering; "
                   "single process, other jobs may share the CPU"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    for k, v in rows.items():
        print(f"{k:>13}: {v['steps_per_s']:7.1f} steps/s"
              + (f"  (renderer {v['renderer_ms_per_frame']} ms/frame)" if v["renderer_ms_per_frame"] else ""))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

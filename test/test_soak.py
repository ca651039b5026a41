"""Soak (short): 1,000 camera sets at 30 Hz through the real node; RSS and accounting.

The 10,000-set version is ``bench/soak.py`` (about 6 minutes at 30 Hz: too long for `make test`;
results in bench/results/soak.json). Same code, same checks:
  * RSS of the node grows < 5 % from the end of warm-up (first 100 sets) to the end;
  * every set sent is a Path received or counted by the node (keep-latest drops, sync rejects,
    model failures, camera messages that never reached the node): nothing unaccounted;
  * the plan messages' frames_dropped add up to the node's sets_dropped.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build; . scripts/ros_env.sh)")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from soak import run_soak  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.mark.timeout(240)
def test_soak_1000_sets(model_dir: Path, tmp_path: Path) -> None:
    res = run_soak(model_dir, sets=1000, rate_hz=30.0, workdir=tmp_path)
    summary = {k: res[k] for k in ("accounting", "node", "transport_lost_per_camera", "latency_ms")}
    summary["rss_kib"] = {k: v for k, v in res["rss_kib"].items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    assert res["ok"], f"{res['failures']}\n{json.dumps(summary, indent=1)}"
    acc = res["accounting"]
    assert acc["sent"] == 1000 and acc["unaccounted"] == 0 and acc["node_anchor_identity"] == 0
    assert acc["paths"] > 0 and res["rss_kib"]["growth_pct"] < 5.0

"""Per-failure counts of a closed-loop drive (eval/diagnose.py), on a real SUMO map and a real eval."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("libsumo")

from dsdrive_ros.eval.diagnose import StepTrace, aggregate, diagnose_route, where_standing  # noqa: E402
from dsdrive_ros.sim.static_map import StaticMap  # noqa: E402
from dsdrive_ros.sim.world import generate_world  # noqa: E402


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    return StaticMap.from_net(generate_world("grid3", 0, str(tmp_path_factory.mktemp("cache"))).net)


def _at(static, where):
    if where == "junction":
        return static.junctions[sorted(static.junctions)[5]].mean(axis=0)
    lane = next(ln for ln in static.lanes.values() if ln.function == "normal" and ln.kind == "road"
                and ln.length > 60)
    return lane.shape[0] + (lane.shape[-1] - lane.shape[0]) * 0.5


def test_where_the_ego_stands(static):
    assert where_standing(static, *_at(static, "junction")) == "junction"
    assert where_standing(static, *_at(static, "lane")) == "lane"
    crossing = next(ln for ln in static.lanes.values() if ln.function == "crossing")
    assert where_standing(static, *crossing.shape.mean(axis=0)) == "crossing"


def test_waits_creeping_hesitation_and_standstills(static):
    jx, jy = _at(static, "junction")
    lx, ly = _at(static, "lane")
    trace = []
    t = 0.0

    def add(n, speed, action, reason, x, y):
        nonlocal t
        for _ in range(n):
            trace.append(StepTrace(t, float(x), float(y), speed, 0.0, 0, action, reason))
            t += 0.1

    add(10, 8.0, "stop", "light", lx, ly)  # braking from speed: not a wait yet
    add(10, 1.0, "stop", "light", lx, ly)  # rolls towards a red light: creeping
    add(30, 0.0, "stop", "light", jx, jy)  # then stands 3 s inside a junction
    add(5, 0.0, "go", "free", lx, ly)  # stands though the road is free: hesitation
    add(5, 9.0, "go", "free", lx, ly)
    route = SimpleNamespace(junctions=[], instructions=[])
    d = diagnose_route(trace, route, static, {"status": "route_completed",
                                              "infraction_list": [{"kind": "red_light", "speed": 3.5}]})
    assert (d.waiting_steps, d.creeping_steps, d.hesitation_steps) == (40, 10, 5)
    assert d.wait_reasons == {"light": 40}
    assert d.standstills == {"junction": 1}  # the 0.5 s stand in the lane is too short to count
    assert d.red_light_speeds == [3.5] and d.deviation is None
    a = aggregate([vars(d), vars(d)])
    assert a["creeping_share"] == pytest.approx(0.25) and a["standstills"] == {"junction": 2}


def test_eval_with_diagnose_names_the_deviation_junction(tmp_path):
    from dsdrive_ros.eval.cli import main

    out = tmp_path / "cv"
    # constant velocity never turns: route 0 of seed 1 on grid3 leaves the route at its first turn
    assert main(["--agent", "constant-velocity", "--town", "grid3", "--routes", "1", "--seed", "1",
                 "--max-steps", "600", "--out", str(out), "--no-plots", "--no-progress", "--diagnose",
                 "--cache", str(tmp_path / "cache")]) == 0
    res = json.loads((out / "results.json").read_text())
    route = res["routes"][0]
    assert route["status"] == "route_deviation"
    dev = route["diagnosis"]["deviation"]
    assert dev["legs"] >= 3 and dev["maneuver"] in ("left", "right") and dev["told_s_before_entry"] > 0
    assert route["diagnosis"]["steps"] >= route["steps"]  # every scored step was shadowed
    assert res["mean"]["diagnosis"]["routes"] == 1
    assert "## Diagnosis" in (out / "summary.md").read_text()
    assert np.isfinite(res["mean"]["DS"])

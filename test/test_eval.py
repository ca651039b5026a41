"""Closed-loop evaluation: LMDrive's PID follower, the LangAuto arithmetic, and dsdrive-eval end to end
(expert, constant-velocity, and the random-weight model through the real dsdrive_node)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsdrive_ros.policies.waypoint_policies import ConstantVelocityPolicy, transform_waypoints
from dsdrive_ros.policies.controller import PIDController, PIDParams, WaypointController
from dsdrive_ros.sim.ego import Ego, EgoParams, EgoState


def _straight(v: float, dt: float = 0.5, k: int = 5, y: float = 0.0) -> np.ndarray:
    t = dt * np.arange(1, k + 1)
    return np.stack([v * t, np.full_like(t, y)], 1)


# ---------------------------------------------------------------------------------------- PID


def test_pid_matches_lmdrive_arithmetic():
    """integral = mean of the whole (zero-filled) window, derivative = last difference."""
    pid = PIDController(1.25, 0.75, 0.3, n=40)
    errs = [0.2, -0.1, 0.4, 0.4]
    window = [0.0] * 40
    for e in errs:
        window = (window + [e])[-40:]
        expect = 1.25 * e + 0.75 * np.mean(window) + 0.3 * (window[-1] - window[-2])
        assert pid.step(e) == pytest.approx(expect)
    pid.reset()
    assert pid.step(0.0) == 0.0


def test_straight_from_rest_accelerates_without_steering():
    c = WaypointController(dt=0.5)
    ctrl = c.control(_straight(5.0), speed=0.0)
    # delta = clip(5 - 0, 0, 0.35) = 0.35 -> 5*0.35 + 0.5*0.35/40 + 1*0.35 > 0.75 -> capped
    assert ctrl.throttle == pytest.approx(0.75)
    assert ctrl.brake == 0.0 and ctrl.steer == 0.0
    assert c.last["desired_speed"] == pytest.approx(5.0)


def test_desired_speed_uses_the_models_waypoint_spacing():
    wp = _straight(4.0, dt=0.5)  # 2 m apart
    c5, c10 = WaypointController(dt=0.5), WaypointController(dt=1.0)
    c5.control(wp, 1.0)
    c10.control(wp, 1.0)
    assert c5.last["desired_speed"] == pytest.approx(4.0)
    assert c10.last["desired_speed"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        WaypointController(dt=0.0)


def test_steer_sign_and_magnitude_base_link_left_positive():
    # aim = mean(wp0, wp1) at 45 deg to the LEFT (base_link y > 0) -> LMDrive angle -0.5 (its
    # + is right) -> PID -> clip -> x0.8 -> our steer is + (left)
    wp = np.array([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0], [7.0, 7.0], [9.0, 9.0]])
    c = WaypointController(dt=0.5)
    ctrl = c.control(wp, speed=3.0)
    pid = 1.25 * -0.5 + 0.75 * (-0.5 / 40) + 0.3 * -0.5
    assert c.last["angle"] == pytest.approx(-0.5)
    assert ctrl.steer == pytest.approx(-pid * 0.8)
    assert ctrl.steer > 0
    right = WaypointController(dt=0.5).control(wp * [1, -1], speed=3.0)
    assert right.steer == pytest.approx(-ctrl.steer)
    # saturation: clip to [-1, 1] before the x0.8
    hard = WaypointController(dt=0.5).control(np.array([[0.0, 2.0], [0.0, 4.0]]), speed=3.0)
    assert hard.steer == pytest.approx(0.8)


def test_aim_behind_steers_towards_it():
    c = WaypointController(dt=0.5)
    ctrl = c.control(np.array([[-2.0, 1.0], [-4.0, 2.0]]), speed=2.0)
    assert ctrl.steer > 0  # behind-left -> left (LMDrive's unwrapped angle would steer right)


def test_no_angle_error_at_standstill():
    c = WaypointController(dt=0.5)
    ctrl = c.control(_straight(3.0, y=2.0), speed=0.0)
    assert c.last["angle"] == 0.0 and ctrl.steer == 0.0


def test_brake_rules():
    p = PIDParams()
    c = WaypointController(dt=0.5, params=p)
    stop = c.control(np.zeros((5, 2)), speed=3.0)  # desired 0 < 0.1
    assert stop.brake == 1.0 and stop.throttle == 0.0
    fast = WaypointController(dt=0.5).control(_straight(4.0), speed=4.0 * 1.11)  # ratio > 1.1
    assert fast.brake == 1.0 and fast.throttle == 0.0
    ok = WaypointController(dt=0.5).control(_straight(4.0), speed=4.0 * 1.09)
    assert ok.brake == 0.0
    with pytest.raises(ValueError):
        WaypointController(dt=0.5).control(np.array([[np.nan, 0.0], [1.0, 0.0]]), 1.0)


def test_pid_drives_the_ego_model_onto_a_line_at_the_desired_speed():
    """Closed loop with the sim's bicycle model (no SUMO): start 2 m right of a straight lane
    along world x, heading along it; waypoints = points on the lane ahead at 6 m/s."""
    dt = 0.1
    ego = Ego(EgoState(0.0, -2.0, 0.0, 0.0), EgoParams())
    c = WaypointController(dt=0.5)
    v_ref = 6.0
    for _ in range(400):  # 40 s at 10 Hz
        s = ego.state
        # the lane (y = 0) ahead of the car, at v_ref, in base_link
        xs = s.x + v_ref * 0.5 * np.arange(1, 6)
        world = np.stack([xs, np.zeros(5)], 1)
        wp = transform_waypoints(world, (0.0, 0.0, 0.0), (s.x, s.y, s.yaw))
        ego.step(c.control(wp, s.speed), dt)
    s = ego.state
    assert abs(s.y) < 0.3, s
    assert abs(math.atan2(math.sin(s.yaw), math.cos(s.yaw))) < 0.05, s
    assert 0.8 * v_ref < s.speed < 1.15 * v_ref, s


def test_transform_waypoints_roundtrip():
    wp = np.array([[1.0, 0.5], [3.0, -1.0]])
    a, b = (10.0, -3.0, 0.7), (12.0, 1.0, -2.0)
    back = transform_waypoints(transform_waypoints(wp, a, b), b, a)
    assert np.allclose(back, wp)
    # a point 1 m ahead of a car at the origin facing +y is 1 m to the LEFT of a car facing +x
    assert np.allclose(transform_waypoints([[1.0, 0.0]], (0, 0, math.pi / 2), (0, 0, 0)), [[0, 1]])


def test_constant_velocity_plan():
    from dsdrive_ros.sim.scene import SceneState

    a = ConstantVelocityPolicy(dt=0.5, count=5, min_speed=4.0)
    st = SceneState(step=0, t=0.0, x=0, y=0, yaw=0, speed=6.0, speed_limit=13.9, instruction="",
                    instruction_id=0, maneuver="follow", end=False, route_progress=0.0)
    assert np.allclose(a.plan(st, {}), _straight(6.0))
    st.speed = 1.0
    assert np.allclose(a.plan(st, {}), _straight(4.0))  # the floor


# ------------------------------------------------------------------------------- LangAuto math


def test_langauto_arithmetic_hand_made():
    from dsdrive_ros.eval import score

    r = score.score_route(500.0, 250.0, ["collision_pedestrian", "red_light"])
    assert r["RC"] == pytest.approx(50.0)
    assert r["IS"] == pytest.approx(0.50 * 0.70)
    assert r["DS"] == pytest.approx(50.0 * 0.35)
    # two vehicle collisions and 10 % of the route driven off it
    r = score.score_route(400.0, 400.0, ["collision_vehicle"] * 2, off_route_m=40.0)
    assert r["IS"] == pytest.approx(0.6 * 0.6 * 0.9)
    assert r["DS"] == pytest.approx(100.0 * 0.324)
    assert score.score_route(100.0, 150.0, [])["RC"] == 100.0  # clipped
    assert score.score_route(100.0, 10.0, ["collision_static"])["IS"] == pytest.approx(0.65)
    m = score.aggregate([{"RC": 100.0, "IS": 1.0, "DS": 100.0, "infractions": {}},
                         {"RC": 50.0, "IS": 0.5, "DS": 25.0, "infractions": {"red_light": 1}}])
    # the mean DS is the mean of the per-route DS, not mean RC x mean IS
    assert m["DS"] == pytest.approx(62.5) and m["RC"] == pytest.approx(75.0)
    assert m["infractions"] == {"red_light": 1}


# ------------------------------------------------------------------------------- dsdrive-eval


def _sumo_or_skip():
    pytest.importorskip("libsumo", reason="SUMO not installed (pip install eclipse-sumo libsumo)")
    pytest.importorskip("matplotlib")


def _check_results(out: Path, routes: int, agent: str) -> dict:
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["agent"] == agent
    assert len(res["routes"]) == routes
    for r in res["routes"]:
        assert 0.0 <= r["RC"] <= 100.0 and 0.0 <= r["IS"] <= 1.0
        assert r["DS"] == pytest.approx(r["RC"] * r["IS"])
        png = out / r["png"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = res["mean"]
    assert m["DS"] == pytest.approx(np.mean([r["DS"] for r in res["routes"]]))
    summary = (out / "summary.md").read_text()
    assert "| **mean** |" in summary and summary.count("| 0 | ") == 1
    return res


@pytest.mark.timeout(120)
def test_eval_expert_short_and_deterministic(tmp_path):
    _sumo_or_skip()
    from dsdrive_ros.eval.cli import main

    argv = ["--agent", "expert", "--routes", "1", "--seed", "5", "--max-steps", "40",
            "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    a = _check_results(tmp_path / "a", 1, "expert")
    r = a["routes"][0]
    assert r["status"] == "max_steps" and r["progress_m"] > 5.0  # it drove
    assert r["infractions"] == {}
    assert main(argv + ["--out", str(tmp_path / "b"), "--no-plots"]) == 0
    b = json.loads((tmp_path / "b" / "results.json").read_text())["routes"][0]
    # same seed -> same route, same drive
    assert b["seed"] == r["seed"] and b["instructions"] == r["instructions"]
    assert b["route_length_m"] == pytest.approx(r["route_length_m"])
    assert b["progress_m"] == pytest.approx(r["progress_m"], abs=1e-6)


def test_collision_geometry_in_the_egos_frame():
    """The other agent's pose in base_link (x forward, y left), as recorded with each collision."""
    from dsdrive_ros.eval.infractions import relative_pose

    # ego at (10, 5) facing north; a car 4 m behind it, 1 m to its left (west), facing north-east
    x, y, yaw = relative_pose(10.0, 5.0, math.pi / 2, 9.0, 1.0, math.pi / 4)
    assert (x, y) == pytest.approx((-4.0, 1.0), abs=0.01)
    assert yaw == pytest.approx(-math.pi / 4, abs=1e-3)
    # oncoming: headings differ by pi, wrapped into (-pi, pi]
    assert abs(relative_pose(0.0, 0.0, 0.1, 5.0, 0.0, 0.1 + math.pi)[2]) == pytest.approx(math.pi, abs=1e-3)


def test_a_collision_is_recorded_with_speed_and_geometry():
    """Episode._add, the one place infractions are made, on a stand-in for the running episode."""
    from dataclasses import asdict
    from types import SimpleNamespace

    from dsdrive_ros.eval.infractions import Infraction
    from dsdrive_ros.sim.episode import Episode, EpisodeConfig
    from dsdrive_ros.eval.report import collisions_ego_standing

    ep = SimpleNamespace(status="running", steps=12, world=SimpleNamespace(time=70.5), _t0=60.0,
                         ego=SimpleNamespace(state=EgoState(x=1.0, y=2.0, yaw=0.0, speed=0.2)),
                         infractions=[], _pending_events=[], config=EpisodeConfig())
    Episode._add(ep, "collision_vehicle", "veh7", (-4.5, 0.3, 0.1))
    assert ep.infractions == [Infraction("collision_vehicle", 12, 10.5, 1.0, 2.0, "veh7", 0.2,
                                         (-4.5, 0.3, 0.1))]
    assert ep._pending_events == ["collision_vehicle:veh7"]
    assert collisions_ego_standing([{"infraction_list": [asdict(i) for i in ep.infractions]}]) == 1


def test_private_ros_domain(monkeypatch):
    from dsdrive_ros.node.process import private_domain

    monkeypatch.setenv("ROS_DOMAIN_ID", "7")
    d = private_domain()
    assert 1 <= d <= 232 and d != 7 and os.environ["ROS_DOMAIN_ID"] == str(d)
    assert private_domain(42) == 42 and os.environ["ROS_DOMAIN_ID"] == "42"
    with pytest.raises(ValueError, match="0..232"):
        private_domain(233)


def test_collisions_while_standing_are_counted_apart():
    from dsdrive_ros.eval.report import collisions_ego_standing

    routes = [{"infraction_list": [{"kind": "collision_vehicle", "speed": 0.0},
                                   {"kind": "collision_vehicle", "speed": 6.2},
                                   {"kind": "red_light", "speed": 0.1}]},
              {"infraction_list": [{"kind": "collision_pedestrian", "speed": 0.3}]}]
    assert collisions_ego_standing(routes) == 2


@pytest.mark.timeout(120)
def test_eval_constant_velocity_short(tmp_path):
    _sumo_or_skip()
    from dsdrive_ros.eval.cli import main

    assert main(["--agent", "constant-velocity", "--routes", "1", "--seed", "0", "--max-steps",
                 "40", "--out", str(tmp_path), "--no-progress"]) == 0
    res = _check_results(tmp_path, 1, "constant-velocity")
    r = res["routes"][0]
    assert r["progress_m"] > 3.0  # the 4 m/s floor makes it leave the start
    assert r["agent"]["steps"] >= 40


@pytest.mark.timeout(120)
def test_eval_model_in_process_matches_the_node_pipeline_inputs(tmp_path, model_dir):
    """--agent model-inprocess: the exported model in this process (no DDS), same rig and spacing."""
    _sumo_or_skip()
    from dsdrive_ros.eval.cli import main

    assert main(["--agent", "model-inprocess", "--model-dir", str(model_dir), "--routes", "1", "--seed",
                 "0", "--max-steps", "20", "--out", str(tmp_path), "--no-progress"]) == 0
    res = _check_results(tmp_path, 1, "model-inprocess")
    assert res["routes"][0]["agent"]["steps"] >= 20
    assert res["config"]["waypoint_dt"] == json.loads((model_dir / "config.json").read_text())[
        "waypoints"]["dt_s"]


@pytest.mark.timeout(180)
def test_eval_model_through_the_real_node(tmp_path, model_dir):
    """Random weights: the score means nothing; the pipeline does (the node answers nearly every
    frame in lock-step, results/summary/PNG are written, the node stops cleanly)."""
    _sumo_or_skip()
    pytest.importorskip("rclpy", reason="needs the ROS 2 wheels (make venv)")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dsdrive_ros.eval.cli", "--agent", "model", "--model-dir",
           str(model_dir), "--routes", "1", "--seed", "0", "--max-steps", "60", "--out", str(out),
           "--no-progress", "--plan-timeout", "5", "--startup-timeout", "120"]
    env = dict(os.environ, FASTDDS_BUILTIN_TRANSPORTS="LARGE_DATA")
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170)
    log = (out / "node.log").read_text(errors="replace") if (out / "node.log").exists() else ""
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:] + "\nnode.log:\n" + log[-3000:]
    # its own node on a domain of its own: a parallel run on this machine cannot feed it
    domain = json.loads((out / "results.json").read_text())["config"]["ros_domain_id"]
    assert domain is not None and str(domain) != env.get("ROS_DOMAIN_ID", "0")
    res = _check_results(out, 1, "model")
    a = res["routes"][0]["agent"]
    assert a["plans"] + a["missed"] >= 60
    assert a["plans"] >= 0.9 * (a["plans"] + a["missed"]), a
    assert a["instruction_mismatch"] == 0, a
    assert res["config"]["waypoint_dt"] == json.loads((model_dir / "config.json").read_text())[
        "waypoints"]["dt_s"]
    assert res["config"]["node_exit_code"] == 0, log[-3000:]
    assert "plans" in p.stdout

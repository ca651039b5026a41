"""Expert driver on a hand-made route without SUMO (closed loop with the bicycle model)."""
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest

from dsdrive_ros.policies.conflicts import boxes, overlaps
from dsdrive_ros.policies.expert import Expert, ExpertParams
from dsdrive_ros.policies.longitudinal import stop_accel, travel_time
from dsdrive_ros.sim.ego import Ego, EgoParams, EgoState
from dsdrive_ros.sim.routes import Route, segment_instructions
from dsdrive_ros.sim.scene import RoadUser, SceneState


def _route(points: np.ndarray) -> Route:
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    n = len(points)
    return Route(["e"], ["e_0"], points, s, np.full(n, 3.2), np.full(n, 13.9), np.zeros(n, bool),
                 [], segment_instructions([], float(s[-1]), random.Random(0)))


def _drive(route: Route, agents=(), steps=400, dt=0.1):
    ex = Expert()
    p = EgoParams()
    info = SimpleNamespace(route=route, ego_params=p, dt=dt, world=None, tls_states=lambda: {},
                           all_agents=None)
    ex.reset(info)
    x, y, yaw = route.point_at(0.0)
    ego = Ego(EgoState(x, y, yaw, 0.0), p)
    log = []
    for k in range(steps):
        st = ego.state
        c, s = math.cos(st.yaw), math.sin(st.yaw)
        ags = [RoadUser(a.id, a.kind, a.x, a.y, a.yaw, a.length, a.width, a.speed,
                        c * (a.x - st.x) + s * (a.y - st.y), -s * (a.x - st.x) + c * (a.y - st.y))
               for a in agents]
        state = SceneState(k, k * dt, st.x, st.y, st.yaw, st.speed, 13.9, "", 0, "follow", False,
                           0.0, agents=ags)
        ctrl = ex.act(state, {})
        log.append((st.x, st.y, st.speed, state.action, ex.tracker.lateral))
        ego.step(ctrl, dt)
    return np.array([r[:3] for r in log]), [r[3] for r in log], np.array([r[4] for r in log])


def test_stop_accel_stops_at_the_point():
    p = ExpertParams()
    x, v = 0.0, 8.0
    for _ in range(400):
        a = max(stop_accel(v, 9.0, 30.0 - x, p), -p.max_decel)
        v = max(v + a * 0.05, 0.0)
        x += v * 0.05
    assert v == 0.0 and 28.5 < x <= 30.0


def test_travel_time_and_sat():
    assert travel_time(0.0, 5.0, 9.0) == 0.0
    assert travel_time(10.0, 5.0, 5.0) == pytest.approx(2.0)
    assert travel_time(3.0, 0.0, 9.0, a=1.5) == pytest.approx(2.0)
    A = boxes(np.array([0.0, 10.0]), np.array([0.0, 0.0]), np.array([0.0, 0.0]), 4.0, 2.0)
    B = boxes(np.array([3.0]), np.array([0.5]), np.array([math.pi / 4]), 2.0, 1.0)[0]
    assert overlaps(A, B).tolist() == [True, False]


def test_follows_a_curve_and_stops_at_the_end():
    t = np.linspace(0, math.pi / 2, 60)
    arc = np.stack([60 + 20 * np.sin(t), 20 - 20 * np.cos(t)], 1)  # R = 20 m left turn
    pts = np.vstack([np.stack([np.arange(0, 60.0), np.zeros(60)], 1), arc,
                     np.stack([np.full(40, 80.0), np.arange(21.0, 61.0)], 1)])
    route = _route(pts)
    traj, actions, lat = _drive(route, steps=500)
    assert lat.max() < 0.35  # stays on its lane
    assert traj[:, 2].max() <= ExpertParams().max_speed + 0.1
    end = route.point_at(route.length)
    assert math.hypot(traj[-1, 0] - end[0], traj[-1, 1] - end[1]) < 2.5 and traj[-1, 2] < 0.05
    assert actions[-1] == "stop" and "go" in actions


def test_stops_for_a_pedestrian_standing_in_the_lane():
    route = _route(np.stack([np.arange(0, 200.0), np.zeros(200)], 1))
    ped = SimpleNamespace(id="p0", kind="pedestrian", x=60.0, y=0.3, yaw=math.pi / 2, length=0.5,
                          width=0.6, speed=0.0)
    traj, actions, _ = _drive(route, agents=[ped], steps=300)
    front = traj[:, 0] + EgoParams().length / 2
    assert front.max() < 60.0 - 0.3  # never touches it
    assert traj[-1, 2] < 0.05 and front[-1] > 50.0  # stopped close behind it
    assert actions[-1] == "stop"


@pytest.mark.parametrize("v0,offset,heading", [(9.0, 0.0, 0.7), (9.0, 2.0, 0.0), (13.0, 0.5, 0.3),
                                               (4.0, 1.0, 0.5)])
def test_lateral_loop_recovers_without_limit_cycle(v0, offset, heading):
    """A large initial error at speed (e.g. leaving a sharp junction) must die out."""
    route = _route(np.stack([np.arange(0, 2000.0), np.zeros(2000)], 1))
    ex = Expert(ExpertParams(max_speed=max(v0, 9.0)))
    p = EgoParams()
    ex.reset(SimpleNamespace(route=route, ego_params=p, dt=0.1, world=None, tls_states=lambda: {},
                             all_agents=None))
    ego = Ego(EgoState(10.0, offset, heading, v0), p)
    ys = []
    for k in range(200):
        st = ego.state
        ctrl = ex.act(SceneState(k, 0.0, st.x, st.y, st.yaw, st.speed, 13.9, "", 0, "follow",
                                 False, 0.0), {})
        ego.step(ctrl, 0.1)
        ys.append(ego.state.y)
    ys = np.abs(np.array(ys))
    assert ys[60:].max() < 0.05  # settled within 6 s
    assert ys.max() < abs(offset) + 3.0  # no wild overshoot


def test_waits_at_the_entry_when_a_car_stands_in_the_far_side_of_the_box():
    """A car standing at a junction's exit, farther than the usual 25 m sweep when we could still
    stop: we wait before the box instead of coming to rest inside it, where crossing traffic drives."""
    from dsdrive_ros.sim.routes import JunctionPass

    pts = np.stack([np.arange(0.0, 200.0, 1.0), np.zeros(200)], 1)
    route = _route(pts)
    route.junctions = [JunctionPass("J", 60.0, 80.0, "s", "straight", False)]
    route.in_junction[60:81] = True
    parked = SimpleNamespace(id="131", kind="vehicle", x=84.0, y=0.0, yaw=0.0, length=4.5, width=1.8,
                             speed=0.0)
    xs, actions, _ = _drive(route, [parked], steps=300)
    front = xs[:, 0] + 0.5 * EgoParams().length
    assert front.max() < 60.0, "came to rest inside the junction"
    assert xs[-1, 2] < 0.1 and front[-1] > 45.0 and actions[-1] == "stop"  # waits near the line

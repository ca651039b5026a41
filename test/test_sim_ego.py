"""Kinematic bicycle model sanity."""
import math

import pytest

from dsdrive_ros.sim.ego import Control, Ego, EgoParams, EgoState


def test_straight_constant_speed():
    ego = Ego(EgoState(0.0, 0.0, 0.0, 5.0), EgoParams(drag=0.0))
    for _ in range(20):
        ego.step(Control(accel=0.0), 0.1)
    s = ego.state
    assert math.isclose(s.x, 10.0, abs_tol=1e-9) and abs(s.y) < 1e-12 and s.speed == 5.0


def test_accel_and_speed_limit_and_no_reverse():
    p = EgoParams(max_speed=10.0, drag=0.0)
    ego = Ego(EgoState(0, 0, 0, 0.0), p)
    for _ in range(100):
        ego.step(Control(throttle=1.0), 0.1)
    assert ego.state.speed == pytest.approx(10.0)
    for _ in range(100):
        ego.step(Control(brake=1.0), 0.1)
    assert ego.state.speed == 0.0
    x = ego.state.x
    ego.step(Control(brake=1.0), 0.1)
    assert ego.state.x == x  # does not roll backwards


def test_braking_distance_matches_kinematics():
    p = EgoParams(drag=0.0)
    ego = Ego(EgoState(0, 0, 0, 10.0), p)
    while ego.state.speed > 0:
        ego.step(Control(accel=-5.0), 0.01)
    assert ego.state.x == pytest.approx(10.0 ** 2 / (2 * 5.0), rel=0.01)


def test_turning_radius():
    """Constant wheel angle: the centre moves on a circle of radius lr / sin(beta)."""
    p = EgoParams(max_steer_rate=100.0, drag=0.0)
    delta = 0.3
    ego = Ego(EgoState(0, 0, 0, 3.0, steer=delta), p)
    pts = []
    for _ in range(2000):
        ego.step(Control(steer_angle=delta, accel=0.0), 0.01)
        pts.append((ego.state.x, ego.state.y))
    lr = p.wheelbase / 2
    beta = math.atan(lr / p.wheelbase * math.tan(delta))
    R = lr / math.sin(beta)
    # circle centre is to the left; fit: all points at distance R from it
    cx = -R * math.sin(beta)
    cy = R * math.cos(beta)
    for x, y in pts[::100]:
        assert math.hypot(x - cx, y - cy) == pytest.approx(R, rel=1e-3)
    assert ego.state.yaw != 0.0


def test_left_is_positive_and_rate_limited():
    p = EgoParams(max_steer_rate=1.0)
    ego = Ego(EgoState(0, 0, 0, 5.0), p)
    ego.step(Control(steer=1.0, throttle=0.0), 0.1)
    assert ego.state.steer == pytest.approx(0.1)  # rate limit 1 rad/s
    for _ in range(20):
        ego.step(Control(steer=1.0), 0.1)
    assert ego.state.steer == pytest.approx(p.max_steer)
    assert ego.state.y > 0 and ego.state.yaw > 0  # + steer turns left
    ego.step(Control(steer_rate=-2.0), 0.1)  # rate command, clipped by the actuator limit
    assert ego.state.steer == pytest.approx(p.max_steer - 0.1)


def test_front_bumper_and_corners():
    ego = Ego(EgoState(10.0, 5.0, math.pi / 2, 0.0), EgoParams(length=4.0, width=2.0))
    fx, fy = ego.front_bumper()
    assert fx == pytest.approx(10.0) and fy == pytest.approx(7.0)
    cs = ego.corners()
    assert min(c[1] for c in cs) == pytest.approx(3.0) and max(c[0] for c in cs) == pytest.approx(11.0)

"""Camera model and OpenCV renderer on a hand-made map (no SUMO)."""
import hashlib
import math

import numpy as np
import pytest

from dsdrive_ros.sim.cameras import CameraConfig, CameraRig, default_cameras
from dsdrive_ros.sim.render import Box, Renderer, clip_near, triangulate
from dsdrive_ros.sim.world import LaneInfo, StaticMap, StopLine


def _map() -> StaticMap:
    lanes = {}

    def lane(lid, edge, idx, kind, y, fn="normal", x0=0.0, x1=100.0, w=3.2):
        shape = np.array([[x0, y], [x1, y]])
        lanes[lid] = LaneInfo(lid, edge, idx, fn, kind, shape, w, x1 - x0, 13.9, None)

    lane("E_0", "E", 0, "sidewalk", -5.8, w=2.0)
    lane("E_1", "E", 1, "road", -4.8 + 0.0)
    lane("E_2", "E", 2, "road", -1.6)
    lane("W_0", "W", 0, "road", 1.6)
    lanes["W_0"].shape = lanes["W_0"].shape[::-1].copy()
    lanes[":J_c0_0"] = LaneInfo(":J_c0_0", ":J_c0", 0, "crossing", "sidewalk",
                                np.array([[104.0, -7.0], [104.0, 7.0]]), 4.0, 14.0, 1.0, "J")
    junction = np.array([[100.0, -7.0], [115.0, -7.0], [115.0, 7.0], [100.0, 7.0]])
    sl = StopLine("J", 0, "E_2", "X_2", ":J_0_0", np.array([100.0, 0.0]), np.array([100.0, -3.2]), "s")
    return StaticMap(lanes, {"J": junction}, {"J": "J"}, [sl], {"E_2": [sl]},
                     (0.0, -10.0, 115.0, 10.0), {"E": ["E_0", "E_1", "E_2"], "W": ["W_0"]}, [],
                     {"E": ("A", "J"), "W": ("J", "A")})


def _hash(img):
    return hashlib.sha1(img.tobytes()).hexdigest()


def test_intrinsics_extrinsics():
    cam = CameraConfig("front")
    K = cam.intrinsics()
    assert K[0, 0] == pytest.approx(112 / math.tan(math.radians(50)))
    assert (K[0, 2], K[1, 2]) == (112, 64)
    T = cam.extrinsics()
    # optical z (3rd column) points forward along base_link x; optical y points down
    assert np.allclose(T[:3, 2], [1, 0, 0]) and np.allclose(T[:3, 1], [0, 0, -1])
    assert np.allclose(T[:3, 3], [1.3, 0, 2.3])
    names = [c.name for c in default_cameras()]
    assert names == ["front", "left", "right", "rear"]
    left = default_cameras()[1].extrinsics()
    assert np.allclose(left[:3, 2], [0.5, math.sqrt(3) / 2, 0])  # looks 60 deg to the left


def test_projection_point_ahead_hits_centre():
    rig = CameraRig()
    cam = rig.cameras[0]
    R, t = rig.world_to_optical(cam, 10.0, 20.0, math.pi / 2)  # ego facing north
    p = R @ np.array([10.0, 50.0, 2.3]) + t  # 28.7 m ahead of the camera, at its height
    K = cam.intrinsics()
    u, v = K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]
    assert u == pytest.approx(112) and v == pytest.approx(64) and p[2] == pytest.approx(28.7)


def test_clip_near():
    # a quad crossing z = 1: half of it survives, clipped exactly at z = 1
    P = np.array([[[-1, 0, 0.0], [1, 0, 0.0], [1, 0, 2.0], [-1, 0, 2.0]],
                  [[-1, 0, 3.0], [1, 0, 3.0], [1, 0, 4.0], [-1, 0, 4.0]],  # all in front
                  [[-1, 0, -3.0], [1, 0, -3.0], [1, 0, -1.0], [-1, 0, -1.0]]])  # all behind
    Q, keep = clip_near(P, 1.0)
    assert keep.tolist() == [True, True, False]
    assert Q.shape == (2, 5, 3)
    assert Q[0][:, 2].min() == pytest.approx(1.0)
    assert {tuple(v) for v in np.round(Q[0], 6)} == {(1, 0, 1), (1, 0, 2), (-1, 0, 2), (-1, 0, 1)}
    assert {tuple(v) for v in Q[1]} == {tuple(v) for v in P[1]}


def test_triangulate_concave():
    L = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], float)
    tris = triangulate(L)
    area = sum(abs((t[1] - t[0])[0] * (t[2] - t[0])[1] - (t[1] - t[0])[1] * (t[2] - t[0])[0]) / 2
               for t in tris)
    assert len(tris) == 4 and area == pytest.approx(3.0)


def test_render_deterministic_and_reacts():
    static = _map()
    r1 = Renderer(static, CameraRig(default_cameras(224, 128)))
    r2 = Renderer(static, CameraRig(default_cameras(224, 128)))
    boxes = [Box(30.0, -1.6, 0.0, 4.5, 1.8, 1.5, (200, 20, 20)),
             Box(20.0, -6.0, math.pi / 2, 0.5, 0.6, 1.75, (20, 20, 200), "pedestrian")]
    pose = (5.0, -1.6, 0.0)
    a = r1.render(pose, boxes, {"J": "r"})
    b = r2.render(pose, boxes, {"J": "r"})
    assert set(a) == {"front", "left", "right", "rear"}
    for k in a:
        assert a[k].shape == (128, 224, 3) and a[k].dtype == np.uint8
        assert _hash(a[k]) == _hash(b[k])
    # the red car 25 m ahead is in the middle of the front image
    front = a["front"]
    red = (front[..., 0] > 90) & (front[..., 1] < 40) & (front[..., 2] < 40)
    ys, xs = np.nonzero(red)
    assert len(xs) > 10 and abs(xs.mean() - 112) < 8
    # the light state changes the stop line's colour
    g = r1.render((90.0, -1.6, 0.0), [], {"J": "G"})["front"]
    rr = r1.render((90.0, -1.6, 0.0), [], {"J": "r"})["front"]
    assert _hash(g) != _hash(rr)
    # road below the horizon, sky above
    assert front[5, 5, 2] > front[5, 5, 0]  # bluish sky
    assert front[120, 112].mean() < 120  # asphalt under the car


def test_focus_view_is_the_front_centre_magnified():
    from dsdrive_ros.sim.cameras import FOCUS_FOV_DEG, default_cameras

    rig = default_cameras(focus=True)
    assert [c.name for c in rig] == ["front", "left", "right", "rear", "front_focus"]
    front, focus = rig[0], rig[-1]
    assert (focus.yaw_deg, focus.x, focus.z) == (front.yaw_deg, front.x, front.z)
    # same pinhole, narrower: the focal length grows by tan(50 deg) / tan(15 deg) = 4.45
    ratio = focus.intrinsics()[0, 0] / front.intrinsics()[0, 0]
    assert ratio == pytest.approx(math.tan(math.radians(front.fov_deg / 2)) /
                                  math.tan(math.radians(FOCUS_FOV_DEG / 2)))
    assert [c.name for c in default_cameras()] == ["front", "left", "right", "rear"]

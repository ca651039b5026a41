"""dsdrive-replay end to end: a synthetic bag written with rosbags -> the real node -> outputs bag,
report.md and overlay PNGs. Plus the ROS-free report pieces (projection, ADE/FDE)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dsdrive_ros.outputs.overlay import CameraModel
from dsdrive_ros.replay.report import ade_fde

CAMERAS = ["front", "left", "right", "rear"]
START_NS = 1_735_689_600 * 10**9
INSTRUCTION = "follow the road and stop at the red light"


# ---- ROS-free ----

def test_camera_model_projection():
    cam = CameraModel.from_fov(800, 600, 100.0)
    assert cam.fx == pytest.approx(400 / math.tan(math.radians(50)))
    # a point straight ahead on the ground projects onto the centre column, below the horizon
    uv, ok = cam.project(np.array([[10.0, 0.0], [10.0, 2.0], [0.5, 0.0], [40.0, 0.0]]))
    assert ok.tolist() == [True, True, False, True]
    assert uv[0, 0] == pytest.approx(400.0) and uv[0, 1] > 300.0
    assert uv[1, 0] < 400.0  # left of the car is left in the image
    assert uv[3, 1] < uv[0, 1]  # farther is closer to the horizon
    # camera 2.3 m high, point 8.7 m ahead of it: v = cy + f * 2.3 / 8.7
    assert uv[0, 1] == pytest.approx(300 + cam.fy * 2.3 / 8.7)


def test_camera_model_from_camera_info_scales():
    class Info:
        k = [500.0, 0, 320.0, 0, 500.0, 240.0, 0, 0, 1]
        width, height = 640, 480

    cam = CameraModel.from_camera_info(Info(), 320, 240)
    assert (cam.fx, cam.cx, cam.cy) == (250.0, 160.0, 120.0) and cam.source == "camera_info"


def test_ade_fde():
    pred = np.array([[1.0, 0], [2, 0], [3, 0]])
    gt = np.array([[1.0, 1], [2, 0], [3, 2], [4, 0]])
    ade, fde = ade_fde(pred, gt)
    assert ade == pytest.approx(1.0) and fde == pytest.approx(2.0)


# ---- bags ----

def _frame(seed: int, h: int = 120, w: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = (110, 160, 230)
    img[h // 2:] = rng.integers(60, 120, size=(h - h // 2, w, 3), dtype=np.uint8)
    cv2.line(img, (w // 2, h // 2), (w // 2, h - 1), (255, 255, 255), 2)
    return img


def write_raw_bag(path: Path, n: int = 12, rate_hz: float = 10.0, storage: str = "sqlite3") -> list[int]:
    """Raw rgb8 cameras + camera_info(front) + instruction + odom + /ground_truth/path."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]
    Image, CameraInfo = T["sensor_msgs/msg/Image"], T["sensor_msgs/msg/CameraInfo"]
    String, Odometry, Path_ = T["std_msgs/msg/String"], T["nav_msgs/msg/Odometry"], T["nav_msgs/msg/Path"]
    PoseStamped, Pose = T["geometry_msgs/msg/PoseStamped"], T["geometry_msgs/msg/Pose"]
    Point, Quaternion = T["geometry_msgs/msg/Point"], T["geometry_msgs/msg/Quaternion"]
    PoseCov, TwistCov = T["geometry_msgs/msg/PoseWithCovariance"], T["geometry_msgs/msg/TwistWithCovariance"]
    Twist, Vector3 = T["geometry_msgs/msg/Twist"], T["geometry_msgs/msg/Vector3"]
    RegionOfInterest = T["sensor_msgs/msg/RegionOfInterest"]

    def header(ns: int, frame: str):
        return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame)

    def pose(x: float, y: float):
        return Pose(position=Point(x=x, y=y, z=0.0), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))

    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    stamps = []
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugin) as w:
        conns = {f"/camera/{c}/image_raw": w.add_connection(f"/camera/{c}/image_raw", "sensor_msgs/msg/Image",
                                                           typestore=ts) for c in CAMERAS}
        c_info = w.add_connection("/camera/front/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts)
        c_instr = w.add_connection("/instruction", "std_msgs/msg/String", typestore=ts)
        c_odom = w.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=ts)
        c_gt = w.add_connection("/ground_truth/path", "nav_msgs/msg/Path", typestore=ts)
        w.write(c_instr, START_NS, ts.serialize_cdr(String(data=INSTRUCTION), "std_msgs/msg/String"))
        for i in range(n):
            ns = START_NS + int(round(i * 1e9 / rate_hz))
            stamps.append(ns)
            for j, cam in enumerate(CAMERAS):
                rgb = _frame(i * 10 + j)
                h, wd = rgb.shape[:2]
                msg = Image(header=header(ns, f"camera_{cam}"), height=h, width=wd, encoding="rgb8",
                            is_bigendian=0, step=wd * 3, data=rgb.reshape(-1))
                w.write(conns[f"/camera/{cam}/image_raw"], ns + j * 1000,
                        ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            if i == 0:
                f = 100.0 / math.tan(math.radians(50))
                info = CameraInfo(header=header(ns, "camera_front"), height=120, width=200,
                                  distortion_model="plumb_bob", d=np.zeros(5),
                                  k=np.array([f, 0, 100, 0, f, 60, 0, 0, 1], float), r=np.eye(3).reshape(-1),
                                  p=np.array([f, 0, 100, 0, 0, f, 60, 0, 0, 0, 1, 0], float),
                                  binning_x=0, binning_y=0,
                                  roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0,
                                                       do_rectify=False))
                w.write(c_info, ns, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            odom = Odometry(header=header(ns, "odom"), child_frame_id="base_link",
                            pose=PoseCov(pose=pose(0.5 * i, 0.0), covariance=np.zeros(36)),
                            twist=TwistCov(twist=Twist(linear=Vector3(x=5.0, y=0.0, z=0.0),
                                                       angular=Vector3(x=0.0, y=0.0, z=0.0)),
                                           covariance=np.zeros(36)))
            w.write(c_odom, ns, ts.serialize_cdr(odom, "nav_msgs/msg/Odometry"))
            gt = Path_(header=header(ns, "base_link"), poses=[
                PoseStamped(header=header(ns + k * 500_000_000, "base_link"), pose=pose(2.5 * k, 0.1 * k))
                for k in range(1, 6)])
            w.write(c_gt, ns, ts.serialize_cdr(gt, "nav_msgs/msg/Path"))
    return stamps


def _run_replay(bag: Path, model_dir: Path, out: Path, *extra: str, timeout: float = 420.0):
    from dsdrive_ros.node.process import node_env

    cmd = [sys.executable, "-m", "dsdrive_ros.replay.cli", str(bag), "--model-dir", str(model_dir),
           "--out", str(out), "--no-progress", *extra]
    # cwd outside the source tree: the colcon-installed dsdrive_ros (with .msg) is imported
    return subprocess.run(cmd, cwd=out.parent, env=node_env(), capture_output=True, text=True,
                          timeout=timeout)


def _read_outputs(out: Path):
    from dsdrive_ros.replay.report import read_outputs

    return read_outputs(out / "outputs")


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


@pytest.mark.ros
@pytest.mark.slow
def test_replay_raw_sqlite_rate0(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build)")
    bag = tmp_path / "bag"
    stamps = write_raw_bag(bag, n=12)
    out = tmp_path / "out"
    res = _run_replay(bag, model_dir, out, "--rate", "0", "--overlays", "3",
                      "-p", "reasoning.max_rate_hz:=0.0", "-p", "reasoning.max_tokens:=12")
    log = (out / "node.log").read_text() if (out / "node.log").exists() else ""
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{log[-3000:]}"

    outs = _read_outputs(out)
    paths = [m for _, m in outs.get("/dsdrive/path", [])]
    plans = [m for _, m in outs.get("/dsdrive/plan", [])]
    # rate 0 waits for each set's output: every set is planned
    assert len(paths) == len(stamps), (len(paths), res.stdout, res.stderr)
    assert sorted(_stamp(p) for p in paths) == stamps
    for p in paths:
        assert p.header.frame_id == "base_link" and len(p.poses) == 5
        assert all(math.isfinite(ps.pose.position.x) and math.isfinite(ps.pose.position.y) for ps in p.poses)
    assert len(plans) == len(stamps)
    assert all(pl.instruction == INSTRUCTION for pl in plans)
    assert outs.get("/dsdrive/reasoning"), "no reasoning recorded"
    assert outs.get("/diagnostics"), "no diagnostics recorded"
    # RViz markers: one array per plan, under the plan's stamp; stamped reasoning names a plan's set
    arrays = [m for _, m in outs.get("/dsdrive/markers", [])]
    assert sorted(_stamp(a.markers[0]) for a in arrays) == stamps
    assert {_stamp(r) for _, r in outs.get("/dsdrive/reasoning_stamped", [])} <= set(stamps)
    assert outs.get("/dsdrive/reasoning_stamped"), "no stamped reasoning recorded"

    report = (out / "report.md").read_text()
    assert "ADE" in report and "FDE" in report and "matched plans: 12" in report, report
    assert "config/dsdrive.rviz" in report and "| marker arrays (`/dsdrive/markers`) | 12 |" in report
    assert "p50" in report and "camera_info" in report
    pngs = sorted((out / "overlays").glob("*.png"))
    assert len(pngs) == 3
    img = cv2.imread(str(pngs[0]))
    assert img is not None and img.shape[1] >= 640
    assert (out / "replay.json").is_file()


@pytest.mark.ros
@pytest.mark.slow
def test_replay_sim_export_mcap_realtime(model_dir: Path, tmp_path: Path) -> None:
    """A bag from the simulator's exporter (mcap, compressed JPEG), replayed at recorded timing."""
    pytest.importorskip("dsdrive_ros.msg", reason="dsdrive_ros.msg not built (make build)")
    bag_export = pytest.importorskip("dsdrive_ros.sim.bag_export")
    frames = []
    for i in range(10):
        wp = np.array([[2.0 * (k + 1), 0.05 * (k + 1) ** 2] for k in range(5)])
        frames.append(bag_export.BagFrame(
            t=0.1 * i, x=0.5 * i, y=0.0, yaw=0.0, speed=5.0, instruction=INSTRUCTION, waypoints=wp,
            images={c: _frame(100 + i * 10 + j) for j, c in enumerate(CAMERAS)}))
    bag = tmp_path / "simbag"
    bag_export.export_bag(frames, bag, cameras=CAMERAS)
    out = tmp_path / "out"
    res = _run_replay(bag, model_dir, out, "--rate", "1", "--overlays", "2",
                      "-p", "reasoning.enabled:=false")
    log = (out / "node.log").read_text() if (out / "node.log").exists() else ""
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{log[-3000:]}"
    outs = _read_outputs(out)
    paths = [m for _, m in outs.get("/dsdrive/path", [])]
    assert 1 <= len(paths) <= 10  # real time: keep-latest may skip sets on a busy machine
    assert not outs.get("/dsdrive/reasoning")
    report = (out / "report.md").read_text()
    assert "ADE" in report and "compressed" in report
    assert 1 <= len(list((out / "overlays").glob("*.png"))) <= 2


@pytest.mark.ros
@pytest.mark.slow
def test_replay_rejects_bag_without_cameras(model_dir: Path, tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    bag = tmp_path / "empty"
    with Writer(bag, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/instruction", "std_msgs/msg/String", typestore=ts)
        w.write(c, START_NS, ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="go"), "std_msgs/msg/String"))
    out = tmp_path / "out"
    res = _run_replay(bag, model_dir, out, "--rate", "0", timeout=120)
    assert res.returncode == 2
    assert "no raw image topic for camera(s)" in res.stderr or "no compressed image topic" in res.stderr

"""Pinhole cameras on the ego, LMDrive-like: front / left (-60 deg) / right (+60 deg) / rear (180 deg),
FOV 100 deg, mounted at x = 1.3 m, z = 2.3 m in base_link (centre of the car at ground level).

Angles follow LMDrive/CARLA naming: "left -60 deg" is the camera turned to the left, i.e. +60 deg
yaw in base_link (REP-103, counter-clockwise). `yaw_deg` here is the REP-103 yaw.

Conventions written into dataset metadata (`CameraConfig.to_dict`):
  * intrinsics K (3x3): fx = fy = (W / 2) / tan(FOV / 2), cx = W / 2, cy = H / 2 (square pixels, the
    FOV is horizontal);
  * extrinsics T_base_cam (4x4): pose of the camera's OPTICAL frame (z forward, x right, y down) in
    base_link (x forward, y left, z up).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["CameraConfig", "CameraRig", "default_cameras", "CAMERA_NAMES"]

CAMERA_NAMES = ("front", "left", "right", "rear")

# optical (z fwd, x right, y down) from body (x fwd, y left, z up)
_OPT_FROM_BODY = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass
class CameraConfig:
    name: str
    yaw_deg: float = 0.0  # REP-103 yaw in base_link (+ = to the left)
    x: float = 1.3
    y: float = 0.0
    z: float = 2.3
    pitch_deg: float = 0.0  # + = looking down
    fov_deg: float = 100.0  # horizontal
    width: int = 224
    height: int = 128

    @property
    def fx(self) -> float:
        return 0.5 * self.width / math.tan(math.radians(self.fov_deg) / 2)

    def intrinsics(self) -> np.ndarray:
        f = self.fx
        return np.array([[f, 0.0, self.width / 2], [0.0, f, self.height / 2], [0.0, 0.0, 1.0]])

    def rotation_body(self) -> np.ndarray:
        """R_base_camerabody: camera body axes (x fwd, y left, z up) in base_link."""
        cy, sy = math.cos(math.radians(self.yaw_deg)), math.sin(math.radians(self.yaw_deg))
        cp, sp = math.cos(math.radians(self.pitch_deg)), math.sin(math.radians(self.pitch_deg))
        Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1.0]])
        Ry = np.array([[cp, 0, sp], [0, 1.0, 0], [-sp, 0, cp]])  # + pitch tilts x down
        return Rz @ Ry

    def extrinsics(self) -> np.ndarray:
        """T_base_cam: the optical frame's pose in base_link (4x4)."""
        T = np.eye(4)
        T[:3, :3] = self.rotation_body() @ _OPT_FROM_BODY.T
        T[:3, 3] = [self.x, self.y, self.z]
        return T

    def to_dict(self) -> dict:
        d = asdict(self)
        d["K"] = self.intrinsics().round(6).tolist()
        d["T_base_cam"] = self.extrinsics().round(6).tolist()
        d["frame"] = "optical: z forward, x right, y down; base_link: x forward, y left, z up"
        return d


FOCUS_FOV_DEG = 30.0


def default_cameras(width: int = 224, height: int = 128, fov_deg: float = 100.0,
                    x: float = 1.3, z: float = 2.3, focus: bool = False) -> list[CameraConfig]:
    """The four-camera rig; `focus` adds LMDrive's focus view: "front_focus", the front camera's
    centre at FOCUS_FOV_DEG, where lights and stop lines 30 m ahead are more than a few pixels. It is
    the same pinhole as a centre crop of a high-resolution front image (tan 15 deg / tan 50 deg =
    22.5 % of its width), which is how a vehicle derives it from its front camera."""
    rig = [CameraConfig("front", 0.0, x, 0.0, z, 0.0, fov_deg, width, height),
           CameraConfig("left", 60.0, x, 0.0, z, 0.0, fov_deg, width, height),
           CameraConfig("right", -60.0, x, 0.0, z, 0.0, fov_deg, width, height),
           CameraConfig("rear", 180.0, x, 0.0, z, 0.0, fov_deg, width, height)]
    if focus:
        rig.append(CameraConfig("front_focus", 0.0, x, 0.0, z, 0.0, FOCUS_FOV_DEG, width, height))
    return rig


@dataclass
class CameraRig:
    cameras: list[CameraConfig] = field(default_factory=default_cameras)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def to_dict(self) -> dict:
        return {c.name: c.to_dict() for c in self.cameras}

    def world_to_optical(self, cam: CameraConfig, x: float, y: float, yaw: float):
        """(R, t) with p_opt = R @ p_world + t, for the ego at (x, y, yaw) on the ground."""
        c, s = math.cos(yaw), math.sin(yaw)
        R_wb = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])  # base_link in world
        T = cam.extrinsics()
        R_wc = R_wb @ T[:3, :3]
        p_wc = R_wb @ T[:3, 3] + np.array([x, y, 0.0])
        R = R_wc.T
        return R, -R @ p_wc


def rig_for(cameras: list[str], width: int, height: int) -> CameraRig:
    """The rig a model reads: its cameras, in its order, at its input size (ValueError for a camera
    the simulator cannot render)."""
    by_name = {c.name: c for c in default_cameras(width=width, height=height, focus=True)}
    missing = [c for c in cameras if c not in by_name]
    if missing:
        raise ValueError(f"the simulator has no camera named {missing} (it renders {sorted(by_name)})")
    return CameraRig([by_name[c] for c in cameras])

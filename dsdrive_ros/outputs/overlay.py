"""Front-camera overlay: the planned path (and a ground truth) projected into a camera image, with a
text panel. ROS-free (OpenCV). Shared by the replay report's PNGs and the node's dsdrive/debug_image.

The camera is a pinhole: from a CameraInfo when one is known, else FOV 100 deg (LMDrive's cameras);
mounted x=1.3 m, z=2.3 m in base_link, looking along +x, level. Waypoints lie on the ground (z=0).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from dsdrive_ros.outputs.parse import PlanOutput

__all__ = ["CameraModel", "render_overlay", "plan_lines", "debug_overlay", "DEFAULT_FOV_DEG",
           "DEFAULT_CAM_X", "DEFAULT_CAM_Z"]

DEFAULT_FOV_DEG = 100.0
DEFAULT_CAM_X = 1.3
DEFAULT_CAM_Z = 2.3


@dataclass
class CameraModel:
    """Pinhole camera at (x, y, z) in base_link looking along +x (rotated by yaw), level."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    x: float = DEFAULT_CAM_X
    y: float = 0.0
    z: float = DEFAULT_CAM_Z
    yaw: float = 0.0
    source: str = "fov"

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = DEFAULT_FOV_DEG, **kw: Any) -> "CameraModel":
        f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
        return cls(f, f, width / 2.0, height / 2.0, int(width), int(height),
                   source=f"pinhole, horizontal FOV {fov_deg:g} deg", **kw)

    @classmethod
    def from_camera_info(cls, info: Any, width: int, height: int, **kw: Any) -> "CameraModel":
        """From sensor_msgs/CameraInfo (K), rescaled when the image size differs from info's."""
        k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        sx = width / float(info.width) if info.width else 1.0
        sy = height / float(info.height) if info.height else 1.0
        return cls(k[0, 0] * sx, k[1, 1] * sy, k[0, 2] * sx, k[1, 2] * sy, int(width), int(height),
                   source="camera_info", **kw)

    def project(self, xy: np.ndarray, z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """base_link points (N, 2) on the plane z -> pixel coords (N, 2) and a mask of points in
        front of the camera (at least 0.5 m ahead)."""
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        dx, dy, dz = pts[:, 0] - self.x, pts[:, 1] - self.y, z - self.z
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        fwd = c * dx + s * dy  # camera axes: forward, left, up (rotated by the camera's yaw)
        left = -s * dx + c * dy
        valid = fwd > 0.5
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.cx + self.fx * (-left) / fwd
            v = self.cy + self.fy * (-dz) / fwd
        return np.stack([u, v], axis=1), valid


def _draw_path(img: np.ndarray, cam: CameraModel, xy: np.ndarray, color: tuple[int, int, int],
               thickness: int) -> None:
    if len(xy) == 0:
        return
    # start at the vehicle (origin) so the path visibly leaves the car; sample segments finely so
    # the projected polyline follows the ground
    pts = np.vstack([[cam.x + 0.6, 0.0], xy])
    fine = []
    for a, b in zip(pts[:-1], pts[1:]):
        for t in np.linspace(0.0, 1.0, 8, endpoint=False):
            fine.append(a + (b - a) * t)
    fine.append(pts[-1])
    uv, ok = cam.project(np.array(fine))
    poly = [tuple(int(round(c)) for c in p) for p, good in zip(uv, ok) if good and np.all(np.isfinite(p))]
    if len(poly) >= 2:
        cv2.polylines(img, [np.array(poly, np.int32)], False, color, thickness, cv2.LINE_AA)
    if len(poly) < 2 and not any(ok):
        return
    uvw, okw = cam.project(xy)
    for p, good in zip(uvw, okw):
        if good and np.all(np.isfinite(p)) and abs(p[0]) < 1e5 and abs(p[1]) < 1e5:
            cv2.circle(img, (int(round(p[0])), int(round(p[1]))), thickness + 3, color, -1, cv2.LINE_AA)


def render_overlay(rgb: np.ndarray, cam: CameraModel, pred: np.ndarray, gt: Optional[np.ndarray],
                   lines: Sequence[str], reasoning: str) -> np.ndarray:
    """BGR image: the front frame (upscaled to >= 640 px wide) with the paths and a text panel."""
    scale = max(1.0, 640.0 / rgb.shape[1])
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if scale > 1.0:
        img = cv2.resize(img, (int(round(rgb.shape[1] * scale)), int(round(rgb.shape[0] * scale))),
                         interpolation=cv2.INTER_LINEAR)
    scam = CameraModel(cam.fx * scale, cam.fy * scale, cam.cx * scale, cam.cy * scale,
                       img.shape[1], img.shape[0], cam.x, cam.y, cam.z, cam.yaw, cam.source)
    if gt is not None:
        _draw_path(img, scam, gt, (60, 200, 60), 2)  # ground truth: green
    _draw_path(img, scam, pred, (40, 40, 240), 3)  # prediction: red
    if not np.any(scam.project(pred)[1]):
        cv2.putText(img, "predicted path not in view (behind or under the camera)", (8, 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 240), 1, cv2.LINE_AA)
    width = img.shape[1]
    chars = max(20, int(width / 9))
    text = list(lines)
    if reasoning:
        text += textwrap.wrap("reasoning: " + reasoning, chars)[:6]
    panel = np.full((18 * len(text) + 12, width, 3), 30, np.uint8)
    for i, line in enumerate(text):
        cv2.putText(panel, line[: chars + 10], (8, 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (235, 235, 235), 1, cv2.LINE_AA)
    legend = "red: predicted" + ("   green: ground truth" if gt is not None else "")
    cv2.putText(img, legend, (8, img.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255),
                1, cv2.LINE_AA)
    return np.vstack([img, panel])


def plan_lines(stamp_ns: int, instruction: str, end_prob: float, latency_ms: float,
               backend: str) -> list[str]:
    """The overlay's text panel for one plan (above the reasoning)."""
    return [f"t={stamp_ns / 1e9:.3f}  instruction: {instruction or '(none)'}",
            f"end_prob {end_prob:.2f}  latency {latency_ms:.1f} ms  {backend}"]


def debug_overlay(rgb: np.ndarray, plan: PlanOutput) -> np.ndarray:
    """RGB image for dsdrive/debug_image: ``rgb`` (the anchor camera's frame the plan was made
    from) with the plan's path and texts, camera model from the default FOV and mount."""
    cam = CameraModel.from_fov(rgb.shape[1], rgb.shape[0])
    lines = plan_lines(plan.stamp_ns, plan.instruction, plan.end_prob, plan.latency_ms, plan.backend)
    bgr = render_overlay(rgb, cam, plan.waypoints, None, lines, plan.reasoning)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

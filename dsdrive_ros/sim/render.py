"""Camera images rendered with OpenCV from SUMO's state (no GPU, deterministic).

What is drawn, back to front: sky and ground; road lanes; junction areas; sidewalks and walking areas;
zebra crossings; lane markings (dashed white between lanes of one direction, solid white at the road
edge, solid yellow at the centre of two-way roads); stop lines (white at yield/stop links, red /
yellow / green at signalised ones, coloured each frame from the light state); then vehicles,
pedestrians and overhead signal heads as shaded 3D boxes, far to near (painter's algorithm), with
back faces dropped.

Speed: every static ground polygon (lane strips cut into <= `segment_m` pieces, triangulated junction
and walking-area shapes, markings, crossings) is precomputed once per world into one array of quads.
Per frame: one distance cull for all cameras, then per camera one matrix product, a frustum cull, a
vectorised near-plane clip (Sutherland-Hodgman against z = near, every polygon at once) and one
`cv2.fillConvexPoly` per visible polygon. The static scene: `static_scene.py`.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from .cameras import CameraConfig, CameraRig
from .polygons import clip_near
from .static_scene import RenderStyle, StaticScene

__all__ = ["Box", "Renderer", "agent_color"]


@dataclass
class Box:
    """A dynamic object to draw: centre on the ground, yaw, size, colour."""

    x: float
    y: float
    yaw: float
    length: float
    width: float
    height: float
    color: tuple  # RGB
    kind: str = "vehicle"  # vehicle | pedestrian | bicycle | signal
    braking: bool = False
    lamp: str = ""  # for kind == "signal": r | y | g | o


_CAR_COLORS = [(200, 200, 205), (30, 30, 35), (150, 152, 158), (170, 25, 30), (25, 55, 140),
               (235, 235, 235), (90, 95, 100), (20, 90, 60), (200, 120, 30), (110, 20, 30),
               (60, 120, 190), (230, 200, 60)]
_SHIRT_COLORS = [(200, 40, 40), (40, 90, 190), (230, 200, 40), (40, 150, 70), (240, 240, 240),
                 (30, 30, 30), (220, 110, 30), (150, 60, 160), (90, 170, 200)]


def agent_color(agent_id: str, kind: str = "vehicle") -> tuple:
    h = zlib.crc32(agent_id.encode())
    pal = _SHIRT_COLORS if kind == "pedestrian" else _CAR_COLORS
    return pal[h % len(pal)]


# ------------------------------------------------------------------------------------------------
# Renderer


_BOX_FACES = np.array([[4, 5, 6, 7],  # top
                       [0, 1, 5, 4],  # front (+x)
                       [2, 3, 7, 6],  # back
                       [1, 2, 6, 5],  # right (-y)
                       [3, 0, 4, 7]])  # left (+y)
_BOX_NORMALS = np.array([[0, 0, 1.0], [1, 0, 0], [-1, 0, 0], [0, -1, 0], [0, 1, 0]])


def _box_parts(b: Box) -> list[tuple[float, float, float, float, float, float, tuple]]:
    """(dx, length, width, z0, z1, shade_scale, color) sub-boxes along the object's axis."""
    L, W, H = b.length, b.width, b.height
    if b.kind == "pedestrian":
        return [(0.0, 0.8 * L, 0.8 * W, 0.0, 0.5 * H, 1.0, (55, 55, 70)),
                (0.0, L, W, 0.5 * H, 0.86 * H, 1.0, b.color),
                (0.0, 0.55 * L, 0.4 * W, 0.86 * H, H, 1.0, (205, 170, 140))]
    if b.kind == "signal":
        return [(0.0, L, W, b.height - 1.3, b.height, 1.0, (35, 35, 35))]
    if L < 6.0 and H < 1.9:  # car: body + glass cabin
        glass = (50, 60, 75)
        return [(0.0, L, W, 0.0, 0.55 * H, 1.0, b.color),
                (-0.08 * L, 0.52 * L, 0.88 * W, 0.55 * H, H, 1.0, glass)]
    return [(0.0, L, W, 0.0, H, 1.0, b.color)]


class Renderer:
    def __init__(self, static, rig: CameraRig | None = None, style: RenderStyle | None = None,
                 view_radius: float = 90.0, near: float = 0.3, segment_m: float = 2.0,
                 seed: int = 0):
        self.rig = rig or CameraRig()
        self.style = style or RenderStyle()
        self.view_radius = float(view_radius)
        self.near = float(near)
        self.scene = StaticScene.build(static, self.style, segment_m, seed)
        self._bg = {c.name: self._background(c) for c in self.rig.cameras}
        sun = np.asarray(self.style.sun, dtype=np.float64)
        self._sun = sun / np.linalg.norm(sun)
        self.last_counts: dict[str, int] = {}

    def _background(self, cam: CameraConfig) -> np.ndarray:
        H, W = cam.height, cam.width
        img = np.empty((H, W, 3), np.uint8)
        f = cam.fx
        horizon = cam.height / 2 - f * math.tan(math.radians(cam.pitch_deg))
        rows = np.arange(H, dtype=np.float64)
        top = np.array(self.style.sky_top, dtype=np.float64)
        hor = np.array(self.style.sky_horizon, dtype=np.float64)
        t = np.clip((rows - (horizon - H)) / max(H, 1), 0.0, 1.0)[:, None]
        sky = top * (1 - t) + hor * t
        ground = np.array(self.style.ground, dtype=np.float64)
        col = np.where((rows >= horizon)[:, None], ground, sky)
        img[:] = np.round(col).astype(np.uint8)[:, None, :]
        return img

    # -- frame
    def render(self, pose: tuple[float, float, float], boxes: list[Box],
               tls_states: dict[str, str]) -> dict[str, np.ndarray]:
        """pose = ego (x, y, yaw) of base_link; returns {camera: RGB uint8 (H, W, 3)}."""
        x, y, yaw = pose
        sc = self.scene
        d = np.hypot(sc.centre[:, 0] - x, sc.centre[:, 1] - y)
        sel = np.nonzero(d < self.view_radius + sc.radius)[0]
        quads = sc.quads[sel]
        colors = sc.color[sel].copy()
        if len(sc.tls_quads):
            pos = np.searchsorted(sel, sc.tls_quads)
            pos = np.clip(pos, 0, max(len(sel) - 1, 0))
            hit = (len(sel) > 0) & (sel[pos] == sc.tls_quads) if len(sel) else np.zeros(0, bool)
            for k in np.nonzero(hit)[0]:
                tls, link = sc.tls_link[k]
                colors[pos[k]] = self.style.light[_light_char(tls_states, tls, link)]
        ground3 = np.concatenate([quads, np.zeros(quads.shape[:2] + (1,))], axis=2)
        # signal heads near the ego (overhead, at the stop line)
        all_boxes = list(boxes)
        for (sx, sy, syaw, tls, link) in sc.signals:
            if abs(sx - x) < self.view_radius and abs(sy - y) < self.view_radius:
                all_boxes.append(Box(sx, sy, syaw, 0.4, 0.55, 5.8, (35, 35, 35), "signal",
                                     lamp=_light_char(tls_states, tls, link)))
        objects = self._box_faces(all_boxes, x, y)
        out = {}
        for cam in self.rig.cameras:
            out[cam.name] = self._render_camera(cam, x, y, yaw, ground3, colors, objects)
        return out

    def _box_faces(self, boxes: list[Box], ex: float, ey: float):
        """All faces of all boxes (F, 4, 3), their RGB colour (F, 3), their object's centre (F, 3)
        and normals (F, 3). Built vectorised: boxes -> sub-boxes (rows) -> corners -> faces."""
        parts, lamps = [], []
        r2 = self.view_radius ** 2
        light = self.style.light
        for b in boxes:
            if (b.x - ex) ** 2 + (b.y - ey) ** 2 > r2:
                continue
            c, s = math.cos(b.yaw), math.sin(b.yaw)
            for (dx, L, W, z0, z1, _, col) in _box_parts(b):
                parts.append((b.x, b.y, c, s, dx, L, W, z0, z1, col[0], col[1], col[2]))
            hl = b.length / 2 + 0.03
            if b.kind == "signal" and b.lamp:
                # lit lamp on the face towards traffic (+x of the head)
                zc = {"r": b.height - 0.23, "y": b.height - 0.65, "g": b.height - 1.07}.get(b.lamp)
                if zc is not None:
                    col = light[b.lamp]
                    lamps.append((b.x, b.y, c, s, hl, -0.2, 0.2, zc - 0.19, zc + 0.19, 1.0,
                                  col[0] / 0.8, col[1] / 0.8, col[2] / 0.8))
            if b.kind == "vehicle" and b.braking:
                z0, z1 = 0.3 * b.height, 0.45 * b.height
                for y0, y1 in ((0.3 * b.width, 0.5 * b.width), (-0.5 * b.width, -0.3 * b.width)):
                    lamps.append((b.x, b.y, c, s, -hl, y0, y1, z0, z1, -1.0, 319.0, 37.0, 37.0))
        F, N, C, Z = [], [], [], []
        if parts:
            A = np.array(parts)
            bx, by, c, s, dx, L, W, z0, z1 = A[:, :9].T
            lx = dx[:, None] + np.array([0.5, 0.5, -0.5, -0.5])[None] * L[:, None]
            ly = np.array([0.5, -0.5, -0.5, 0.5])[None] * W[:, None]
            X = bx[:, None] + c[:, None] * lx - s[:, None] * ly
            Y = by[:, None] + s[:, None] * lx + c[:, None] * ly
            n = len(A)
            V = np.empty((n, 8, 3))
            V[:, :4, 0], V[:, 4:, 0] = X, X
            V[:, :4, 1], V[:, 4:, 1] = Y, Y
            V[:, :4, 2], V[:, 4:, 2] = z0[:, None], z1[:, None]
            F.append(V[:, _BOX_FACES].reshape(-1, 4, 3))
            nl = np.broadcast_to(_BOX_NORMALS, (n, 5, 3))
            nw = np.empty((n, 5, 3))
            nw[..., 0] = c[:, None] * nl[..., 0] - s[:, None] * nl[..., 1]
            nw[..., 1] = s[:, None] * nl[..., 0] + c[:, None] * nl[..., 1]
            nw[..., 2] = nl[..., 2]
            N.append(nw.reshape(-1, 3))
            C.append(np.repeat(A[:, 9:12], 5, axis=0))
            Z.append(np.repeat(np.stack([bx, by, np.zeros(n)], 1), 5, axis=0))
        if lamps:
            B = np.array(lamps)
            bx, by, c, s, lx0, y0, y1, z0, z1, sg = B[:, :10].T
            ly = np.stack([y0, y1, y1, y0], 1)
            lz = np.stack([z0, z0, z1, z1], 1)
            X = bx[:, None] + c[:, None] * lx0[:, None] - s[:, None] * ly
            Y = by[:, None] + s[:, None] * lx0[:, None] + c[:, None] * ly
            F.append(np.stack([X, Y, lz], 2))
            N.append(np.stack([sg * c, sg * s, np.zeros(len(B))], 1))
            C.append(B[:, 10:13])
            Z.append(np.stack([bx, by, np.zeros(len(B))], 1))
        if not F:
            return np.zeros((0, 4, 3)), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))
        F, N, C, Z = (np.concatenate(v) for v in (F, N, C, Z))
        shade = 0.55 + 0.45 * np.clip(N @ self._sun, 0.0, 1.0)
        C = np.clip(C * shade[:, None], 0, 255)
        return F, C, Z, N

    def _render_camera(self, cam: CameraConfig, x, y, yaw, ground3, colors,
                       objects) -> np.ndarray:
        img = self._bg[cam.name].copy()
        R, t = self.rig.world_to_optical(cam, x, y, yaw)
        K = cam.intrinsics()
        fx, cx, cy = K[0, 0], K[0, 2], K[1, 2]
        tanx = (cam.width / 2) / fx * 1.02
        tany = (cam.height / 2) / fx * 1.02
        n_drawn = 0
        # ground
        if len(ground3):
            P = ground3 @ R.T + t
            vis = _frustum(P, self.near, tanx, tany)
            P, col = P[vis], colors[vis]
            if len(P):
                Q, keep = clip_near(P, self.near)
                n_drawn += _fill(img, Q, col[keep], fx, cx, cy)
        # objects
        F, C, centres, N = objects
        if len(F):
            cam_w = -R.T @ t  # camera position in the world
            fc = F.mean(1)
            front = ((cam_w - fc) * N).sum(1) > 0
            P = F @ R.T + t
            vis = front & _frustum(P, self.near, tanx, tany)
            if vis.any():
                idx = np.nonzero(vis)[0]
                depth = np.hypot(*(centres[idx, :2] - cam_w[:2]).T)
                # far to near by object centre (identical for all faces of an object); faces of
                # one object keep their order (body, cabin, lamps)
                order = idx[np.lexsort((idx, -depth))]
                Q, keep = clip_near(P[order], self.near)
                n_drawn += _fill(img, Q, C[order][keep], fx, cx, cy)
        self.last_counts[cam.name] = n_drawn
        return img


def _light_char(states: dict[str, str], tls: str, link: int) -> str:
    s = states.get(tls)
    if not s or link < 0 or link >= len(s):
        return "o"
    c = s[link]
    if c in "Gg":
        return "g"
    if c in "yY":
        return "y"
    if c in "rRu":
        return "r"
    if c == "s":
        return "r"
    return "o"


def _frustum(P: np.ndarray, near: float, tanx: float, tany: float) -> np.ndarray:
    """Polygons (n, V, 3) not entirely outside one frustum plane."""
    x, y, z = P[..., 0], P[..., 1], P[..., 2]
    out = ((z < near).all(1) | (x > z * tanx).all(1) | (-x > z * tanx).all(1)
           | (y > z * tany).all(1) | (-y > z * tany).all(1))
    return ~out


def _fill(img: np.ndarray, Q: np.ndarray, cols: np.ndarray, fx: float, cx: float,
          cy: float) -> int:
    if not len(Q):
        return 0
    z = Q[..., 2]
    u = (fx * Q[..., 0] / z + cx) * 8.0
    v = (fx * Q[..., 1] / z + cy) * 8.0
    pts = np.clip(np.stack([u, v], -1), -(1 << 26), 1 << 26).round().astype(np.int32)
    ci = np.asarray(cols).round().astype(np.int32).tolist()
    fill = cv2.fillConvexPoly
    for p, c in zip(pts, ci):
        fill(img, p, c, cv2.LINE_8, 3)
    return len(pts)

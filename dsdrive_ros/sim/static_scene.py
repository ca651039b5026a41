"""The ground a world's cameras see, built once per world: every static polygon (lane strips cut into
<= `segment_m` pieces, triangulated junction and walking-area shapes, markings, crossings, stop lines)
in one array of quads with its layer and colour; the renderer draws it every frame."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .polygons import dashes, left_normals, resample_polyline, stop_quad, strip_quads, triangulate

__all__ = ["RenderStyle", "StaticScene"]

# ground layers (painter's order)
ROAD, JUNCTION, SIDEWALK, ZEBRA, MARK_WHITE, MARK_YELLOW, STOP_WHITE, STOP_TLS = range(8)


@dataclass
class RenderStyle:
    sky_top: tuple = (110, 160, 225)  # RGB
    sky_horizon: tuple = (200, 220, 240)
    ground: tuple = (96, 118, 78)
    layers: dict = field(default_factory=lambda: {
        ROAD: (72, 72, 76), JUNCTION: (78, 78, 82), SIDEWALK: (165, 160, 152),
        ZEBRA: (225, 225, 220), MARK_WHITE: (230, 230, 225), MARK_YELLOW: (225, 185, 40),
        STOP_WHITE: (235, 235, 230), STOP_TLS: (235, 235, 230)})
    light: dict = field(default_factory=lambda: {"r": (230, 30, 30), "y": (240, 200, 20),
                                                 "g": (40, 210, 70), "o": (90, 90, 90)})
    texture: int = 4  # +- per-polygon brightness jitter (deterministic)
    sun: tuple = (0.45, 0.35, 0.82)  # light direction (world, towards the sun)


@dataclass
class StaticScene:
    quads: np.ndarray  # (M, 4, 2) ground polygons (triangles repeat their last vertex)
    layer: np.ndarray  # (M,) int
    color: np.ndarray  # (M, 3) uint8 RGB (static colour; TLS stop lines are recoloured per frame)
    centre: np.ndarray  # (M, 2)
    radius: np.ndarray  # (M,)
    tls_quads: np.ndarray  # indices into quads of the TLS stop lines
    tls_link: list[tuple[str, int]]  # (tls id, link index) per TLS stop line
    signals: list[tuple[float, float, float, str, int]]  # (x, y, yaw facing traffic, tls, link)

    @staticmethod
    def build(static, style: RenderStyle | None = None, segment_m: float = 2.0,
              seed: int = 0) -> "StaticScene":
        style = style or RenderStyle()
        polys: list[np.ndarray] = []
        layers: list[int] = []

        def add_quads(q: np.ndarray, layer: int) -> None:
            for p in q:
                polys.append(p)
                layers.append(layer)

        def add_poly(poly: np.ndarray, layer: int) -> None:
            for tri in triangulate(poly):
                polys.append(np.vstack([tri, tri[-1:]]))
                layers.append(layer)

        lanes_by_edge: dict[str, list] = {}
        for li in static.lanes.values():
            if li.function == "normal":
                lanes_by_edge.setdefault(li.edge, []).append(li)
        # "is there an opposite edge" (two-way road -> yellow centre line)
        node_pairs = set(static.edge_nodes.values())

        for e, lanes in sorted(lanes_by_edge.items()):
            lanes = sorted(lanes, key=lambda li: li.index)
            road = [li for li in lanes if li.kind == "road"]
            for li in lanes:
                if len(li.shape) < 2:
                    continue
                line = resample_polyline(li.shape, segment_m)
                if li.kind == "road":
                    add_quads(strip_quads(line, li.width / 2, -li.width / 2), ROAD)
                elif li.kind == "sidewalk":
                    add_quads(strip_quads(line, li.width / 2, -li.width / 2), SIDEWALK)
            mw = 0.15
            for k, li in enumerate(road):
                if len(li.shape) < 2:
                    continue
                line = resample_polyline(li.shape, segment_m)
                n = left_normals(line)
                if k < len(road) - 1:  # dashed boundary to the next lane on the left
                    border = line + n * (li.width / 2)
                    for d in dashes(border, 3.0, 6.0, 2.0):
                        add_quads(strip_quads(d, mw / 2, -mw / 2), MARK_WHITE)
                if k == 0:  # road edge
                    border = line - n * (li.width / 2 - 0.25)
                    add_quads(strip_quads(border, mw / 2, -mw / 2), MARK_WHITE)
                if k == len(road) - 1:  # centre line (yellow if two-way)
                    border = line + n * (li.width / 2 - 0.12)
                    fr_to = static.edge_nodes.get(e)
                    twoway = fr_to is not None and (fr_to[1], fr_to[0]) in node_pairs
                    add_quads(strip_quads(border, mw / 2, -mw / 2),
                              MARK_YELLOW if twoway else MARK_WHITE)

        for jid, shape in sorted(static.junctions.items()):
            add_poly(shape, JUNCTION)
        for li in sorted(static.lanes.values(), key=lambda v: v.id):
            if li.function == "walkingarea" and len(li.shape) >= 3:
                add_poly(li.shape, SIDEWALK)
        for li in sorted(static.lanes.values(), key=lambda v: v.id):
            if li.function != "crossing" or len(li.shape) < 2:
                continue
            a, b = li.shape[0], li.shape[-1]
            L = float(np.hypot(*(b - a)))
            if L < 1.0:
                continue
            d = (b - a) / L
            nrm = np.array([-d[1], d[0]]) * (li.width / 2)
            t = 0.3
            while t + 0.5 <= L - 0.2:
                p0, p1 = a + d * t, a + d * (t + 0.5)
                polys.append(np.array([p0 - nrm, p1 - nrm, p1 + nrm, p0 + nrm]))
                layers.append(ZEBRA)
                t += 1.0

        # stop lines: white where the lane's links are minor, coloured at signals
        tls_idx: list[int] = []
        tls_link: list[tuple[str, int]] = []
        signals: list[tuple[float, float, float, str, int]] = []
        tls_lanes = {}
        for sl in static.stop_lines:
            cur = tls_lanes.get(sl.lane)
            if cur is None or (sl.direction == "s" and cur.direction != "s"):
                tls_lanes[sl.lane] = sl
        for lid, sl in sorted(tls_lanes.items()):
            li = static.lanes[lid]
            q = stop_quad(li.shape, li.width, 0.5)
            tls_idx.append(len(polys))
            tls_link.append((sl.tls, sl.link_index))
            polys.append(q)
            layers.append(STOP_TLS)
            end = li.shape[-1]
            dvec = li.shape[-1] - li.shape[-2]
            yaw = math.atan2(dvec[1], dvec[0])
            signals.append((float(end[0] + math.cos(yaw) * 1.0), float(end[1] + math.sin(yaw) * 1.0),
                            yaw + math.pi, sl.tls, sl.link_index))
        for lid in sorted(getattr(static, "yield_lanes", []) or []):
            li = static.lanes.get(lid)
            if li is None or len(li.shape) < 2:
                continue
            polys.append(stop_quad(li.shape, li.width, 0.4))
            layers.append(STOP_WHITE)

        quads = np.array(polys, dtype=np.float64).reshape(-1, 4, 2)
        layer = np.array(layers, dtype=np.int16)
        order = np.argsort(layer, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        quads, layer = quads[order], layer[order]
        tls_idx_arr = inv[np.array(tls_idx, dtype=np.int64)] if tls_idx else np.zeros(0, np.int64)
        rng = np.random.default_rng(seed)
        base = np.array([style.layers[int(k)] for k in layer], dtype=np.int16).reshape(-1, 3)
        jitter = rng.integers(-style.texture, style.texture + 1, size=(len(layer), 1))
        color = np.clip(base + jitter, 0, 255).astype(np.uint8)
        centre = quads.mean(1)
        radius = np.hypot(*(quads - centre[:, None]).transpose(2, 0, 1)).max(1)
        return StaticScene(quads, layer, color, centre, radius, tls_idx_arr, tls_link, signals)

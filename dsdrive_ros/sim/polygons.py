"""2-D polygon helpers for the renderer's static scene: triangulation, polyline resampling and
offset bands, dashes, stop-line quads, and the near-plane clip of projected polygons."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["triangulate", "resample_polyline", "left_normals", "strip_quads", "dashes", "clip_near",
           "stop_quad"]


def triangulate(poly: np.ndarray) -> list[np.ndarray]:
    """Ear-clipping triangulation of a simple polygon (N, 2) -> list of (3, 2) triangles."""
    P = [np.asarray(p, dtype=np.float64) for p in poly]
    if len(P) > 3 and np.allclose(P[0], P[-1]):
        P = P[:-1]
    # drop duplicate consecutive points
    Q = []
    for p in P:
        if not Q or np.hypot(*(p - Q[-1])) > 1e-6:
            Q.append(p)
    P = Q
    if len(P) < 3:
        return []
    area = 0.0
    for i in range(len(P)):
        a, b = P[i], P[(i + 1) % len(P)]
        area += a[0] * b[1] - a[1] * b[0]
    if area < 0:
        P = P[::-1]
    idx = list(range(len(P)))
    tris = []

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    guard = 0
    while len(idx) > 3 and guard < 10000:
        guard += 1
        found = False
        for k in range(len(idx)):
            i0, i1, i2 = idx[k - 1], idx[k], idx[(k + 1) % len(idx)]
            a, b, c = P[i0], P[i1], P[i2]
            if cross(a, b, c) <= 1e-9:
                continue
            ok = True
            for j in idx:
                if j in (i0, i1, i2):
                    continue
                p = P[j]
                if cross(a, b, p) >= 0 and cross(b, c, p) >= 0 and cross(c, a, p) >= 0:
                    ok = False
                    break
            if ok:
                tris.append(np.array([a, b, c]))
                idx.pop(k)
                found = True
                break
        if not found:  # degenerate / self-intersecting: fan the rest
            for k in range(1, len(idx) - 1):
                tris.append(np.array([P[idx[0]], P[idx[k]], P[idx[k + 1]]]))
            return tris
    tris.append(np.array([P[idx[0]], P[idx[1]], P[idx[2]]]))
    return tris


def resample_polyline(shape: np.ndarray, step: float) -> np.ndarray:
    shape = np.asarray(shape, dtype=np.float64)
    seg = np.hypot(*np.diff(shape, axis=0).T)
    keep = np.concatenate([[True], seg > 1e-6])
    shape = shape[keep]
    if len(shape) < 2:
        return shape
    seg = np.hypot(*np.diff(shape, axis=0).T)
    out = [shape[0]]
    for i in range(len(seg)):
        n = max(int(math.ceil(seg[i] / step)), 1)
        for k in range(1, n + 1):
            out.append(shape[i] + (shape[i + 1] - shape[i]) * (k / n))
    return np.array(out)


def left_normals(line: np.ndarray) -> np.ndarray:
    """Per-vertex left normals (mitred, clipped) of a polyline (N, 2)."""
    d = np.diff(line, axis=0)
    d /= np.maximum(np.hypot(*d.T), 1e-9)[:, None]
    nseg = np.stack([-d[:, 1], d[:, 0]], 1)
    n = np.empty_like(line)
    n[0], n[-1] = nseg[0], nseg[-1]
    if len(line) > 2:
        m = nseg[:-1] + nseg[1:]
        m /= np.maximum(np.hypot(*m.T), 1e-9)[:, None]
        cosv = np.clip((m * nseg[1:]).sum(1), 0.5, 1.0)
        n[1:-1] = m / cosv[:, None]
    return n


def strip_quads(line: np.ndarray, left: float, right: float) -> np.ndarray:
    """Quads (M, 4, 2) of the band between offsets `right` and `left` (left normal positive)."""
    n = left_normals(line)
    L = line + n * left
    R = line + n * right
    return np.stack([R[:-1], R[1:], L[1:], L[:-1]], 1)


def dashes(line: np.ndarray, dash: float, gap: float, offset: float = 1.0) -> list[np.ndarray]:
    seg = np.hypot(*np.diff(line, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    out = []
    a = offset
    while a + dash <= s[-1]:
        q = np.linspace(a, a + dash, 3)
        out.append(np.stack([np.interp(q, s, line[:, 0]), np.interp(q, s, line[:, 1])], 1))
        a += dash + gap
    return out


def clip_near(P: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip convex polygons (n, V, 3) (camera frame, z forward) against z >= near.

    Returns (Q, keep): Q (m, V + 1, 3) clipped polygons (padded by repeating their last vertex) for
    the rows `keep` (bool mask over n) that keep at least 3 vertices."""
    n, V, _ = P.shape
    z = P[..., 2]
    inside = z >= near
    nxt = np.roll(P, -1, axis=1)
    zn = nxt[..., 2]
    inn = np.roll(inside, -1, axis=1)
    dz = zn - z
    t = np.where(np.abs(dz) > 1e-12, (near - z) / np.where(np.abs(dz) > 1e-12, dz, 1.0), 0.0)
    I = P + t[..., None] * (nxt - P)
    cand = np.stack([P, I], axis=2).reshape(n, 2 * V, 3)
    valid = np.stack([inside, inside != inn], axis=2).reshape(n, 2 * V)
    count = valid.sum(1)
    keep = count >= 3
    if not keep.any():
        return np.zeros((0, V + 1, 3)), keep
    cand, valid, count = cand[keep], valid[keep], count[keep]
    if valid.all():
        Q = cand
    else:
        order = np.argsort(~valid, axis=1, kind="stable")
        Q = np.take_along_axis(cand, order[..., None], 1)
        pos = np.minimum(np.arange(2 * V)[None], count[:, None] - 1)
        Q = np.take_along_axis(Q, pos[..., None], 1)
    # all-inside rows have 2V candidates with every other one valid: keep the first V + 1 after
    # compaction (an all-inside polygon has exactly V valid, padded by its last vertex)
    return Q[:, :V + 1], keep


def stop_quad(shape: np.ndarray, width: float, depth: float) -> np.ndarray:
    end = shape[-1]
    d = shape[-1] - shape[-2]
    d = d / max(float(np.hypot(*d)), 1e-9)
    n = np.array([-d[1], d[0]]) * (width / 2)
    back = end - d * depth
    return np.array([back - n, end - n, end + n, back + n])

"""Planning a route in the running world: router edges -> lanes -> one polyline through the junctions.

`plan_route(world, rng)` picks random edges, asks SUMO's router (`simulation.findRoute`), chooses on
every edge the lane that links to the next edge (fewest lane changes, planned backwards), and strings
the lanes and SUMO's own internal junction lanes (`lane.getLinks` -> via lane) into one polyline,
resampled every metre. Where the arrival and departure lanes of an edge differ, the polyline blends
across in the middle of the edge (a lane change). The last edge keeps its arrival lane: a lane change
there would prepare for nothing.
"""
from __future__ import annotations

import math
import random

import numpy as np

from .routes import JunctionPass, Route, maneuver_from_direction, segment_instructions

__all__ = ["build_route", "plan_route"]


def _resample(parts: list[tuple[np.ndarray, float, float, bool]], step: float = 1.0):
    """parts: (shape (n,2), width, speed, in_junction) -> resampled points, arc length, per-point
    attributes, and per part the arc length of its first and last vertex."""
    pts, wid, spd, junc = [], [], [], []
    first_last: list[tuple[int, int]] = []
    for shape, w, v, j in parts:
        first = len(pts) - 1 if pts else 0
        for k, p in enumerate(shape):
            if pts and np.hypot(*(p - pts[-1])) < 1e-3:
                continue
            pts.append(np.asarray(p, dtype=np.float64))
            wid.append(w)
            spd.append(v)
            junc.append(j)
        first_last.append((first, len(pts) - 1))
    P = np.array(pts)
    seg = np.hypot(*np.diff(P, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(math.ceil(s[-1] / step)) + 1, 2)
    sq = np.linspace(0.0, s[-1], n)
    x = np.interp(sq, s, P[:, 0])
    y = np.interp(sq, s, P[:, 1])
    idx = np.clip(np.searchsorted(s, sq, side="right") - 1, 0, len(P) - 1)
    # a resampled point takes the attributes of the segment it lies on (its end vertex's part)
    idx2 = np.clip(idx + 1, 0, len(P) - 1)
    part_s = [(float(s[a]), float(s[b])) for a, b in first_last]
    return (np.stack([x, y], 1), sq, np.array(wid)[idx2], np.array(spd)[idx2],
            np.array(junc)[idx2], part_s)


def _sample_shape(shape: np.ndarray, u: np.ndarray) -> np.ndarray:
    seg = np.hypot(*np.diff(shape, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    q = u * s[-1]
    return np.stack([np.interp(q, s, shape[:, 0]), np.interp(q, s, shape[:, 1])], 1)


def _blend_lanes(arr: np.ndarray, dep: np.ndarray, length: float) -> np.ndarray:
    """Polyline from lane `arr` to lane `dep` of the same edge, changing lanes mid-edge."""
    n = max(int(length / 1.0), 8)
    u = np.linspace(0.0, 1.0, n + 1)
    a = _sample_shape(arr, u)
    b = _sample_shape(dep, u)
    u0, u1 = _blend_span(length)
    t = np.clip((u - u0) / max(u1 - u0, 1e-6), 0.0, 1.0)
    w = t * t * (3 - 2 * t)
    return a * (1 - w[:, None]) + b * w[:, None]


def _blend_span(length: float) -> tuple[float, float]:
    """The lane change's start and end as fractions of the edge: ~25 m (or the middle 60 % of a
    short edge), centred on the edge."""
    half = min(12.5, 0.3 * length) / max(length, 1e-6)
    return 0.5 - half, 0.5 + half


def _heading(shape: np.ndarray, at_end: bool) -> float:
    d = shape[-1] - shape[-2] if at_end else shape[1] - shape[0]
    return math.atan2(d[1], d[0])


def _maneuver(static, in_lane: str, out_lane: str, direction: str,
              straight_deg: float = 40.0) -> str:
    """left/right/straight from the heading change through the junction (SUMO's 'L'/'R', partial
    turns, become straight when the heading changes less than `straight_deg`)."""
    try:
        a = _heading(static.lanes[in_lane].shape, True)
        b = _heading(static.lanes[out_lane].shape, False)
    except (KeyError, IndexError):
        return maneuver_from_direction(direction)
    d = math.degrees(math.atan2(math.sin(b - a), math.cos(b - a)))
    if abs(d) < straight_deg:
        return "straight"
    return "left" if d > 0 else "right"


def _internal_chain(traci, lane: str, to_lane: str) -> tuple[list[str], str, int]:
    """Internal lanes from `lane` to `to_lane`, the link direction and the link's index in getLinks."""
    for k, ln in enumerate(traci.lane.getLinks(lane)):
        if ln[0] != to_lane:
            continue
        chain = []
        via = ln[4]
        guard = 0
        while via and via.startswith(":") and guard < 8:
            chain.append(via)
            nxt = traci.lane.getLinks(via)
            guard += 1
            if not nxt:
                break
            via = nxt[0][4] or (nxt[0][0] if nxt[0][0].startswith(":") else "")
        return chain, ln[6], k
    return [], "s", -1


def build_route(world, edges: list[str], seed: int = 0, start_offset: float = 5.0,
                end_offset: float = 8.0, announce_m: float = 40.0) -> Route:
    """Lane polyline + junction passes + instructions for an edge sequence from SUMO's router."""
    traci = world.traci
    static = world.static
    n = len(edges)

    def road_lanes(e: str) -> list[str]:
        return [ln for ln in static.edge_lanes[e] if static.lanes[ln].kind == "road"]

    # departure lane per edge (links to the next edge), planned backwards to limit lane changes;
    # arrival lane per edge (where the previous edge's link lands)
    dep: list[str] = [""] * n
    arr: list[str] = [""] * n
    for i in range(n - 2, -1, -1):
        options = []  # (lane changes, prefer rightmost, from lane, to lane)
        for ln in road_lanes(edges[i]):
            for link in traci.lane.getLinks(ln):
                to = link[0]
                if static.lanes.get(to) is None or static.lanes[to].edge != edges[i + 1]:
                    continue
                # the last edge takes any lane ("": not chosen yet): it keeps its arrival lane
                cost = abs(static.lanes[to].index - static.lanes[dep[i + 1]].index) \
                    if dep[i + 1] else 0
                options.append((cost, static.lanes[ln].index, ln, to))
        if not options:
            raise ValueError(f"no lane link {edges[i]} -> {edges[i + 1]}")
        options.sort()
        _, _, dep[i], arr[i + 1] = options[0]
    dep[-1] = arr[-1] if n > 1 else road_lanes(edges[0])[0]
    arr[0] = dep[0]

    parts: list[tuple[np.ndarray, float, float, bool]] = []
    lanes_driven: list[str] = []
    pending = []

    for i, e in enumerate(edges):
        la, ld = static.lanes[arr[i]], static.lanes[dep[i]]
        if arr[i] == dep[i]:
            parts.append((ld.shape, ld.width, ld.speed, False))
            lanes_driven.append(ld.id)
        else:
            parts.append((_blend_lanes(la.shape, ld.shape, ld.length), ld.width, ld.speed, False))
            lanes_driven += [la.id, ld.id]
        if i == n - 1:
            break
        chain, direction, _ = _internal_chain(traci, dep[i], arr[i + 1])
        edge_part = len(parts) - 1
        for v in chain:
            li = static.lanes[v]
            parts.append((li.shape, li.width, li.speed, True))
            lanes_driven.append(v)
        junction = world.net.getEdge(e).getToNode().getID()
        pending.append((junction, edge_part, len(parts) - 1, direction, dep[i], arr[i + 1], chain,
                        arr[i] != dep[i]))

    P, S, W, V, J, part_s = _resample(parts)
    junctions: list[JunctionPass] = []
    for (jid, p_in, p_out, direction, in_lane, out_lane, chain, changes) in pending:
        s_in = part_s[p_in][1]
        s_out = part_s[p_out][1]
        lane_change_s = None
        if changes:
            a, b = part_s[p_in]
            lane_change_s = a + _blend_span(b - a)[0] * (b - a)
        in_edge = static.lanes[in_lane].edge
        exits = set()
        for ln in road_lanes(in_edge):
            for link in traci.lane.getLinks(ln):
                to = static.lanes.get(link[0])
                if to is not None and link[6] not in ("t",) and to.kind == "road":
                    exits.add(to.edge)
        decision = len(exits) > 1
        tls, link_index = None, -1
        for sl in static.lane_stop_lines.get(in_lane, []):
            if sl.to_lane == out_lane:
                tls, link_index = sl.tls, sl.link_index
        man = _maneuver(static, in_lane, out_lane, direction) if decision else "follow"
        junctions.append(JunctionPass(jid, s_in, s_out, direction, man, decision,
                                      in_lane, out_lane, list(chain), tls, link_index, lane_change_s))
    # trim the start/end offsets (spawn a little into the first edge, stop before the last junction)
    s0 = min(start_offset, 0.25 * S[-1])
    s1 = max(S[-1] - end_offset, s0 + 1.0)
    keep = (S >= s0) & (S <= s1)
    s0 = float(S[keep][0])  # the first kept sample becomes s = 0
    P, S, W, V, J = P[keep], S[keep] - s0, W[keep], V[keep], J[keep]
    for j in junctions:
        j.s_entry -= s0
        j.s_exit -= s0
        if j.lane_change_s is not None:
            j.lane_change_s -= s0
    junctions = [j for j in junctions if 0.0 < j.s_exit and j.s_entry < S[-1]]
    rng = random.Random(seed)
    instructions = segment_instructions(junctions, float(S[-1]), rng, announce_m=announce_m)
    return Route(list(edges), lanes_driven, P, S, W, V, J.astype(bool), junctions, instructions,
                 seed)


def plan_route(world, rng: random.Random, min_length: float = 350.0, max_length: float = 1000.0,
               min_decisions: int = 2, tries: int = 200, clear_m: float = 25.0) -> Route:
    """A random route between two edges (start edge free of traffic near the spawn point)."""
    traci = world.traci
    static = world.static
    edges = sorted(e for e, lanes in static.edge_lanes.items()
                   if any(static.lanes[ln].kind == "road" for ln in lanes))
    starts = [e for e in edges if max(static.lanes[ln].length for ln in static.edge_lanes[e]) > 40.0]
    best = None
    for _ in range(tries):
        a = rng.choice(starts)
        b = rng.choice(edges)
        if a == b:
            continue
        r = traci.simulation.findRoute(a, b, vType="ego")
        if not r.edges or not (min_length <= r.length <= max_length):
            continue
        try:
            route = build_route(world, list(r.edges), seed=rng.randrange(1 << 30))
        except ValueError:
            continue
        if sum(j.decision for j in route.junctions) < min_decisions:
            continue
        # spawn point must be clear of vehicles
        x, y, _ = route.point_at(0.0)
        clear = True
        for v in traci.vehicle.getIDList():
            px, py = traci.vehicle.getPosition(v)
            if math.hypot(px - x, py - y) < clear_m:
                clear = False
                break
        if clear:
            return route
        best = best or route
    if best is None:
        raise RuntimeError("no route found")
    return best

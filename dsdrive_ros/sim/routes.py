"""Routes through a SUMO world: the lane polyline through the junctions, and its instructions.

Routes are planned in the running world by `route_planning.py`.

Instructions are LangAuto-like. `segment_instructions` is a pure function over the junction passes:
per decision junction (one with a real choice of exits) one manoeuvre instruction ("turn left at the
next intersection", ...) that starts `announce_m` before the junction, or earlier, before the lane
change the manoeuvre needs (a lane change under "follow the road" cannot be told from the text, and
a model learns to drift mid-edge), and ends where the route leaves it; long stretches before it get a
"follow the road" instruction; the route ends with one. Each manoeuvre has several paraphrases; the
choice is seeded. An instruction's `end` flag is raised on the step on which the ego's progress first
reaches the instruction's `s_end`.
"""
from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

import numpy as np

__all__ = ["JunctionPass", "Instruction", "Route", "RouteTracker", "TEMPLATES",
           "segment_instructions", "maneuver_from_direction"]

TEMPLATES: dict[str, list[str]] = {
    "left": [
        "Turn left at the next intersection.",
        "At the next intersection, turn left.",
        "Take a left at the upcoming junction.",
        "Make a left turn at the next crossroads.",
        "Go left when you reach the next intersection.",
        "Prepare to turn left at the intersection ahead.",
    ],
    "right": [
        "Turn right at the next intersection.",
        "At the next intersection, turn right.",
        "Take a right at the upcoming junction.",
        "Make a right turn at the next crossroads.",
        "Go right when you reach the next intersection.",
        "Prepare to turn right at the intersection ahead.",
    ],
    "straight": [
        "Go straight through the intersection.",
        "Continue straight at the next intersection.",
        "Keep going straight across the upcoming junction.",
        "Drive straight through the next crossroads.",
        "At the next intersection, go straight ahead.",
        "Proceed straight at the intersection ahead.",
    ],
    "follow": [
        "Follow the lane.",
        "Follow the road.",
        "Keep following the current road.",
        "Stay in your lane and follow the road.",
        "Continue along the road.",
        "Drive along this road.",
    ],
}


def maneuver_from_direction(direction: str) -> str:
    return {"s": "straight", "l": "left", "L": "left", "r": "right", "R": "right",
            "t": "left"}.get(direction, "straight")


@dataclass
class JunctionPass:
    junction: str
    s_entry: float  # where the route enters the junction (end of the incoming lane = stop line)
    s_exit: float  # where it leaves it
    direction: str  # SUMO link direction (s, l, r, t, L, R)
    maneuver: str  # "left" | "right" | "straight" | "follow"
    decision: bool  # the incoming edge offers more than one exit here
    in_lane: str = ""
    out_lane: str = ""
    via: list[str] = field(default_factory=list)
    tls: str | None = None
    link_index: int = -1  # the TLS link index of the route's connection (-1: unsignalised)
    lane_change_s: float | None = None  # where the lane change on the incoming edge starts, if any


@dataclass
class Instruction:
    id: int  # index in the route; changes whenever the instruction changes
    maneuver: str  # "follow" | "straight" | "left" | "right"
    text: str
    template: str  # "<maneuver>/<paraphrase index>"
    s_start: float
    s_end: float
    junction: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def segment_instructions(junctions: list[JunctionPass], length: float, rng: random.Random,
                         announce_m: float = 40.0, min_follow_m: float = 25.0,
                         lane_change_lead_m: float = 10.0) -> list[Instruction]:
    """Split a route of `length` m into instructions (see module doc). Pure and deterministic."""
    segs: list[tuple[str, float, float, str | None]] = []
    prev = 0.0
    for j in junctions:
        if not j.decision or j.maneuver == "follow":
            continue
        start = j.s_entry - announce_m
        if j.lane_change_s is not None:
            start = min(start, j.lane_change_s - lane_change_lead_m)
        start = max(prev, start)
        if start - prev >= min_follow_m:
            segs.append(("follow", prev, start, None))
        else:
            start = prev
        end = min(max(j.s_exit, start + 1.0), length)
        segs.append((j.maneuver, start, end, j.junction))
        prev = end
    if length - prev >= min_follow_m or not segs:
        segs.append(("follow", prev, length, None))
    else:  # a short tail joins the last instruction
        m, a, _, jn = segs[-1]
        segs[-1] = (m, a, length, jn)
    out = []
    for i, (m, a, b, jn) in enumerate(segs):
        k = rng.randrange(len(TEMPLATES[m]))
        out.append(Instruction(i, m, TEMPLATES[m][k], f"{m}/{k}", float(a), float(b), jn))
    return out


@dataclass
class Route:
    edges: list[str]
    lanes: list[str]  # every lane driven, internal ones included, in order
    points: np.ndarray  # (N, 2) polyline, ~1 m spacing
    s: np.ndarray  # (N,) arc length
    width: np.ndarray  # (N,) lane width
    speed_limit: np.ndarray  # (N,) m/s
    in_junction: np.ndarray  # (N,) bool
    junctions: list[JunctionPass]
    instructions: list[Instruction]
    seed: int = 0

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def yaw(self) -> np.ndarray:
        d = np.gradient(self.points, axis=0)
        return np.arctan2(d[:, 1], d[:, 0])

    def _lists(self):
        c = self.__dict__.get("_cache_lists")
        if c is None:
            c = (self.s.tolist(), self.points[:, 0].tolist(), self.points[:, 1].tolist())
            self.__dict__["_cache_lists"] = c
        return c

    def index_at(self, s: float) -> int:
        """Index of the first polyline point at or after arc length s (clamped)."""
        sl = self._lists()[0]
        return min(bisect.bisect_left(sl, s), len(sl) - 1)

    def point_at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at arc length s (clamped to the route)."""
        sl, xl, yl = self._lists()
        n = len(sl)
        s = min(max(float(s), 0.0), sl[-1])
        i = min(max(bisect.bisect_left(sl, s), 1), n - 1)
        s0, s1 = sl[i - 1], sl[i]
        t = (s - s0) / (s1 - s0) if s1 > s0 else 0.0
        x = xl[i - 1] + t * (xl[i] - xl[i - 1])
        y = yl[i - 1] + t * (yl[i] - yl[i - 1])
        return x, y, math.atan2(yl[i] - yl[i - 1], xl[i] - xl[i - 1])

    def points_between(self, s0: float, s1: float) -> np.ndarray:
        i0, i1 = self.index_at(s0), self.index_at(s1)
        return self.points[i0:i1 + 1]

    def instruction_at(self, s: float) -> Instruction:
        for ins in self.instructions:
            if s < ins.s_end:
                return ins
        return self.instructions[-1]

    def next_junction(self, s: float) -> JunctionPass | None:
        for j in self.junctions:
            if j.s_exit > s:
                return j
        return None

    def curvature(self) -> np.ndarray:
        yaw = np.unwrap(self.yaw())
        ds = np.gradient(self.s)
        return np.gradient(yaw) / np.maximum(ds, 1e-6)

    def to_dict(self) -> dict:
        return {"edges": self.edges, "length": self.length, "seed": self.seed,
                "instructions": [i.to_dict() for i in self.instructions],
                "junctions": [{k: v for k, v in j.__dict__.items()} for j in self.junctions],
                "polyline": np.round(self.points[::5], 2).tolist()}


class RouteTracker:
    """Projects the ego onto the route, monotonically (a search window around the last s)."""

    def __init__(self, route: Route, s0: float = 0.0):
        self.route = route
        self.s = float(s0)
        self.lateral = 0.0

    def project(self, x: float, y: float, s_lo: float, s_hi: float) -> tuple[float, float]:
        r = self.route
        i0 = max(r.index_at(s_lo) - 1, 0)
        i1 = min(r.index_at(s_hi) + 1, len(r.s) - 1)
        if i1 <= i0:
            i1 = min(i0 + 1, len(r.s) - 1)
            i0 = max(i1 - 1, 0)
        a = r.points[i0:i1]
        b = r.points[i0 + 1:i1 + 1]
        ab = b - a
        L2 = np.maximum((ab * ab).sum(1), 1e-12)
        p = np.array([x, y])
        t = np.clip(((p - a) * ab).sum(1) / L2, 0.0, 1.0)
        proj = a + ab * t[:, None]
        d = np.hypot(*(proj - p).T)
        k = int(np.argmin(d))
        s = r.s[i0 + k] + t[k] * math.sqrt(L2[k])
        return float(s), float(d[k])

    def update(self, x: float, y: float) -> tuple[float, float]:
        s, d = self.project(x, y, self.s - 5.0, self.s + 40.0)
        if d > 8.0:  # lost: search the whole route ahead of a bit behind us
            s2, d2 = self.project(x, y, self.s - 30.0, self.route.length)
            if d2 < d:
                s, d = s2, d2
        self.s = max(s, self.s - 1.0)  # progress never jumps backwards more than a metre
        self.lateral = d
        return self.s, d

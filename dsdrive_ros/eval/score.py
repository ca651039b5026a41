"""LangAuto / CARLA-leaderboard scoring arithmetic (pure functions, no simulator).

  RC  route completion, percent of the route's length driven (0..100)
  IS  infraction score = product over infractions of their penalty, times (1 - off-route share)
      penalties: pedestrian collision 0.50, vehicle 0.60, static 0.65, red light 0.70, stop sign 0.80
  DS  driving score = RC x IS (0..100); over several routes: the mean of the per-route DS
      (and RC, IS means reported beside it, as the leaderboard does).

The off-route share is the distance driven off the route (farther from the route polyline than a
lane width) divided by the route length, clipped to [0, 1].
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

__all__ = ["PENALTIES", "INFRACTION_KINDS", "route_completion", "off_route_share",
           "infraction_score", "driving_score", "score_route", "aggregate"]

PENALTIES: dict[str, float] = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_static": 0.65,
    "red_light": 0.70,
    "stop_sign": 0.80,
}
INFRACTION_KINDS = tuple(PENALTIES) + ("off_route",)


def route_completion(progress_m: float, route_length_m: float) -> float:
    if route_length_m <= 0:
        return 0.0
    return 100.0 * min(max(progress_m / route_length_m, 0.0), 1.0)


def off_route_share(off_route_m: float, route_length_m: float) -> float:
    if route_length_m <= 0:
        return 0.0
    return min(max(off_route_m / route_length_m, 0.0), 1.0)


def infraction_score(infractions: Iterable[str] | dict[str, int], off_route: float = 0.0) -> float:
    """`infractions`: kinds (one entry per infraction) or {kind: count}; off_route: share 0..1."""
    counts = Counter(infractions) if not isinstance(infractions, dict) else infractions
    s = 1.0
    for kind, n in counts.items():
        if kind not in PENALTIES:
            raise KeyError(f"unknown infraction {kind!r}; known: {sorted(PENALTIES)}")
        s *= PENALTIES[kind] ** int(n)
    return s * (1.0 - min(max(off_route, 0.0), 1.0))


def driving_score(rc: float, is_: float) -> float:
    return rc * is_


def score_route(route_length_m: float, progress_m: float, infractions: Iterable[str],
                off_route_m: float = 0.0) -> dict:
    """One route: {'RC', 'IS', 'DS', 'infractions': {kind: n}, 'off_route_share'}."""
    kinds = list(infractions)
    rc = route_completion(progress_m, route_length_m)
    share = off_route_share(off_route_m, route_length_m)
    is_ = infraction_score(kinds, share)
    return {"RC": rc, "IS": is_, "DS": driving_score(rc, is_), "infractions": dict(Counter(kinds)),
            "off_route_share": share}


def aggregate(scores: list[dict]) -> dict:
    """Mean RC, IS, DS over routes, and the summed infraction counts."""
    if not scores:
        return {"RC": 0.0, "IS": 0.0, "DS": 0.0, "routes": 0, "infractions": {}}
    n = len(scores)
    total: Counter = Counter()
    for s in scores:
        total.update(s.get("infractions", {}))
    return {"RC": sum(s["RC"] for s in scores) / n, "IS": sum(s["IS"] for s in scores) / n,
            "DS": sum(s["DS"] for s in scores) / n, "routes": n, "infractions": dict(total)}

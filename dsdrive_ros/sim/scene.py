"""Privileged scene state: what the simulator knows each step, in one plain structure.

The expert, the scripted teacher, the dataset writer and the scorer read this; none of them talk to
SUMO directly. Positions are metres in SUMO's world frame (x east, y north) unless a field says
`base_link` (x forward, y left, REP-103).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RoadUser:
    """Another road user near the ego."""

    id: str
    kind: str  # "vehicle" | "pedestrian" | "bicycle"
    x: float
    y: float
    yaw: float  # rad, counter-clockwise from east
    length: float
    width: float
    speed: float
    rel_x: float  # base_link
    rel_y: float  # base_link


@dataclass
class TrafficLightAhead:
    state: str  # "red" | "yellow" | "green"
    distance: float  # metres along the route to the stop line


@dataclass
class SceneState:
    step: int
    t: float
    x: float
    y: float
    yaw: float  # rad, counter-clockwise from east
    speed: float
    speed_limit: float
    instruction: str
    instruction_id: int
    maneuver: str  # "follow" | "straight" | "left" | "right"
    end: bool  # the current instruction's manoeuvre completes on this step
    route_progress: float  # 0..1 share of the route driven
    waypoints: list[list[float]] = field(default_factory=list)  # expert future, base_link
    action: str = "go"  # "stop" | "slow" | "go" | "turn left" | "turn right"
    agents: list[RoadUser] = field(default_factory=list)
    light: TrafficLightAhead | None = None
    junction_distance: float | None = None  # metres to the next junction along the route
    is_junction: bool = False
    # added by the closed-loop harness (sim/episode.py):
    planned_waypoints: list[list[float]] = field(default_factory=list)  # expert's online plan, base_link
    events: list[str] = field(default_factory=list)  # infractions/status raised on this step

""":class:`PlanOutput` -> visualization_msgs/MarkerArray for RViz (dsdrive/markers).

What is drawn, where and in which colour is decided ROS-free (``plan_markers`` -> ``MarkerSpec``);
``fill_markers`` only copies that into messages. Every marker carries the plan's header (stamp =
anchor camera stamp, frame = the waypoints' frame, base_link) and a fixed namespace + id, so each
plan replaces the previous one in RViz:

  ``path``         LINE_STRIP from the ego (base_link origin) through the waypoints
  ``waypoints``    SPHERE_LIST, one sphere per waypoint
  ``reasoning``    TEXT_VIEW_FACING above base_link: the latest reasoning text (deleted while empty)
  ``instruction``  TEXT_VIEW_FACING below it: the instruction and the end probability

Path and spheres are coloured by the end probability: green (the instruction goes on) through
yellow to red (it is done).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from dsdrive_ros.outputs.parse import PlanOutput

__all__ = ["RGBA", "MarkerSpec", "end_color", "plan_markers", "fill_markers", "NAMESPACES"]

NAMESPACES = ("path", "waypoints", "reasoning", "instruction")
LINE_WIDTH_M = 0.15
SPHERE_M = 0.4
TEXT_HEIGHT_M = 0.35
TEXT_COLUMNS = 48  # reasoning wrapped to this many characters a line
TEXT_MAX_LINES = 8
INSTRUCTION_Z_M = 2.2  # above base_link (roughly the roof of a car)


class RGBA(NamedTuple):
    r: float
    g: float
    b: float
    a: float = 1.0


@dataclass
class MarkerSpec:
    """One visualization_msgs/Marker without ROS types. ``kind``: a Marker type constant's name."""

    ns: str
    kind: str
    color: RGBA
    scale: tuple[float, float, float]
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    points: list[tuple[float, float, float]] = field(default_factory=list)
    text: str = ""
    delete: bool = False


def end_color(end_prob: float, alpha: float = 1.0) -> RGBA:
    """Green at 0, yellow at 0.5, red at 1 (clipped)."""
    p = min(max(float(end_prob), 0.0), 1.0)
    return RGBA(min(1.0, 2.0 * p), min(1.0, 2.0 * (1.0 - p)), 0.1, alpha)


def plan_markers(plan: PlanOutput) -> list[MarkerSpec]:
    """The markers of one plan, in NAMESPACES order (one marker per namespace, id 0)."""
    color = end_color(plan.end_prob)
    waypoints = [(float(x), float(y), 0.0) for x, y in plan.waypoints]
    lines = textwrap.wrap(plan.reasoning, TEXT_COLUMNS)
    if len(lines) > TEXT_MAX_LINES:
        lines = lines[:TEXT_MAX_LINES - 1] + [lines[TEXT_MAX_LINES - 1] + " ..."]
    # the text block's centre is its anchor: lift it so that its lowest line clears the instruction
    reasoning_z = INSTRUCTION_Z_M + TEXT_HEIGHT_M * (0.5 + 0.6 * (len(lines) + 1))
    done = " (done)" if plan.instruction_completed else ""
    instruction = plan.instruction or "(no instruction)"
    text_color = RGBA(1.0, 1.0, 1.0, 1.0)
    return [
        MarkerSpec("path", "LINE_STRIP", end_color(plan.end_prob, 0.9), (LINE_WIDTH_M, 0.0, 0.0),
                   points=[(0.0, 0.0, 0.0)] + waypoints),
        MarkerSpec("waypoints", "SPHERE_LIST", color, (SPHERE_M, SPHERE_M, SPHERE_M), points=waypoints),
        MarkerSpec("reasoning", "TEXT_VIEW_FACING", text_color, (0.0, 0.0, TEXT_HEIGHT_M),
                   position=(0.0, 0.0, reasoning_z), text="\n".join(lines), delete=not lines),
        MarkerSpec("instruction", "TEXT_VIEW_FACING", color, (0.0, 0.0, TEXT_HEIGHT_M),
                   position=(0.0, 0.0, INSTRUCTION_Z_M),
                   text=f"{instruction}  [end {plan.end_prob:.2f}{done}]"),
    ]


def fill_markers(plan: PlanOutput, msg: Any = None) -> Any:
    """visualization_msgs/MarkerArray of ``plan_markers(plan)`` under the plan's header."""
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker, MarkerArray

    from dsdrive_ros.outputs.fill import ns_to_time

    if msg is None:
        msg = MarkerArray()
    stamp = ns_to_time(plan.stamp_ns)
    markers = []
    for spec in plan_markers(plan):
        m = Marker()
        m.header.stamp = stamp
        m.header.frame_id = plan.frame_id
        m.ns, m.id = spec.ns, 0
        m.type = getattr(Marker, spec.kind)
        m.action = Marker.DELETE if spec.delete else Marker.ADD
        m.pose.position.x, m.pose.position.y, m.pose.position.z = spec.position
        m.pose.orientation.w = 1.0
        m.scale.x, m.scale.y, m.scale.z = spec.scale
        m.color.r, m.color.g, m.color.b, m.color.a = spec.color
        m.points = [Point(x=x, y=y, z=z) for x, y, z in spec.points]
        m.text = spec.text
        markers.append(m)
    msg.markers = markers
    return msg

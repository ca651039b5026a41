"""The static map of a SUMO network, read once per world: lanes, junction polygons, traffic-light
stop lines, yield lanes. Routing, rendering, the expert and the infraction monitor share it
(`World.static`); it is read-only."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LaneInfo", "StopLine", "StaticMap"]


@dataclass
class LaneInfo:
    id: str
    edge: str
    index: int
    function: str  # "normal" | "internal" | "crossing" | "walkingarea"
    kind: str  # "road" | "sidewalk" | "other"
    shape: np.ndarray  # (N, 2) centre line
    width: float
    length: float
    speed: float
    junction: str | None  # for internal/crossing/walkingarea lanes: the junction


@dataclass
class StopLine:
    """Where a signalised lane ends: the ego crossing it on red is a red-light infraction."""

    tls: str
    link_index: int
    lane: str  # incoming lane
    to_lane: str
    via: str  # internal lane
    p0: np.ndarray  # left end of the line (2,)
    p1: np.ndarray  # right end of the line (2,)
    direction: str  # SUMO link direction: s, l, r, t, L, R


@dataclass
class StaticMap:
    lanes: dict[str, LaneInfo]
    junctions: dict[str, np.ndarray]  # junction id -> polygon (N, 2)
    junction_tls: dict[str, str]  # junction id -> tls id for signalised junctions
    stop_lines: list[StopLine]
    lane_stop_lines: dict[str, list[StopLine]]  # incoming lane -> its stop lines (one per link)
    boundary: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax
    edge_lanes: dict[str, list[str]] = field(default_factory=dict)  # normal edge -> lanes (right->left)
    yield_lanes: list[str] = field(default_factory=list)  # unsignalised lanes whose links all yield
    edge_nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # edge -> (from, to) node

    @staticmethod
    def from_net(net_file: str) -> "StaticMap":
        import sumolib

        net = sumolib.net.readNet(net_file, withInternal=True, withPedestrianConnections=True)
        lanes: dict[str, LaneInfo] = {}
        edge_lanes: dict[str, list[str]] = {}
        for e in net.getEdges(withInternal=True):
            fn = e.getFunction() or "normal"
            junction = None
            if fn != "normal":
                junction = e.getID()[1:].rsplit("_", 1)[0]
            for ln in e.getLanes():
                allowed_ped = ln.allows("pedestrian")
                allowed_car = ln.allows("passenger")
                kind = "road" if allowed_car else ("sidewalk" if allowed_ped else "other")
                shape = np.asarray(ln.getShape(), dtype=np.float64)[:, :2]
                lanes[ln.getID()] = LaneInfo(ln.getID(), e.getID(), ln.getIndex(), fn, kind, shape,
                                             float(ln.getWidth()), float(ln.getLength()),
                                             float(ln.getSpeed()), junction)
            if fn == "normal":
                edge_lanes[e.getID()] = [ln.getID() for ln in e.getLanes()]
        junctions: dict[str, np.ndarray] = {}
        for n in net.getNodes():
            sh = n.getShape()
            if sh and len(sh) >= 3:
                junctions[n.getID()] = np.asarray(sh, dtype=np.float64)[:, :2]
        stop_lines: list[StopLine] = []
        lane_stop: dict[str, list[StopLine]] = {}
        junction_tls: dict[str, str] = {}
        for tls in net.getTrafficLights():
            for in_lane, out_lane, link_no in tls.getConnections():
                li = lanes.get(in_lane.getID())
                if li is None or li.kind != "road":
                    continue
                junction_tls[in_lane.getEdge().getToNode().getID()] = tls.getID()
                sh = li.shape
                d = sh[-1] - sh[-2]
                d = d / (np.linalg.norm(d) + 1e-9)
                left = np.array([-d[1], d[0]])
                p0 = sh[-1] + left * li.width / 2
                p1 = sh[-1] - left * li.width / 2
                via = ""
                direction = "s"
                for c in in_lane.getOutgoing():
                    if c.getToLane().getID() == out_lane.getID():
                        via = c.getViaLaneID() or ""
                        direction = c.getDirection()
                sl = StopLine(tls.getID(), int(link_no), in_lane.getID(), out_lane.getID(), via,
                              p0, p1, direction)
                stop_lines.append(sl)
                lane_stop.setdefault(in_lane.getID(), []).append(sl)
        yield_lanes = []
        for e in net.getEdges():
            for ln in e.getLanes():
                if ln.getID() in lane_stop or lanes[ln.getID()].kind != "road":
                    continue
                states = [c.getState() for c in ln.getOutgoing()
                          if c.getToLane().allows("passenger")]
                if states and all(st in ("m", "s", "w") for st in states):
                    yield_lanes.append(ln.getID())
        xmin, ymin, xmax, ymax = net.getBoundary()
        return StaticMap(lanes, junctions, junction_tls, stop_lines, lane_stop,
                         (xmin, ymin, xmax, ymax), edge_lanes, sorted(yield_lanes),
                         {e.getID(): (e.getFromNode().getID(), e.getToNode().getID())
                          for e in net.getEdges()})

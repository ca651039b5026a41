"""One closed-loop drive: world + route + ego + cameras + a policy, stepped together.

    ep = Episode(world, route, cameras=None, seed=3, agent=Expert())
    for state, images in ep.run():        # online: state.waypoints empty, planned_waypoints by the expert
        ...
    print(ep.result())                    # RC / IS / DS, infractions, status

    for state, images in Episode(town="grid4", seed=3):     # dataset use: iterating = frames()
        ...                               # state.waypoints = the ego's ACTUAL future (ground truth)

Loop per model step (model_hz, default 10 Hz; the simulator may run faster, `sim_hz` 10..20):
observe SUMO -> SceneState (+ events raised since the last model step) -> render cameras ->
`policy.act(state, images)` (`Episode.agent`) -> yield -> apply the control for 1/model_hz s (bicycle model pushed into
SUMO with moveToXY every sim step; events checked every sim step).

Policies implement `reset(info: EpisodeInfo)` and `act(state, images) -> Control` (the `Policy`
protocol); the expert (policies/expert.py), the waypoint followers (policies/waypoint_policies.py)
and the ROS bridge (eval/closed_loop.py) use the same loop.

Events (`state.events`, `Episode.infractions`):
  * collision_vehicle / collision_pedestrian, red_light: see eval/infractions.py.
  * off_route (not an infraction count: the distance is summed): the centre is farther from the route
    polyline than the lane width there.
  * status events ending the route: route_completed, route_deviation (> 30 m off), blocked (no motion
    for 180 s), timeout.
"""
from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Protocol

import numpy as np

from ..eval import score as scoring
from ..eval.infractions import Infraction, InfractionMonitor
from .cameras import CameraConfig, CameraRig
from .ego import Control, Ego, EgoParams, EgoState
from .observation import RoadUserReader, RoadUserReading, future_waypoints
from .render import Box, Renderer, agent_color
from .route_planning import plan_route
from .routes import Route, RouteTracker
from .scene import RoadUser, SceneState, TrafficLightAhead
from .world import World, generate_world

__all__ = ["Policy", "EpisodeConfig", "EpisodeInfo", "Episode", "WORLD_VARIANTS"]

WORLD_VARIANTS = 4  # episodes with seed s use the world files of (town, s % WORLD_VARIANTS)


class Policy(Protocol):
    """What drives the ego: told about the episode once, then asked for a control every model step."""

    def reset(self, info: "EpisodeInfo") -> None: ...

    def act(self, state: SceneState, images: dict[str, np.ndarray]) -> Control: ...


@dataclass
class EpisodeConfig:
    sim_hz: float = 10.0
    model_hz: float = 10.0
    render: bool = True
    agent_radius: float = 110.0  # agents read from SUMO (drawn, and seen by privileged agents)
    state_radius: float = 60.0  # agents listed in SceneState.agents
    max_time_s: float | None = None  # default: max(180, route length / 1.5)
    blocked_s: float = 180.0  # CARLA leaderboard: blocked after 180 s
    deviation_m: float = 30.0
    complete_m: float = 2.0  # route completed when the centre is this close to the end
    waypoints: int = 5
    waypoint_dt: float = 0.5
    collision_reid_s: float = 5.0
    max_steps: int | None = None  # cap on model steps (then status "max_steps", no penalty)


@dataclass
class EpisodeInfo:
    world: World
    route: Route
    rig: CameraRig
    ego_params: EgoParams
    dt: float  # model step (s)
    sim_dt: float
    seed: int
    tls_states: Callable[[], dict[str, str]]
    all_agents: Callable[[], list] = lambda: []  # privileged: every agent within agent_radius


class Episode:
    def __init__(self, world: World | None = None, route: Route | None = None,
                 cameras: CameraRig | list[CameraConfig] | None = None, seed: int = 0,
                 agent: Policy | None = None, config: EpisodeConfig | None = None, *,
                 town: str | None = None, max_steps: int | None = None,
                 ego_params: EgoParams | None = None, renderer: Renderer | None = None,
                 cache: str | None = None):
        self.seed = int(seed)
        self.config = config or EpisodeConfig()
        if max_steps is not None:
            self.config.max_steps = max_steps
        self._own_world = world is None
        if world is None:
            files = generate_world(town or "grid4", self.seed % WORLD_VARIANTS, cache)
            world = World(files, seed=self.seed,
                          step_length=1.0 / self.config.sim_hz,
                          warmup_s=60.0 + 10.0 * (self.seed % 7))
        self.world = world
        if abs(world.step_length - 1.0 / self.config.sim_hz) > 1e-9:
            raise ValueError(f"world step {world.step_length} s != 1/sim_hz {1 / self.config.sim_hz}")
        n = self.config.sim_hz / self.config.model_hz
        if abs(n - round(n)) > 1e-6 or round(n) < 1:
            raise ValueError("sim_hz must be a whole multiple of model_hz")
        self.substeps = int(round(n))
        self.route = route if route is not None else plan_route(world, random.Random(self.seed))
        if isinstance(cameras, CameraRig):
            self.rig = cameras
        else:
            self.rig = CameraRig(list(cameras)) if cameras is not None else CameraRig()
        if agent is None:
            from ..policies.expert import Expert

            agent = Expert()
        self.agent = agent
        self.ego_params = ego_params or EgoParams()
        self._renderer = renderer
        self.infractions: list[Infraction] = []
        self.status = "running"
        self.progress_m = 0.0
        self.off_route_m = 0.0
        self.steps = 0
        self.poses: list[tuple[float, float, float]] = []
        self._result: dict | None = None

    # ------------------------------------------------------------------------------------------
    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self.world.static, self.rig, seed=0)
        return self._renderer

    @property
    def dt(self) -> float:
        return 1.0 / self.config.model_hz

    def meta(self) -> dict:
        m = {"town": self.world.files.town, "seed": self.seed, "world": self.world.files.to_dict(),
             "net": self.world.files.net, "rate_hz": self.config.model_hz,
             "sim_hz": self.config.sim_hz, "cameras": self.rig.to_dict(),
             "camera_names": self.rig.names, "ego": asdict(self.ego_params),
             "waypoints": {"count": self.config.waypoints, "dt_s": self.config.waypoint_dt,
                           "frame_id": "base_link",
                           "source": "ego's actual future poses (Episode.frames)"},
             "route": self.route.to_dict()}
        if self._result is not None:
            m["score"] = self._result
        return m

    describe = meta

    def close(self) -> None:
        if self._own_world:
            self.world.close()

    # ------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        tr = self.world.traci
        x, y, yaw = self.route.point_at(0.0)
        self.ego = Ego(EgoState(x, y, yaw, 0.0), self.ego_params)
        self.ego.add_to_sumo(tr, self.route.edges)
        self.world.step()
        self._reader = RoadUserReader(self.world, self.config.agent_radius)
        self._reader.subscribe()
        self.ego_reinserted = 0
        self._all_agents: list[RoadUser] = []
        self.tracker = RouteTracker(self.route, 0.0)
        self._ins_idx = 0
        self._t0 = self.world.time
        self._still_since = self._t0
        self._pending_events: list[str] = []
        self._monitor = InfractionMonitor(self.world.static, self.route,
                                          self.config.collision_reid_s)
        L = self.route.length
        self._max_time = self.config.max_time_s or max(180.0, L / 1.5)
        self.agent.reset(EpisodeInfo(self.world, self.route, self.rig, self.ego_params, self.dt,
                                     1.0 / self.config.sim_hz, self.seed, self.world.tls_states,
                                     lambda: self._all_agents))

    def _push_ego(self) -> None:
        """moveToXY the ego; if SUMO dropped it (it may teleport a vehicle it thinks is stuck, or
        end its one-edge route), insert it again where our model says it is."""
        tr = self.world.traci
        try:
            self.ego.push(tr)
            return
        except tr.TraCIException:
            pass
        self.ego_reinserted += 1
        self.ego.add_to_sumo(tr, self.route.edges)
        self._reader.subscribe()

    def _read_agents(self) -> list[RoadUserReading]:
        return self._reader.read(self.ego.state.x, self.ego.state.y)

    # -- events, every sim step
    def _check_events(self, prev_front: tuple[float, float], agents: list[RoadUserReading]) -> None:
        e = self.ego
        t = self.world.time
        st = e.state
        for d in self._monitor.check(e, prev_front, agents, t, self.world.tls_states):
            self._add(d.kind, d.other, d.rel)
        # progress / off-route
        s, lat = self.tracker.update(st.x, st.y)
        self.progress_m = max(self.progress_m, min(s, self.route.length))
        width = float(self.route.width[self.route.index_at(s)])
        moved = math.hypot(st.x - self._last_xy[0], st.y - self._last_xy[1])
        self._last_xy = (st.x, st.y)
        if lat > width:
            self.off_route_m += moved
            if "off_route" not in self._pending_events:
                self._pending_events.append("off_route")
        if st.speed > 0.1:
            self._still_since = t
        # termination
        if self.status == "running":
            if s >= self.route.length - self.config.complete_m:
                self.progress_m = self.route.length
                self._finish("route_completed")
            elif lat > self.config.deviation_m:
                self._finish("route_deviation")
            elif t - self._still_since > self.config.blocked_s:
                self._finish("blocked")
            elif t - self._t0 > self._max_time:
                self._finish("timeout")

    def _add(self, kind: str, other: str, rel: tuple[float, float, float] | None = None) -> None:
        if self.status != "running":
            return  # after the end (the tail driven for future waypoints) nothing counts
        st = self.ego.state
        self.infractions.append(Infraction(kind, self.steps, self.world.time - self._t0, st.x, st.y,
                                           other, st.speed, rel))
        self._pending_events.append(f"{kind}:{other}")

    def _finish(self, status: str) -> None:
        self.status = status
        self._pending_events.append(status)
        self._result = self._score()

    def _score(self) -> dict:
        r = scoring.score_route(self.route.length, self.progress_m,
                                [i.kind for i in self.infractions], self.off_route_m)
        r.update({"status": self.status, "route_length": self.route.length,
                  "ego_reinserted": self.ego_reinserted,
                  "progress_m": self.progress_m, "off_route_m": self.off_route_m,
                  "time_s": self.world.time - self._t0, "steps": self.steps,
                  "infraction_list": [asdict(i) for i in self.infractions]})
        return r

    def result(self) -> dict:
        if self._result is None and hasattr(self, "_t0"):
            return self._score()
        return self._result or {}

    # -- state
    def _observe(self, agents: list[RoadUserReading]) -> tuple[SceneState, list[Box]]:
        r = self.route
        st = self.ego.state
        s = self.tracker.s
        half = 0.5 * self.ego_params.length
        s_front = s + half
        c, si = math.cos(st.yaw), math.sin(st.yaw)
        R2 = self.config.state_radius ** 2
        all_agents, boxes = [], []
        for a in agents:
            dx, dy = a.x - st.x, a.y - st.y
            boxes.append(Box(a.x, a.y, a.yaw, a.length, a.width, a.height,
                             agent_color(a.id, a.kind), a.kind, a.braking))
            all_agents.append(RoadUser(a.id, a.kind, a.x, a.y, a.yaw, a.length, a.width, a.speed,
                                       c * dx + si * dy, -si * dx + c * dy))
        all_agents.sort(key=lambda a: (a.rel_x ** 2 + a.rel_y ** 2, a.id))
        self._all_agents = all_agents  # privileged agents see these (agent_radius)
        scene_agents = [a for a in all_agents if a.rel_x ** 2 + a.rel_y ** 2 <= R2]
        # instruction and its end flag
        ins = r.instructions[min(self._ins_idx, len(r.instructions) - 1)]
        end = False
        if self._ins_idx < len(r.instructions):
            last = self._ins_idx == len(r.instructions) - 1
            if s >= ins.s_end - (self.config.complete_m if last else 0.0):
                end = True
                self._ins_idx += 1
        # light ahead on the route
        light = None
        tls_states = self.world.tls_states()
        jn_dist = None
        for j in r.junctions:
            if j.s_exit < s:
                continue
            if jn_dist is None:
                jn_dist = max(j.s_entry - s_front, 0.0)
            if j.tls is not None and j.s_entry >= s_front - 0.5:
                ch = tls_states.get(j.tls, "")[j.link_index:j.link_index + 1]
                state = "green" if ch in ("G", "g") else "yellow" if ch in ("y", "Y") else \
                    "red" if ch in ("r", "R", "u", "s") else None
                if state is not None and j.s_entry - s_front < 120.0:
                    light = TrafficLightAhead(state, float(j.s_entry - s_front))
                break
        i = r.index_at(s)
        events, self._pending_events = self._pending_events, []
        state = SceneState(step=self.steps, t=round(self.world.time - self._t0, 6), x=st.x, y=st.y,
                           yaw=st.yaw, speed=st.speed, speed_limit=float(r.speed_limit[i]),
                           instruction=ins.text, instruction_id=ins.id, maneuver=ins.maneuver,
                           end=end, route_progress=float(min(s / r.length, 1.0)), waypoints=[],
                           agents=scene_agents, light=light, junction_distance=jn_dist,
                           is_junction=bool(r.in_junction[i]), events=events)
        return state, boxes

    # ------------------------------------------------------------------------------------------
    def _loop(self, tail_steps: int = 0) -> Iterator[tuple[SceneState, dict, bool]]:
        """(state, images, is_tail); tail steps continue after the end (not rendered)."""
        self._setup()
        self._last_xy = (self.ego.state.x, self.ego.state.y)
        agents = self._read_agents()
        tail_left = tail_steps
        sim_dt = 1.0 / self.config.sim_hz
        final_seen = False
        try:
            while True:
                # the first frame observed after the end is the last real frame (it carries the
                # status event and the last instruction's end flag); later ones are the tail
                tail = final_seen
                if self.status != "running":
                    final_seen = True
                state, boxes = self._observe(agents)
                st = self.ego.state
                self.poses.append((st.x, st.y, st.yaw))
                images = {}
                if self.config.render and not tail:
                    images = self.renderer.render((st.x, st.y, st.yaw), boxes,
                                                  self.world.tls_states())
                control = self.agent.act(state, images)
                yield state, images, tail
                if tail:
                    if tail_left <= 0:
                        break
                    tail_left -= 1
                self.steps += 1
                if (self.status == "running" and self.config.max_steps is not None
                        and self.steps >= self.config.max_steps):
                    self._finish("max_steps")
                for _ in range(self.substeps):
                    prev_front = self.ego.front_bumper()
                    self.ego.step(control, sim_dt)
                    self._push_ego()
                    self.world.step()
                    agents = self._read_agents()
                    self._check_events(prev_front, agents)
        finally:
            if self._result is None and hasattr(self, "_t0"):
                self._result = self._score()

    def run(self) -> Iterator[tuple[SceneState, dict]]:
        """Online: yields every model step; the last one carries the status event."""
        try:
            for state, images, tail in self._loop(0):
                yield state, images
        finally:
            self.close()

    def frames(self) -> Iterator[tuple[SceneState, dict]]:
        """Like run(), but each frame is held back until its future is known: state.waypoints =
        the ego's actual poses at +dt .. +K*dt (base_link of that frame)."""
        K, wdt = self.config.waypoints, self.config.waypoint_dt
        lag = int(round(wdt * self.config.model_hz))
        horizon = K * lag
        buf: deque = deque()
        poses: list[tuple[float, float, float]] = []
        try:
            for state, images, tail in self._loop(horizon):
                poses.append((state.x, state.y, state.yaw))
                if not tail:
                    buf.append((len(poses) - 1, state, images))
                while buf and buf[0][0] + horizon < len(poses):
                    i, s0, im = buf.popleft()
                    s0.waypoints = future_waypoints(poses, i, lag, K)
                    yield s0, im
            while buf:  # ended without a full tail (should not happen): hold the last pose
                i, s0, im = buf.popleft()
                s0.waypoints = future_waypoints(poses, i, lag, K)
                yield s0, im
        finally:
            self.close()

    __iter__ = frames


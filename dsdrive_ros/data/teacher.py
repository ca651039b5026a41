"""Teachers: the chain of thought a student model learns to write (DSDrive's distillation target).

A teacher turns one simulator step (privileged `SceneState` + camera images) into a short
natural-language chain of thought in the paper's four parts, each on a labelled clause:

    Scene: <scene comprehension: road type, junction, light, traffic density, ego speed>.
    Objects: <key objects: what, where (ahead/left/right/behind), distance in m; 1-3 of them>.
    Plan: <the driving action: stop / slow down / go / turn left / turn right>.
    Reason: <a short explanation>.

The text never contains the waypoints: the training code appends them through
`dsdrive_ros.model.reasoning_format.format_reasoning(teacher_text, waypoints)`.

`ScriptedTeacher` writes this from privileged state with seeded paraphrase templates. It never
contradicts the expert: the plan clause always states `SceneState.action`, which
`actions.action_from_text` recovers (the test checks this on thousands of random states).
`VLMTeacher` (in `vlm_teacher.py`) asks a real vision-language model the same questions.
"""
from __future__ import annotations

import math
import random
from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from dsdrive_ros.data.actions import ACTIONS
from dsdrive_ros.sim.scene import RoadUser, SceneState

SECTION_LABELS: tuple[str, ...] = ("Scene", "Objects", "Plan", "Reason")
LIGHT_VISIBLE_M = 80.0  # a traffic light farther than this is not mentioned


@runtime_checkable
class Teacher(Protocol):
    """Anything that explains one step. Returns the chain of thought WITHOUT waypoints."""

    def explain(self, state: SceneState, images: Mapping[str, np.ndarray]) -> str: ...


# --------------------------------------------------------------------------------------------
# Scripted teacher
# --------------------------------------------------------------------------------------------

def _where(rel_x: float, rel_y: float, rng: random.Random) -> str:
    ang = math.degrees(math.atan2(rel_y, rel_x))  # 0 ahead, +90 left
    a = abs(ang)
    side = "left" if ang > 0 else "right"
    if a <= 20:
        return rng.choice(("ahead", "in front", "straight ahead"))
    if a <= 70:
        return rng.choice((f"ahead on the {side}", f"front-{side}", f"ahead to the {side}"))
    if a <= 110:
        return rng.choice((f"on the {side}", f"to my {side}", f"on my {side}"))
    if a <= 160:
        return rng.choice((f"behind on the {side}", f"rear-{side}"))
    return rng.choice(("behind", "behind me", "to the rear"))


_KIND_WORDS = {
    "vehicle": ("car", "vehicle", "car"),
    "pedestrian": ("pedestrian", "person walking", "pedestrian"),
    "bicycle": ("cyclist", "bicycle", "cyclist"),
}


def _kind(agent: RoadUser, rng: random.Random) -> str:
    return rng.choice(_KIND_WORDS.get(agent.kind, (agent.kind,)))


def _dist(agent: RoadUser) -> float:
    return math.hypot(agent.rel_x, agent.rel_y)


def _in_path(agent: RoadUser, half_width: float = 2.2) -> bool:
    return agent.rel_x > 0.0 and abs(agent.rel_y) < half_width


def _fmt_m(d: float) -> str:
    return f"{max(1, int(round(d)))} m"


def _light_is_stop(state: SceneState, within: float) -> bool:
    lt = state.light
    return lt is not None and lt.state in ("red", "yellow") and lt.distance <= within


def _lead_agent(state: SceneState, within: float) -> RoadUser | None:
    cands = [a for a in state.agents if _in_path(a) and _dist(a) <= within]
    return min(cands, key=_dist) if cands else None


def _crossing_pedestrian(state: SceneState, within: float) -> RoadUser | None:
    cands = [
        a for a in state.agents
        if a.kind in ("pedestrian", "bicycle") and -1.0 < a.rel_x <= within and abs(a.rel_y) < 5.0
    ]
    return min(cands, key=_dist) if cands else None


def _key_objects(state: SceneState) -> list[tuple[float, str, object]]:
    """(relevance, kind, obj) for the light and agents, most relevant first."""
    items: list[tuple[float, str, object]] = []
    lt = state.light
    if lt is not None and lt.distance <= LIGHT_VISIBLE_M:
        score = (95.0 if lt.state in ("red", "yellow") else 55.0) - 0.3 * lt.distance
        items.append((score, "light", lt))
    for a in state.agents:
        d = _dist(a)
        if d > 45.0:
            continue
        if _in_path(a):
            score = 100.0 - d
        elif a.kind in ("pedestrian", "bicycle") and a.rel_x > -2.0 and abs(a.rel_y) < 6.0:
            score = 90.0 - d
        elif a.rel_x > 0.0:
            score = 50.0 - d
        else:
            score = 20.0 - d
        items.append((score, "agent", a))
    items.sort(key=lambda it: -it[0])
    return items


class ScriptedTeacher:
    """Writes the four-part chain of thought from privileged state with seeded paraphrases.

    The same (seed, state) always gives the same text, whatever order states are explained in.
    """

    def __init__(self, seed: int = 0, max_objects: int = 3):
        self.seed = int(seed)
        self.max_objects = max(1, int(max_objects))

    # -- public -------------------------------------------------------------------------------
    def explain(self, state: SceneState, images: Mapping[str, np.ndarray] | None = None) -> str:
        if state.action not in ACTIONS:
            raise ValueError(f"unknown action {state.action!r}; expected one of {ACTIONS}")
        rng = random.Random(
            f"{self.seed}|{state.step}|{state.t:.3f}|{state.instruction_id}|{state.x:.2f}|{state.y:.2f}"
        )
        parts = [
            "Scene: " + self._scene(state, rng) + ".",
            "Objects: " + self._objects(state, rng) + ".",
            "Plan: " + self._plan(state, rng) + ".",
            "Reason: " + self._reason(state, rng) + ".",
        ]
        return " ".join(parts)

    # -- parts --------------------------------------------------------------------------------
    def _scene(self, s: SceneState, rng: random.Random) -> str:
        if s.speed_limit <= 9.0:
            road = rng.choice(("a narrow urban street", "a residential street", "a quiet side street"))
        elif s.speed_limit <= 14.5:
            road = rng.choice(("an urban road", "a city street", "a two-way town road"))
        else:
            road = rng.choice(("a main road", "an arterial road", "a wide multi-lane road"))
        if s.is_junction:
            junction = rng.choice(("inside an intersection", "in the middle of a junction"))
        elif s.junction_distance is not None and s.junction_distance <= 60.0:
            jd = _fmt_m(s.junction_distance)
            junction = rng.choice((f"with a junction {jd} ahead", f"approaching an intersection {jd} ahead"))
        else:
            junction = rng.choice(("on a straight section", "with no junction close by"))
        lt = s.light
        if lt is None or lt.distance > LIGHT_VISIBLE_M:
            light = rng.choice(("no traffic light ahead", "no signal in view"))
        else:
            light = rng.choice((
                f"the traffic light ahead is {lt.state}",
                f"a {lt.state} light {_fmt_m(lt.distance)} ahead",
                f"the signal {_fmt_m(lt.distance)} ahead shows {lt.state}",
            ))
        n = sum(1 for a in s.agents if _dist(a) <= 50.0)
        if n == 0:
            density = rng.choice(("no other road users nearby", "the road is empty"))
        elif n <= 3:
            density = rng.choice(("light traffic", "few road users around"))
        elif n <= 9:
            density = rng.choice(("moderate traffic", "some traffic around"))
        else:
            density = rng.choice(("heavy traffic", "busy traffic all around"))
        kmh = s.speed * 3.6
        if kmh < 1.0:
            ego = rng.choice(("I am standing still", "the ego is stationary"))
        else:
            ego = rng.choice((f"I am driving at {kmh:.0f} km/h", f"ego speed {kmh:.0f} km/h"))
        return f"{road}, {junction}, {light}, {density}; {ego}"

    def _objects(self, s: SceneState, rng: random.Random) -> str:
        items = _key_objects(s)[: self.max_objects]
        if not items:
            return rng.choice(("nothing relevant nearby", "no relevant objects around", "the way is free of objects"))
        phrases = []
        for _, kind, obj in items:
            if kind == "light":
                lt = obj  # type: ignore[assignment]
                phrases.append(rng.choice((
                    f"a {lt.state} traffic light {_fmt_m(lt.distance)} ahead",  # type: ignore[attr-defined]
                    f"the {lt.state} signal {_fmt_m(lt.distance)} ahead",  # type: ignore[attr-defined]
                )))
            else:
                a: RoadUser = obj  # type: ignore[assignment]
                still = "stationary " if a.speed < 0.3 else ""
                phrases.append(f"a {still}{_kind(a, rng)} {_fmt_m(_dist(a))} {_where(a.rel_x, a.rel_y, rng)}")
        if len(phrases) == 1:
            return phrases[0]
        return ", ".join(phrases[:-1]) + " and " + phrases[-1]

    def _plan(self, s: SceneState, rng: random.Random) -> str:
        a = s.action
        if a == "stop":
            return rng.choice(("stop and wait", "come to a stop", "stop here", "stop and hold position"))
        if a == "slow":
            return rng.choice(("slow down", "reduce speed", "slow down gently", "ease off and slow down"))
        if a == "turn left":
            return rng.choice(("turn left", "make a left turn", "take the left turn", "turn left through the junction"))
        if a == "turn right":
            return rng.choice(("turn right", "make a right turn", "take the right turn", "turn right through the junction"))
        # go
        if s.maneuver == "straight":
            return rng.choice(("go straight", "go straight through the junction", "proceed straight ahead"))
        return rng.choice(("go", "keep going", "proceed", "drive on", "keep following the lane"))

    def _reason(self, s: SceneState, rng: random.Random) -> str:
        a = s.action
        lt = s.light
        if a == "stop":
            if _light_is_stop(s, 40.0):
                return rng.choice((
                    f"the light ahead is {lt.state}, so I must wait at the line",  # type: ignore[union-attr]
                    f"the signal is {lt.state} and the stop line is close",  # type: ignore[union-attr]
                ))
            lead = _lead_agent(s, 15.0)
            if lead is not None:
                return rng.choice((
                    f"a {_kind(lead, rng)} is only {_fmt_m(_dist(lead))} ahead in my lane",
                    f"the {_kind(lead, rng)} ahead blocks my lane",
                ))
            ped = _crossing_pedestrian(s, 15.0)
            if ped is not None:
                return rng.choice((
                    f"a {_kind(ped, rng)} is close to my path",
                    f"I must yield to the {_kind(ped, rng)} near the road",
                ))
            if s.route_progress >= 0.98:
                return rng.choice(("the route ends here", "I have reached the destination"))
            return rng.choice((
                "I must yield to traffic before moving on",
                "safety first, the way is not clear yet",
            ))
        if a == "slow":
            if _light_is_stop(s, 80.0):
                return rng.choice((
                    f"the light ahead is {lt.state}",  # type: ignore[union-attr]
                    f"a {lt.state} light is coming up",  # type: ignore[union-attr]
                ))
            lead = _lead_agent(s, 30.0)
            if lead is not None:
                return rng.choice((
                    f"a {_kind(lead, rng)} is {_fmt_m(_dist(lead))} ahead and I keep a safe gap",
                    f"I keep a safe distance to the {_kind(lead, rng)} in front",
                ))
            ped = _crossing_pedestrian(s, 25.0)
            if ped is not None:
                return f"a {_kind(ped, rng)} is near my path"
            if s.maneuver in ("left", "right") and (s.is_junction or (s.junction_distance or 1e9) <= 40.0):
                return rng.choice((
                    f"the {s.maneuver} turn at the junction needs a lower speed",
                    f"I prepare for the {s.maneuver} turn ahead",
                ))
            if s.is_junction or (s.junction_distance is not None and s.junction_distance <= 40.0):
                return rng.choice(("the junction ahead needs care", "I approach the intersection carefully"))
            if s.speed > s.speed_limit:
                return rng.choice(("I am above the speed limit", "my speed is over the limit"))
            return rng.choice(("traffic ahead calls for caution", "a calmer speed is safer here"))
        if a in ("turn left", "turn right"):
            side = a.split()[1]
            if s.light is not None and s.light.state == "green" and s.light.distance <= 40.0:
                return rng.choice((
                    f"the route goes {side} here and the light is green",
                    f"the instruction asks for a {side} turn and the signal is green",
                ))
            return rng.choice((
                f"the route goes {side} at this junction and the way is clear",
                f"the instruction asks for a {side} turn here",
                f"my route continues to the {side}",
            ))
        # go
        if lt is not None and lt.state == "green" and lt.distance <= 60.0:
            return rng.choice(("the light is green and my path is clear", "the signal is green"))
        if lt is not None and lt.state in ("red", "yellow") and 40.0 < lt.distance <= LIGHT_VISIBLE_M:
            return rng.choice((
                f"the {lt.state} light is still far away",
                f"the {lt.state} signal is {_fmt_m(lt.distance)} away, no need to brake yet",
            ))
        lead = _lead_agent(s, 40.0)
        if lead is not None:
            return rng.choice((
                f"the {_kind(lead, rng)} ahead keeps a safe distance",
                f"the gap to the {_kind(lead, rng)} in front is large enough",
            ))
        if s.maneuver == "straight":
            return rng.choice(("the route continues straight and the way is clear", "the instruction says straight on"))
        if s.speed < s.speed_limit - 1.0:
            return rng.choice((
                f"the lane is clear and I can reach {s.speed_limit * 3.6:.0f} km/h",
                "my lane is clear",
            ))
        return rng.choice(("the lane ahead is clear", "no obstacle is in my path", "the road ahead is free"))

"""ScriptedTeacher: four parts, consistent with the expert's action, varied, short; action_from_text."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from dsdrive_ros.sim.scene import RoadUser, SceneState, TrafficLightAhead
from dsdrive_ros.data.actions import ACTIONS, action_from_text, plan_segment
from dsdrive_ros.data.teacher import ScriptedTeacher, Teacher


def make_state(action="go", agents=(), light=None, maneuver="follow", speed=8.0, step=0, **kw) -> SceneState:
    base = dict(step=step, t=step * 0.1, x=10.0, y=-5.0, yaw=0.3, speed=speed, speed_limit=13.9,
                instruction="Follow the road.", instruction_id=0, maneuver=maneuver, end=False,
                route_progress=0.3, waypoints=[[4.0 * (k + 1), 0.0] for k in range(5)], action=action,
                agents=list(agents), light=light, junction_distance=None, is_junction=False)
    base.update(kw)
    return SceneState(**base)


def agent(rel_x, rel_y, kind="vehicle", speed=5.0, id="a"):
    return RoadUser(id=id, kind=kind, x=0.0, y=0.0, yaw=0.0, length=4.5, width=1.8, speed=speed, rel_x=rel_x, rel_y=rel_y)


def random_state(rng: np.random.Generator, step: int) -> SceneState:
    agents = []
    for i in range(int(rng.integers(0, 12))):
        agents.append(RoadUser(id=f"v{i}", kind=str(rng.choice(["vehicle", "vehicle", "pedestrian", "bicycle"])),
                               x=0.0, y=0.0, yaw=0.0, length=4.0, width=1.8, speed=float(rng.uniform(0, 12)),
                               rel_x=float(rng.uniform(-50, 60)), rel_y=float(rng.uniform(-30, 30))))
    light = None
    if rng.random() < 0.6:
        light = TrafficLightAhead(state=str(rng.choice(["red", "yellow", "green"])), distance=float(rng.uniform(1, 120)))
    jd = float(rng.uniform(0, 120)) if rng.random() < 0.7 else None
    return make_state(
        action=str(rng.choice(ACTIONS)), agents=agents, light=light,
        maneuver=str(rng.choice(["follow", "straight", "left", "right"])), speed=float(rng.uniform(0, 16)),
        step=step, junction_distance=jd, is_junction=bool(rng.random() < 0.15),
        speed_limit=float(rng.choice([8.3, 13.9, 19.4])), route_progress=float(rng.uniform(0, 1)),
        x=float(rng.uniform(-500, 500)), y=float(rng.uniform(-500, 500)),
    )


def test_is_a_teacher():
    assert isinstance(ScriptedTeacher(0), Teacher)


def test_plan_always_states_the_expert_action_and_text_is_short():
    rng = np.random.default_rng(7)
    teacher = ScriptedTeacher(seed=3)
    counts = {a: 0 for a in ACTIONS}
    for step in range(2000):
        s = random_state(rng, step)
        text = teacher.explain(s, {})
        assert action_from_text(text) == s.action, text
        # the four parts, in order
        idx = [text.find(f"{label}:") for label in ("Scene", "Objects", "Plan", "Reason")]
        assert all(i >= 0 for i in idx) and idx == sorted(idx), text
        n_words = len(text.split())
        assert 25 <= n_words <= 90, (n_words, text)
        # no waypoints/coordinates in the chain of thought
        assert "[" not in text and "waypoint" not in text.lower()
        counts[s.action] += 1
    assert min(counts.values()) > 300


def test_deterministic_per_state_and_seed_and_varied():
    rng = np.random.default_rng(1)
    states = [random_state(rng, i) for i in range(200)]
    a, b = ScriptedTeacher(5), ScriptedTeacher(5)
    # order does not matter
    texts_a = [a.explain(s, {}) for s in states]
    texts_b = [b.explain(s, {}) for s in reversed(states)][::-1]
    assert texts_a == texts_b
    other = [ScriptedTeacher(6).explain(s, {}) for s in states]
    assert sum(x != y for x, y in zip(texts_a, other)) > 100
    # several paraphrases per action in the plan slot
    plans: dict[str, set[str]] = {}
    for s, t in zip(states, texts_a):
        plans.setdefault(s.action, set()).add(plan_segment(t).strip())
    for action, phrases in plans.items():
        assert len(phrases) >= 3, (action, phrases)


def test_key_objects_direction_and_distance():
    teacher = ScriptedTeacher(0)
    s = make_state(agents=[agent(12.0, 0.3)])
    text = teacher.explain(s, {})
    obj = re.search(r"Objects: (.*?)\. Plan:", text).group(1)
    assert "12 m" in obj and re.search(r"ahead|in front", obj), obj

    for rel, words in [((0.5, 9.0), ("left",)), ((0.5, -9.0), ("right",)), ((-15.0, 0.2), ("behind", "rear")),
                       ((10.0, 10.0), ("left",))]:
        text = teacher.explain(make_state(agents=[agent(*rel, kind="pedestrian")]), {})
        obj = re.search(r"Objects: (.*?)\. Plan:", text).group(1)
        d = f"{round(math.hypot(*rel))} m"
        assert d in obj and any(w in obj for w in words), (rel, obj)
        assert "pedestrian" in obj or "person" in obj

    text = teacher.explain(make_state(), {})
    assert re.search(r"Objects: (nothing|no relevant|the way is free)", text), text


def test_at_most_three_objects_most_relevant_first():
    agents = [agent(40.0, 20.0, id="far"), agent(8.0, 0.0, id="lead"), agent(-30.0, 0.0, id="behind"),
              agent(20.0, -15.0, id="side"), agent(5.0, 15.0, id="x")]
    s = make_state(agents=agents, light=TrafficLightAhead("red", 25.0), action="stop")
    text = ScriptedTeacher(0).explain(s, {})
    obj = re.search(r"Objects: (.*?)\. Plan:", text).group(1)
    assert len(re.findall(r"\d+ m", obj)) == 3, obj
    assert obj.startswith("a ") and "8 m" in obj.split(",")[0], obj  # the car in my lane comes first
    assert "red" in obj


def test_reasons_match_the_cause():
    t = ScriptedTeacher(2)
    red = make_state(action="stop", light=TrafficLightAhead("red", 12.0), speed=3.0)
    reason = t.explain(red, {}).split("Reason:")[1]
    assert "red" in reason
    lead = make_state(action="stop", agents=[agent(6.0, 0.0, speed=0.0)], speed=1.0)
    reason = t.explain(lead, {}).split("Reason:")[1]
    assert "ahead" in reason or "blocks" in reason
    green = make_state(action="go", light=TrafficLightAhead("green", 30.0))
    assert "green" in t.explain(green, {}).split("Reason:")[1]
    left = make_state(action="turn left", maneuver="left", is_junction=True)
    assert "left" in t.explain(left, {}).split("Reason:")[1]
    # scene comprehension mentions the light state and distance
    scene = t.explain(make_state(light=TrafficLightAhead("yellow", 33.0)), {}).split("Objects:")[0]
    assert "yellow" in scene


def test_far_light_is_never_mentioned():
    t = ScriptedTeacher(0)
    for step in range(200):
        for action in ACTIONS:
            text = t.explain(make_state(action=action, step=step, light=TrafficLightAhead("red", 95.0)), {})
            assert not re.search(r"\bred\b", text) and "light ahead" not in text.replace("no traffic light ahead", ""), text


def test_unknown_action_rejected():
    with pytest.raises(ValueError):
        ScriptedTeacher(0).explain(make_state(action="reverse"), {})


@pytest.mark.parametrize("text,expected", [
    ("Scene: busy road. Objects: a car 5 m ahead. Plan: stop and wait. Reason: the light is red.", "stop"),
    ("Plan: slow down. Reason: no need to stop yet.", "slow"),
    ("Plan: Turn left. Reason: instruction.", "turn left"),
    ("Plan: make a right turn at the junction.", "turn right"),
    ("Plan: keep going. Reason: the road is clear, so there is no reason to stop or slow down.", "go"),
    ("There is no need to stop; I will keep going.", "go"),
    ("The car should not turn left. It will proceed straight.", "go"),
    ("The light is red. I will come to a full stop before the line.", "stop"),
    ("I should reduce speed because a pedestrian is near.", "slow"),
    ("The best action is to take a left at the intersection.", "turn left"),
    ("<think>Scene: x. Plan: go straight. Reason: green.</think><answer>[[1,0]]</answer>", "go"),
    ("The sky is blue.", None),
    ("", None),
])
def test_action_from_text(text, expected):
    assert action_from_text(text) == expected

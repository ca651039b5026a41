"""Instruction segmentation and route tracking on hand-made routes (no SUMO)."""
import random

import numpy as np

from dsdrive_ros.sim.routes import (TEMPLATES, JunctionPass, Route, RouteTracker,
                                    segment_instructions)


def _junctions():
    return [
        JunctionPass("J1", 100.0, 115.0, "l", "left", True),
        JunctionPass("J2", 140.0, 150.0, "s", "follow", False),  # a bend: no choice -> follow
        JunctionPass("J3", 170.0, 185.0, "r", "right", True),
        JunctionPass("J4", 300.0, 312.0, "s", "straight", True),
    ]


def test_segmentation_hand_made_route():
    ins = segment_instructions(_junctions(), 400.0, random.Random(0), announce_m=40.0,
                               min_follow_m=25.0)
    got = [(i.maneuver, round(i.s_start), round(i.s_end), i.junction) for i in ins]
    assert got == [
        ("follow", 0, 60, None),  # long lead-in
        ("left", 60, 115, "J1"),  # announced 40 m before, ends where the route leaves J1
        ("right", 115, 185, "J3"),  # J3 entry - 40 < J1 exit: no follow gap, starts at J1's exit
        ("follow", 185, 260, None),
        ("straight", 260, 312, "J4"),
        ("follow", 312, 400, None),  # to the destination
    ]
    assert [i.id for i in ins] == list(range(len(ins)))
    for i in ins:
        assert i.text in TEMPLATES[i.maneuver]
        assert i.template.startswith(i.maneuver + "/")
    # contiguous cover of the route
    assert all(a.s_end == b.s_start for a, b in zip(ins, ins[1:]))


def test_manoeuvre_is_announced_before_its_lane_change():
    """A lane change 70 m before J4 (more than announce_m) is covered by J4's instruction, with a
    lead; the follow stretch before it shrinks. Without a lane change nothing moves."""
    js = _junctions()
    js[3].lane_change_s = 230.0
    ins = segment_instructions(js, 400.0, random.Random(0), announce_m=40.0, min_follow_m=25.0,
                               lane_change_lead_m=10.0)
    got = [(i.maneuver, round(i.s_start), round(i.s_end)) for i in ins]
    assert got[3:5] == [("follow", 185, 220), ("straight", 220, 312)]
    # a lane change closer than announce_m changes nothing
    js[3].lane_change_s = 280.0
    ins = segment_instructions(js, 400.0, random.Random(0), announce_m=40.0)
    assert [(i.maneuver, round(i.s_start)) for i in ins][4] == ("straight", 260)
    # never before the previous instruction's end
    js[3].lane_change_s = 150.0
    ins = segment_instructions(js, 400.0, random.Random(0), announce_m=40.0)
    assert [(i.maneuver, round(i.s_start)) for i in ins][3] == ("straight", 185)


def test_segmentation_short_tail_joins_last():
    ins = segment_instructions([JunctionPass("J", 50.0, 60.0, "r", "right", True)], 70.0,
                               random.Random(1))
    assert [i.maneuver for i in ins] == ["follow", "right"] or [i.maneuver for i in ins] == ["right"]
    assert ins[-1].s_end == 70.0


def test_segmentation_no_junction():
    ins = segment_instructions([], 120.0, random.Random(0))
    assert len(ins) == 1 and ins[0].maneuver == "follow" and ins[0].s_end == 120.0


def test_paraphrase_choice_is_seeded():
    a = segment_instructions(_junctions(), 400.0, random.Random(7))
    b = segment_instructions(_junctions(), 400.0, random.Random(7))
    assert [i.text for i in a] == [i.text for i in b]
    texts = set()
    for seed in range(30):
        texts.add(segment_instructions(_junctions(), 400.0, random.Random(seed))[1].text)
    assert len(texts) > 2  # several paraphrases in use


def _l_route():
    """20 m east, then 20 m north, 1 m spacing."""
    a = np.stack([np.arange(0.0, 21.0), np.zeros(21)], 1)
    b = np.stack([np.full(20, 20.0), np.arange(1.0, 21.0)], 1)
    P = np.vstack([a, b])
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(P, axis=0).T))])
    n = len(P)
    return Route(["e"], ["e_0"], P, s, np.full(n, 3.2), np.full(n, 13.9), np.zeros(n, bool), [],
                 segment_instructions([], float(s[-1]), random.Random(0)))


def test_tracker_projection_and_monotonic_window():
    r = _l_route()
    t = RouteTracker(r)
    s, d = t.update(5.0, 0.5)
    assert abs(s - 5.0) < 1e-9 and abs(d - 0.5) < 1e-9
    s, d = t.update(20.5, 8.0)
    assert abs(s - 28.0) < 1e-9 and abs(d - 0.5) < 1e-9
    x, y, yaw = r.point_at(30.0)
    assert (x, y) == (20.0, 10.0) and abs(yaw - np.pi / 2) < 1e-9
    assert r.instruction_at(10.0).maneuver == "follow"

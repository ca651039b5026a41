"""LangAuto scoring arithmetic on hand-made cases."""
import math

import pytest

from dsdrive_ros.eval import score


def test_clean_route_scores_100():
    r = score.score_route(500.0, 500.0, [])
    assert r["RC"] == 100.0 and r["IS"] == 1.0 and r["DS"] == 100.0


def test_penalties_multiply():
    r = score.score_route(400.0, 400.0, ["collision_vehicle", "red_light"])
    assert math.isclose(r["IS"], 0.60 * 0.70)
    assert math.isclose(r["DS"], 100.0 * 0.42)
    assert r["infractions"] == {"collision_vehicle": 1, "red_light": 1}


def test_each_penalty_value():
    assert score.infraction_score(["collision_pedestrian"]) == 0.50
    assert score.infraction_score(["collision_vehicle"]) == 0.60
    assert score.infraction_score(["collision_static"]) == 0.65
    assert score.infraction_score(["red_light"]) == 0.70
    assert score.infraction_score(["stop_sign"]) == 0.80
    assert math.isclose(score.infraction_score({"collision_vehicle": 2}), 0.36)


def test_partial_route_and_off_route():
    # drove 300 of 600 m, 60 m of it off the route: RC 50, IS 0.9 (x 0.5 pedestrian)
    r = score.score_route(600.0, 300.0, ["collision_pedestrian"], off_route_m=60.0)
    assert math.isclose(r["RC"], 50.0)
    assert math.isclose(r["off_route_share"], 0.1)
    assert math.isclose(r["IS"], 0.5 * 0.9)
    assert math.isclose(r["DS"], 50.0 * 0.45)


def test_clipping():
    assert score.route_completion(700.0, 600.0) == 100.0
    assert score.route_completion(-5.0, 600.0) == 0.0
    assert score.route_completion(10.0, 0.0) == 0.0
    assert score.infraction_score([], off_route=1.5) == 0.0


def test_unknown_infraction_raises():
    with pytest.raises(KeyError):
        score.infraction_score(["speeding"])


def test_aggregate_means_per_route_ds():
    a = score.score_route(100.0, 100.0, [])  # DS 100
    b = score.score_route(100.0, 50.0, ["red_light"])  # RC 50, IS .7, DS 35
    m = score.aggregate([a, b])
    assert math.isclose(m["DS"], 67.5)
    assert math.isclose(m["RC"], 75.0)
    assert math.isclose(m["IS"], 0.85)
    assert m["routes"] == 2 and m["infractions"] == {"red_light": 1}
    assert score.aggregate([])["DS"] == 0.0

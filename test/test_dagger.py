"""DAgger collection: the model drives in-process, the expert labels every frame (needs libsumo)."""
import pytest
from types import SimpleNamespace

pytest.importorskip("libsumo")

from dsdrive_ros.data.dagger import DaggerPolicy, DaggerEpisode, ModelPolicy  # noqa: E402
from dsdrive_ros.data.dataset import DatasetReader, DatasetWriter  # noqa: E402
from dsdrive_ros.data.build_dataset import write_episode  # noqa: E402
from dsdrive_ros.data.actions import action_from_text
from dsdrive_ros.data.teacher import ScriptedTeacher  # noqa: E402

STEPS = 30


@pytest.fixture(scope="module")
def model(model_dir):
    return ModelPolicy(model_dir)


def _drive(model, beta, seed=5):
    agent = DaggerPolicy(model, beta=beta, segment_s=1.0, seed=seed)
    ep = DaggerEpisode("grid3", seed, STEPS, agent)
    labels = []
    try:
        for state, images in ep:
            assert sorted(images) == sorted(model.spec.cameras)
            assert state.waypoints == state.planned_waypoints and len(state.waypoints) == model.count
            labels.append(state.waypoints)
    finally:
        ep.close()
    return agent, labels


@pytest.mark.timeout(300)
def test_expert_only_is_labelled_with_its_plan_and_the_model_runs_every_step(model):
    agent, labels = _drive(model, beta=1.0)
    assert agent.counts["expert"] == STEPS + 1 and agent.counts["model"] == 0
    assert model.stats["steps"] == STEPS + 1  # the model saw every frame (its history stays whole)
    assert 0 <= model.stats["end_resets"] <= STEPS + 1  # counted per drive, not over the session
    assert labels[0][-1][0] > 2.0  # from rest the expert's plan drives off


@pytest.mark.timeout(300)
def test_model_drives_and_frames_land_in_a_dataset(model, tmp_path):
    agent = DaggerPolicy(model, beta=0.0, segment_s=1.0, seed=5)
    ep = DaggerEpisode("grid3", 5, STEPS, agent)
    try:
        n = write_episode(DatasetWriter(tmp_path), "grid3-5", "grid3", 5, ep, ScriptedTeacher(0))
    finally:
        ep.close()
    # beta 0: only take-overs give the expert the wheel
    assert agent.counts["model"] + agent.counts["expert"] == STEPS + 1
    assert agent.counts["expert"] <= agent.counts["takeover"] * 10
    (episode,) = DatasetReader(tmp_path).episodes()
    assert len(episode) == n > 0
    assert episode.meta["dagger"] == agent.counts
    rec = episode.record(0)
    assert action_from_text(rec["teacher"]) == rec["action"]


def _ready(agent: DaggerPolicy) -> None:
    """The state DaggerPolicy.reset leaves, without an episode for the expert and the model."""
    agent.dt, agent.driver, agent.left, agent.stood = 0.1, "model", 0.0, 0.0
    agent.counts = dict.fromkeys(DaggerPolicy.COUNTS, 0)


@pytest.mark.parametrize("off_route_m, takes_over", [(1.0, True), (2.5, False)])
def test_expert_takes_over_at_the_lateral_error_given(model, off_route_m, takes_over):
    agent = DaggerPolicy(model, beta=0.0, off_route_m=off_route_m)
    _ready(agent)
    # the expert's plan starts 1.5 m to the side: the car is 1.5 m off its route
    state = SimpleNamespace(planned_waypoints=[[2.0, 1.5], [4.0, 1.2]], speed=5.0)
    agent._choose(state)
    assert (agent.driver == "expert") == takes_over
    assert agent.counts["takeover"] == agent.counts["takeover_off_route"] == int(takes_over)
    assert agent.counts["takeover_stuck"] == 0


def test_a_take_over_after_standing_is_counted_as_stuck(model):
    agent = DaggerPolicy(model, beta=0.0, stuck_s=0.3, segment_s=0.1)
    _ready(agent)
    # on the route, standing, while the expert's plan drives off
    state = SimpleNamespace(planned_waypoints=[[1.0, 0.0], [3.0, 0.0]], speed=0.0)
    drivers = []
    for _ in range(5):
        agent._choose(state)
        drivers.append(agent.driver)
    assert drivers[:2] == ["model", "model"] and "expert" in drivers[2:]
    assert agent.counts["takeover_stuck"] == agent.counts["takeover"] >= 1
    assert agent.counts["takeover_off_route"] == 0

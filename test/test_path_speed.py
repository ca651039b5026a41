"""The disentangled planning heads (head_layout "path_speed"): rebuild, labels, loss, export."""
import json

import numpy as np
import pytest
import torch

from dsdrive_ros.model.config import preset
from dsdrive_ros.model.dsdrive import DSDrive, init_weights
from dsdrive_ros.train.data import EpisodeTrack, labelled_by_plans, plan_labels
from test_model import check_plan_shapes, plan_inputs


def _model(**kw):
    return init_weights(DSDrive(preset("tiny", head_layout="path_speed", **kw))).eval()


def _one_hot(cfg, speed):
    p = torch.zeros(1, len(cfg.speed_bins))
    p[0, cfg.speed_bins.index(speed)] = 1.0
    return p


def _straight(cfg):
    d = torch.arange(1, cfg.path_points + 1, dtype=torch.float32) * cfg.path_spacing_m
    return torch.stack([d, torch.zeros_like(d)], -1)[None]


def test_rebuild_cruise_stop_and_ramp():
    m = _model()
    cfg = m.cfg
    path = _straight(cfg)
    t = torch.arange(1, cfg.n_waypoints + 1) * cfg.waypoint_dt
    # cruising at the target speed: evenly spaced points, past the path's end too (36 m < 10 * 2.5 s)
    wp = m.rebuild_waypoints(path, _one_hot(cfg, 10.0), torch.tensor([[10.0]]))
    assert torch.allclose(wp[0, :, 0], 10.0 * t, atol=1e-4) and wp[0, :, 1].abs().max() < 1e-5
    # standing, stop class: no motion at all (the creep an L1 head averages into is gone)
    wp = m.rebuild_waypoints(path, _one_hot(cfg, 0.0), torch.tensor([[0.0]]))
    assert wp.abs().max() < 1e-6
    # stop class likely but not certain, above brake_threshold: brakes from 8 m/s at decel_mps2
    probs = torch.tensor([[0.6, 0, 0, 0, 0.4, 0]])
    wp = m.rebuild_waypoints(path, probs, torch.tensor([[8.0]]))
    stop_dist = 8.0 ** 2 / (2 * cfg.decel_mps2)
    assert wp[0, -1, 0] == pytest.approx(stop_dist, abs=1e-4)
    assert (torch.diff(wp[0, :, 0]) >= -1e-6).all()
    # below the threshold: the expected speed (0.4 * 10 = 4 m/s), reached from 0 at accel_mps2
    probs = torch.tensor([[0.4, 0, 0, 0, 0.6, 0]])
    wp = m.rebuild_waypoints(path, probs, torch.tensor([[0.0]]))
    ramp = 6.0 / cfg.accel_mps2
    expect = torch.where(t < ramp, 0.5 * cfg.accel_mps2 * t ** 2, 0.5 * 6.0 * ramp + 6.0 * (t - ramp))
    assert torch.allclose(wp[0, :, 0], expect, atol=1e-4)


def test_rebuild_follows_a_bent_path():
    m = _model()
    cfg = m.cfg
    # a right-angle turn after 6 m: points beyond it lie on the new leg, at the right distances
    pts = [[3.0, 0.0], [6.0, 0.0]] + [[6.0, -3.0 * k] for k in range(1, cfg.path_points - 1)]
    wp = m.rebuild_waypoints(torch.tensor([pts]), _one_hot(cfg, 4.0), torch.tensor([[4.0]]))
    # 2 m per step: 2, 4, 6 along x, then 8 and 10 m driven = 2 and 4 m down the second leg
    assert torch.allclose(wp[0], torch.tensor([[2.0, 0], [4.0, 0], [6.0, 0], [6.0, -2.0], [6.0, -4.0]]),
                          atol=1e-4)


def _batch(cfg, b=2):
    """A random training batch of two clips; the second one's path is masked after 3 checkpoints."""
    batch = {k: v for k, v in plan_inputs(cfg, b).items() if k in ("instruction_ids", "instruction_mask", "speed")}
    batch.update(images=torch.randn(b, cfg.history_frames, cfg.n_cameras, 3, cfg.image_height, cfg.image_width),
                 frame_mask=torch.ones(b, cfg.history_frames, dtype=torch.bool),
                 history_speed=torch.rand(b, cfg.history_frames - 1) * 8,
                 waypoints=torch.randn(b, cfg.n_waypoints, 2), end=torch.tensor([0, 1]),
                 path=_straight(cfg).repeat(b, 1, 1),
                 speed_target=torch.nn.functional.one_hot(torch.tensor([0, 4]), len(cfg.speed_bins)).float(),
                 path_mask=torch.tensor([[True] * cfg.path_points, [True] * 3 + [False] * (cfg.path_points - 3)]))
    return batch


def test_shapes_loss_and_learning():
    torch.manual_seed(0)  # the random batch below: unseeded, the masked-checkpoint check failed 1 run in 4
    m = _model().train()
    cfg = m.cfg
    with torch.no_grad():
        out = check_plan_shapes(m.eval(), cfg, plan_inputs(cfg), 2)
    assert out["path"].shape == (2, cfg.path_points, 2)
    assert out["speed_probs"].shape == (2, len(cfg.speed_bins))
    m.train()
    batch = _batch(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        out = m(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else (out["loss_path"].item(), out["loss_speed"].item())
    assert out["loss_path"].item() < 0.5 * first[0] and out["loss_speed"].item() < 0.5 * first[1]
    # a masked checkpoint adds nothing to the loss
    batch["path"][1, 5:] += 100.0
    with torch.no_grad():
        assert m(batch)["loss_path"].item() == pytest.approx(out["loss_path"].item(), rel=0.2)


def test_mixed_precision_runs_the_trunk_in_bf16_and_the_heads_and_losses_in_fp32():
    torch.manual_seed(0)
    m = _model()
    batch = _batch(m.cfg)
    with torch.no_grad():
        ref = m(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = m(batch)
    assert mixed["reasoner_kv"].dtype == torch.bfloat16  # the trunk ran under autocast
    for k in ("path", "speed_logits", "waypoints", "loss_path", "loss_speed", "loss"):
        assert mixed[k].dtype == torch.float32, k
    for k in ("loss_path", "loss_speed", "loss_end"):
        assert mixed[k].item() == pytest.approx(ref[k].item(), rel=0.05), k


class _Ep:
    """Records of an episode: 10 Hz, accelerating straight east at 1 m/s² from rest after 1 s."""

    rate_hz = 10.0

    def __init__(self, n=60):
        self.recs = []
        x = 0.0
        for i in range(n):
            t = i / 10.0
            v = max(0.0, t - 1.0)
            self.recs.append({"pose": {"x": x, "y": 5.0, "yaw": 0.0}, "speed": v})
            x += v / 10.0

    def __len__(self):
        return len(self.recs)

    def record(self, i):
        return self.recs[i]


def test_labels_from_the_future_track():
    cfg = preset("tiny", head_layout="path_speed", path_points=4, path_spacing_m=2.0)
    track = EpisodeTrack(_Ep(), rate_hz=10.0)
    lab = track.labels(0, cfg)  # standing: speed in 1 s is 0 -> stop class; the track reaches 12.25 m
    assert lab.speed_class == 0
    assert np.allclose(lab.path, [[2, 0], [4, 0], [6, 0], [8, 0]], atol=1e-6) and lab.path_mask.all()
    lab = track.labels(40, cfg)  # at t = 4 s: 3 m/s now, 4 m/s in 1 s -> bin 4
    assert cfg.speed_bins[lab.speed_class] == 4.0 and lab.speed_target[2] == 1.0
    lab = track.labels(45, cfg)  # 4.5 m/s in 1 s: nearest bin 4; the CE target weighs 4 and 7 to 4.5
    assert cfg.speed_bins[lab.speed_class] == 4.0
    assert lab.speed_target[2:4].tolist() == pytest.approx([5 / 6, 1 / 6]) and lab.speed_target.sum() == 1.0
    assert float(lab.speed_target @ np.asarray(cfg.speed_bins)) == pytest.approx(4.5)
    lab = track.labels(50, cfg)  # near the end: 3.96 m of track left, only the first checkpoint
    assert lab.path_mask.tolist() == [True, False, False, False]


def test_labels_from_a_plan_match_the_track_an_expert_drove_and_not_a_standing_model():
    cfg = preset("tiny", head_layout="path_speed", path_points=4, path_spacing_m=2.0)
    ep = _Ep(n=80)
    track = EpisodeTrack(ep, rate_hz=10.0)
    for i in (0, 15, 45):  # an expert drive: its plan is its own future (5 points 0.5 s apart)
        plan = [[ep.recs[i + 5 * k]["pose"]["x"] - ep.recs[i]["pose"]["x"], 0.0] for k in range(1, 6)]
        by_plan, by_track = plan_labels(plan, cfg), track.labels(i, cfg)
        assert by_plan.speed_class == by_track.speed_class
        # the plan's speed is a mean over the 0.5 s step around 1 s, the track's the speed at 1 s
        assert np.allclose(by_plan.speed_target, by_track.speed_target, atol=0.06)
        assert (by_plan.path_mask <= by_track.path_mask).all()  # a 2.5 s plan reaches less far than the track
        assert np.allclose(by_plan.path[by_plan.path_mask], by_track.path[by_plan.path_mask], atol=1e-5)
    # DAgger: the model stood (its track goes nowhere) while the expert planned to drive off at 2 m/s²
    go = plan_labels([[t * t, 0.0] for t in (0.5, 1.0, 1.5, 2.0, 2.5)], cfg)
    assert cfg.speed_bins[go.speed_class] == 2.0 and go.path_mask.tolist() == [True, True, True, False]
    ep.meta = {"dagger": {"model": 40, "expert": 20, "takeover": 1}}
    assert labelled_by_plans(ep) and not labelled_by_plans(_Ep())


def test_export_keeps_one_waypoints_output(tmp_path):
    from dsdrive_ros.export.onnx_export import export_onnx
    from dsdrive_ros.model.tokenizer import DSDriveTokenizer

    m = _model()
    tok = DSDriveTokenizer.train(["go straight", "turn left at the junction"], vocab_size=300)
    report = export_onnx(m, tok, tmp_path)  # validates ONNX Runtime against PyTorch
    assert report["planner.waypoints"] < 1e-4
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["heads"]["layout"] == "path_speed"
    assert list(cfg["io"]["planner"]["outputs"]) == ["waypoints", "end_prob", "frame_tokens", "reasoner_kv"]


def test_fine_tune_swaps_the_heads_and_keeps_the_trunk():
    from dsdrive_ros.train.loop import load_trunk

    old = init_weights(DSDrive(preset("tiny")), seed=3)
    new = _model()
    assert load_trunk(new, old.state_dict()) == ["path_head", "speed_head"]
    for k, v in old.state_dict().items():
        if not k.startswith("waypoint_head"):
            assert torch.equal(new.state_dict()[k], v), k
    assert load_trunk(_model(), new.state_dict()) == []  # same layout: everything loads
    bad = dict(old.state_dict())
    bad["tok_emb.weight"] = bad["tok_emb.weight"][:10]
    with pytest.raises(RuntimeError):  # a trunk shape that differs: torch's size mismatch
        load_trunk(_model(), bad)
    del bad["tok_emb.weight"]
    with pytest.raises(ValueError, match="beyond its heads"):
        load_trunk(_model(), bad)


def test_the_node_drives_a_path_speed_model_with_the_focus_view(tmp_path):
    """The real node in closed loop: cameras (five, the focus view too) and head layout come from
    config.json; the simulator renders what the model reads."""
    pytest.importorskip("rclpy")
    pytest.importorskip("libsumo")
    from dsdrive_ros.eval.cli import main
    from dsdrive_ros.export.onnx_export import export_onnx
    from dsdrive_ros.model.tokenizer import DSDriveTokenizer

    cams = ["front", "left", "right", "rear", "front_focus"]
    m = _model(cameras=cams)
    export_onnx(m, DSDriveTokenizer.train(["follow the road", "turn left"], vocab_size=300), tmp_path / "m")
    assert main(["--agent", "model", "--model-dir", str(tmp_path / "m"), "--town", "grid3", "--routes", "1",
                 "--seed", "2", "--max-steps", "12", "--out", str(tmp_path / "eval"), "--no-plots",
                 "--no-progress", "--cache", str(tmp_path / "cache")]) == 0
    agent = json.loads((tmp_path / "eval" / "results.json").read_text())["routes"][0]["agent"]
    assert agent["plans"] >= 10 and agent["missed"] == 0


def test_waypoints_rebuilt_from_the_labels_keep_the_speed_driven():
    """Path + two-hot speed target through rebuild_waypoints give back the waypoints of a drive at a
    speed between two bins; the nearest bin alone (8.5 -> 7 m/s) ends metres short."""
    m = _model().eval()
    cfg = m.cfg
    v = 8.5
    wp_true = torch.tensor([[v * 0.5 * k, 0.0] for k in range(1, cfg.n_waypoints + 1)])
    lab = plan_labels(wp_true.numpy(), cfg)
    path, speed = torch.from_numpy(lab.path)[None], torch.tensor([[v]])
    two_hot = m.rebuild_waypoints(path, torch.from_numpy(lab.speed_target)[None], speed)[0]
    nearest = torch.nn.functional.one_hot(torch.tensor([lab.speed_class]), len(cfg.speed_bins)).float()
    one_hot = m.rebuild_waypoints(path, nearest, speed)[0]
    assert torch.allclose(two_hot, wp_true, atol=1e-3)
    assert (wp_true[-1, 0] - one_hot[-1, 0]).item() > 2.5


def test_open_loop_metrics_report_the_labels_own_error(tmp_path):
    """evaluate() rebuilds waypoints from the path and speed labels ("label_rebuild_ade_m"): the floor
    of the head layout's open-loop ADE. A drive at 8.5 m/s, between two speed bins, rebuilds exactly."""
    from dsdrive_ros.data.dataset import DatasetReader, DatasetWriter
    from dsdrive_ros.model.tokenizer import DSDriveTokenizer
    from dsdrive_ros.train.data import ClipDataset, corpus
    from dsdrive_ros.train.metrics import evaluate

    v, cams = 8.5, ["front", "left", "right", "rear"]
    with DatasetWriter(tmp_path).begin_episode("grid4_0", town="grid4", seed=0,
                                               meta={"cameras": cams, "rate_hz": 10}) as ep:
        for i in range(60):
            img = np.zeros((64, 96, 3), np.uint8)
            ep.add_frame({"t": i * 0.1, "pose": {"x": v * 0.1 * i, "y": 2.0, "yaw": 0.0}, "speed": v,
                          "instruction": "follow the lane", "instruction_id": 0, "end": 0, "action": "go",
                          "waypoints": [[v * 0.5 * k, 0.0] for k in range(1, 6)],
                          "teacher": "Scene: a road. Plan: go."}, {c: img for c in cams})
    episodes = list(DatasetReader(tmp_path).episodes())
    model = _model(image_height=64, image_width=96, history_frames=2, path_points=4)
    tokenizer = DSDriveTokenizer.train(corpus(episodes), vocab_size=model.cfg.vocab_size)
    ds = ClipDataset(episodes, model.cfg, tokenizer)
    # the first 3 s: the track still reaches every checkpoint and the speed 1 s ahead
    m = evaluate(model, torch.utils.data.Subset(ds, range(30)), tokenizer, max_frames=8, text_frames=0)
    assert m["label_rebuild_ade_m"] < 0.01

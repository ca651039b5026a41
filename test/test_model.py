"""The PyTorch network: shapes for both presets, the joint loss, and that it can learn."""
import pytest
import torch

from dsdrive_ros.model.config import DSDriveConfig, preset
from dsdrive_ros.model.dsdrive import DSDrive, init_weights


def plan_inputs(cfg, b=2, device="cpu"):
    hist = cfg.history_frames - 1
    return dict(
        images=torch.randn(b, cfg.n_cameras, 3, cfg.image_height, cfg.image_width, device=device),
        instruction_ids=torch.randint(0, cfg.vocab_size, (b, cfg.max_instruction_tokens), device=device),
        instruction_mask=torch.ones(b, cfg.max_instruction_tokens, dtype=torch.bool, device=device),
        history_tokens=torch.randn(b, hist, cfg.n_query, cfg.dim, device=device),
        history_mask=torch.ones(b, hist, dtype=torch.bool, device=device),
        speed=torch.zeros(b, 1, device=device),
    )


def check_plan_shapes(model, cfg, x, b):
    out = model.plan(**x)
    assert out["waypoints"].shape == (b, cfg.n_waypoints, 2)
    assert out["end_prob"].shape == (b,)
    assert out["frame_tokens"].shape == (b, cfg.n_query, cfg.dim)
    assert out["reasoner_kv"].shape == (cfg.reasoner_layers, 2, b, cfg.reasoner_kv_heads, cfg.n_query,
                                        cfg.reasoner_head_dim)
    assert all(v.dtype == torch.float32 for v in out.values())
    logits, present = model.reasoner.step(torch.zeros(b, 3, dtype=torch.long, device=x["images"].device),
                                          out["reasoner_kv"])
    assert logits.shape == (b, 3, cfg.vocab_size)
    assert present.shape[4] == cfg.n_query + 3
    return out


def test_tiny_shapes_and_values():
    cfg = preset("tiny")
    model = init_weights(DSDrive(cfg)).eval()
    assert 2e6 < model.num_params() < 10e6, "tiny must stay CPU-friendly (a few million parameters)"
    with torch.no_grad():
        out = check_plan_shapes(model, cfg, plan_inputs(cfg), 2)
    assert torch.isfinite(out["waypoints"]).all()
    assert ((out["end_prob"] >= 0) & (out["end_prob"] <= 1)).all()


def test_1b_shapes_on_meta_device():
    cfg = preset("1b")
    with torch.device("meta"):
        model = DSDrive(cfg)
        out = check_plan_shapes(model, cfg, plan_inputs(cfg, 1, "meta"), 1)
    # Llama-3.2-1B backbone dimensions
    assert (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim, cfg.vocab_size) == \
        (2048, 16, 32, 8, 8192, 128256)
    assert 1.0e9 < model.num_params() < 2.0e9
    assert out["waypoints"].device.type == "meta"


def test_padded_history_is_invisible():
    """Whatever sits in a masked history slot must not change the plan."""
    cfg = preset("tiny")
    model = init_weights(DSDrive(cfg)).eval()
    x = plan_inputs(cfg, 1)
    x["history_mask"][:] = False
    with torch.no_grad():
        a = model.plan(**x)["waypoints"]
        x["history_tokens"] = torch.randn_like(x["history_tokens"]) * 100
        b = model.plan(**x)["waypoints"]
    torch.testing.assert_close(a, b)


def test_config_roundtrip_and_errors():
    cfg = preset("tiny")
    assert DSDriveConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="n_heads % n_kv_heads"):
        preset("tiny", n_kv_heads=3)
    with pytest.raises(ValueError, match="unknown DSDriveConfig keys"):
        DSDriveConfig.from_dict({"dimm": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("7b")


def training_batch(cfg, b, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    hist = cfg.history_frames
    return dict(
        images=torch.randn(b, hist, cfg.n_cameras, 3, cfg.image_height, cfg.image_width, generator=g),
        frame_mask=torch.ones(b, hist, dtype=torch.bool),
        instruction_ids=torch.randint(8, cfg.vocab_size, (b, cfg.max_instruction_tokens), generator=g),
        instruction_mask=torch.ones(b, cfg.max_instruction_tokens, dtype=torch.bool),
        speed=torch.rand(b, 1, generator=g) * 8,
        history_speed=torch.rand(b, hist - 1, generator=g) * 8,
        waypoints=torch.randn(b, cfg.n_waypoints, 2, generator=g) * 5,
        end=torch.randint(0, 2, (b,), generator=g),
        reasoning_ids=torch.cat([torch.full((b, 1), cfg.bos_id), torch.randint(8, cfg.vocab_size, (b, t), generator=g)], 1),
    )


@torch.inference_mode()
def test_training_sees_the_history_the_runtime_builds():
    """The training pass over a clip plans what the runtime plans frame by frame: each frame's tokens
    enter the history ring encoded at that frame's own speed. (With every history frame encoded at
    the current speed, a start from rest read as "stand" at run time and the car never drove off.)"""
    cfg = preset("tiny", image_height=64, image_width=96, history_frames=3)
    model = init_weights(DSDrive(cfg)).eval()
    batch = training_batch(cfg, 1)
    speeds = torch.cat([batch["history_speed"], batch["speed"]], dim=1)[0]  # oldest first
    ring = torch.zeros(1, cfg.history_frames - 1, cfg.n_query, cfg.dim)
    ring_mask = torch.zeros(1, cfg.history_frames - 1, dtype=torch.bool)
    for f in range(cfg.history_frames):  # the runtime: one frame at a time, as PlannerSession.step
        out = model.plan(batch["images"][:, f], batch["instruction_ids"], batch["instruction_mask"],
                         ring, ring_mask, speeds[f].view(1, 1))
        ring = torch.cat([ring[:, 1:], out["frame_tokens"][:, None]], dim=1)
        ring_mask = torch.cat([ring_mask[:, 1:], torch.ones(1, 1, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(batch)["waypoints"], out["waypoints"], rtol=1e-4, atol=1e-4)


def test_history_without_gradients_plans_the_same_and_trains_only_through_the_current_frame():
    """history_grad=False (the CPU recipe): the same loss, but the earlier frames enter as the ring
    holds them, constants; only the current frame's pixels reach the encoder's gradient."""
    cfg = preset("tiny", image_height=64, image_width=96, history_frames=3)
    model = init_weights(DSDrive(cfg)).eval()
    batch = training_batch(cfg, 2)
    grads = {}
    for flag in (True, False):
        images = batch["images"].clone().requires_grad_(True)
        out = model({**batch, "images": images}, history_grad=flag)
        out["loss"].backward()
        grads[flag] = (out["loss"].detach(), images.grad.abs().flatten(2).sum(-1))  # (B, HIST)
    torch.testing.assert_close(grads[True][0], grads[False][0])
    assert (grads[True][1] > 0).all()
    assert (grads[False][1][:, :-1] == 0).all() and (grads[False][1][:, -1] > 0).all()


def test_joint_loss_parts():
    cfg = preset("tiny", image_height=64, image_width=96, history_frames=2)
    model = init_weights(DSDrive(cfg))
    out = model(training_batch(cfg, 2))
    expected = (cfg.lambda_waypoints * out["loss_waypoints"] + cfg.lambda_reasoning * out["loss_reasoning"]
                + cfg.lambda_end * out["loss_end"])
    torch.testing.assert_close(out["loss"], expected)
    no_reasoning = DSDrive(preset("tiny", image_height=64, image_width=96, history_frames=2, lambda_reasoning=0.0))
    assert "loss_reasoning" not in no_reasoning(training_batch(cfg, 2))


def test_lateral_weight_shifts_the_waypoint_loss_onto_y():
    cfg = preset("tiny", image_height=64, image_width=96, history_frames=2, lambda_reasoning=0.0, lambda_end=0.0)
    model = init_weights(DSDrive(cfg))
    batch = training_batch(cfg, 2)
    with torch.no_grad():
        pred = model(batch)["waypoints"]
        err = (pred - batch["waypoints"]).abs()
        plain = model(batch)
        model.cfg.waypoint_lateral_weight = 3.0
        weighted = model(batch)
    torch.testing.assert_close(plain["loss"], err.mean())  # weight 1: the plain L1
    torch.testing.assert_close(weighted["loss_waypoints"], err.mean())  # the log stays the plain L1
    torch.testing.assert_close(weighted["loss"], (err[..., 0].mean() + 3.0 * err[..., 1].mean()) / 4.0)


@pytest.mark.timeout(900)  # ~35 s on an idle 2-core machine; CPU-bound training
def test_tiny_overfits_a_handful_of_samples():
    torch.manual_seed(0)
    cfg = preset("tiny", image_height=64, image_width=96, history_frames=2)
    model = init_weights(DSDrive(cfg))
    batch = training_batch(cfg, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(120):
        loss = model(batch)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first, f"loss {first:.3f} -> {loss.item():.3f}: fell by less than 90 %"

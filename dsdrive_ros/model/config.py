"""DSDrive model configuration and presets.

`tiny` is the CPU-friendly default (a few million parameters); `1b` uses Llama-3.2-1B backbone
dimensions and Qwen2-0.5B-like reasoner layers (never trained here: export and latency only).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


HEAD_LAYOUTS = ("waypoints", "path_speed")


@dataclass
class DSDriveConfig:
    # sensors: camera order is part of the model (a view embedding per slot)
    cameras: list[str] = field(default_factory=lambda: ["front", "left", "right", "rear"])
    image_height: int = 128
    image_width: int = 224
    image_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # vision encoder: a patchify stem, then stages that each halve the resolution
    vision_stem: int = 4
    vision_channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    # Ego speed as a model input. With it, imitation learning tends to learn "stopped -> stay
    # stopped" (the inertia problem, seen in closed loop with the shipped tiny model); without it, the
    # tiny model cannot tell the waypoints' scale (val ADE 2.4 m vs 0.66 m, measured). Off, the
    # `speed` input stays in the graph I/O (multiplied by 0) so runtimes need not care.
    use_speed: bool = True
    # Q-Former
    n_query: int = 4
    qformer_dim: int = 128
    qformer_layers: int = 2
    qformer_heads: int = 4
    # LLaMA-style backbone
    vocab_size: int = 2048
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int = 2
    ffn_dim: int = 704
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    max_instruction_tokens: int = 24
    history_frames: int = 4  # including the current frame (LMDrive keeps up to 40)
    # heads
    n_waypoints: int = 5
    waypoint_dt: float = 0.5
    # "waypoints": one L1 head for timed waypoints (where AND how fast: it averages stop and go).
    # "path_speed": TF++-style disentangled heads: geometric path checkpoints (L1) + a target speed
    # class (CE); the graph rebuilds the same timed `waypoints` from them (DSDrive.rebuild_waypoints),
    # so every runtime and the PID read one output whatever the layout.
    head_layout: str = "waypoints"
    path_points: int = 12
    path_spacing_m: float = 3.0
    speed_bins: list[float] = field(default_factory=lambda: [0.0, 2.0, 4.0, 7.0, 10.0, 13.0])  # m/s
    speed_horizon_s: float = 1.0  # the speed label: the ego's speed this far ahead
    brake_threshold: float = 0.5  # P(stop class) above this: target speed 0
    accel_mps2: float = 2.0  # the rebuilt profile's speed-up and slow-down rates
    decel_mps2: float = 4.0
    lambda_speed: float = 0.5
    # reasoning head: Qwen2-style decoder layers (q/k/v bias, GQA, SwiGLU)
    reasoner_dim: int = 192
    reasoner_layers: int = 2
    reasoner_heads: int = 6
    reasoner_kv_heads: int = 2
    reasoner_ffn_dim: int = 512
    reasoner_rope_theta: float = 1000000.0
    max_reasoning_tokens: int = 256
    # special token ids (fixed by the tokenizer's special tokens)
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    # joint loss: λ1·L1(waypoints) + λ2·CE(answer) + λ3·CE(end)
    lambda_waypoints: float = 1.0
    # weight of the lateral (y) part of the waypoint L1 against the longitudinal (x): a lane width of
    # lateral error matters more in closed loop than the same error in how far the car gets
    waypoint_lateral_weight: float = 1.0
    lambda_reasoning: float = 0.5
    lambda_end: float = 0.2
    end_threshold: float = 0.75

    @property
    def n_cameras(self) -> int:
        return len(self.cameras)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def reasoner_head_dim(self) -> int:
        return self.reasoner_dim // self.reasoner_heads

    def validate(self) -> None:
        checks = {
            "dim % n_heads": self.dim % self.n_heads,
            "n_heads % n_kv_heads": self.n_heads % self.n_kv_heads,
            "reasoner_dim % reasoner_heads": self.reasoner_dim % self.reasoner_heads,
            "reasoner_heads % reasoner_kv_heads": self.reasoner_heads % self.reasoner_kv_heads,
            "qformer_dim % qformer_heads": self.qformer_dim % self.qformer_heads,
        }
        bad = [k for k, v in checks.items() if v]
        if bad:
            raise ValueError(f"invalid DSDriveConfig: {', '.join(bad)} must be 0")
        if self.history_frames < 1 or self.n_waypoints < 1 or self.n_cameras < 1:
            raise ValueError("history_frames, n_waypoints and cameras must be >= 1")
        if self.head_layout not in HEAD_LAYOUTS:
            raise ValueError(f"head_layout {self.head_layout!r} not in {HEAD_LAYOUTS}")
        if self.head_layout == "path_speed" and (
                self.path_points < 2 or len(self.speed_bins) < 2 or self.speed_bins[0] != 0.0
                or any(b <= a for a, b in zip(self.speed_bins, self.speed_bins[1:]))):
            raise ValueError("path_speed needs path_points >= 2 and increasing speed_bins from 0.0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DSDriveConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown DSDriveConfig keys: {unknown}")
        cfg = cls(**d)
        cfg.validate()
        return cfg


PRESETS: dict[str, dict] = {
    "tiny": {},
    # Llama-3.2-1B backbone; Qwen2-0.5B-like reasoner layers; LMDrive-like frame history.
    "1b": dict(
        vision_channels=[64, 128, 256, 512],
        qformer_dim=768, qformer_layers=4, qformer_heads=12,
        vocab_size=128256, dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn_dim=8192,
        rope_theta=500000.0, max_instruction_tokens=64, history_frames=40,
        reasoner_dim=896, reasoner_layers=4, reasoner_heads=14, reasoner_kv_heads=2,
        reasoner_ffn_dim=4864, max_reasoning_tokens=512,
    ),
}


def preset(name: str, **overrides) -> DSDriveConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return DSDriveConfig.from_dict({**PRESETS[name], **overrides})

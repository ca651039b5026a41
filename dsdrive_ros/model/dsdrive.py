"""DSDrive in one file (nanoGPT style): vision encoder -> Q-Former -> LLaMA backbone -> three heads.

Sequence read by the backbone: [instruction tokens | query tokens of the H-1 earlier frames | query
tokens of the current frame]. From the backbone's hidden states:
  - the last token feeds the planning heads (K timed points in base_link, directly or, with
    `head_layout: path_speed`, rebuilt from path checkpoints + a target-speed class) and the end head;
  - the current frame's hidden states become the prefix of the reasoning head (Qwen2-style decoder
    layers), which then generates text autoregressively with a KV cache.
The same `plan()` + `reason_step()` path serves training (teacher forcing) and ONNX export.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import DSDriveConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary embedding (rotate-half form) of x (B, H, S, D) at integer positions pos (S,)."""
    half = x.shape[-1] // 2
    inv_freq = 1.0 / theta ** (torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = pos.to(torch.float32)[:, None] * inv_freq[None, :]
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def sdpa_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean attention mask as SDPA takes it in `dtype`. For half types an additive mask in that
    dtype: torch's ONNX exporter turns a boolean mask into a float32 bias, which makes every
    attention output float32 in an fp16/bf16 graph (ONNX Runtime then refuses the graph). fp32 keeps
    the boolean mask, so its graph does not change."""
    if mask is None or dtype == torch.float32:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE and an optional KV cache (LLaMA; Qwen2 adds q/k/v bias)."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, theta: float, qkv_bias: bool):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.hd, self.theta = n_heads, n_kv_heads, dim // n_heads, theta
        self.wq = nn.Linear(dim, n_heads * self.hd, bias=qkv_bias)
        self.wk = nn.Linear(dim, n_kv_heads * self.hd, bias=qkv_bias)
        self.wv = nn.Linear(dim, n_kv_heads * self.hd, bias=qkv_bias)
        self.wo = nn.Linear(n_heads * self.hd, dim, bias=False)

    def forward(self, x, pos, mask, past_k=None, past_v=None, cache=None):
        """past_k/past_v: a growing cache (concatenated; the ONNX graphs). cache: a static (k, v) pair
        (B, KVH, L, HD) that this step's keys/values are written into at `pos`, attended up to `mask`
        (the torch runtime's decode step: fixed shapes, capturable in a CUDA graph)."""
        b, s, _ = x.shape
        q = self.wq(x).view(b, s, self.n_heads, self.hd).transpose(1, 2)
        k = self.wk(x).view(b, s, self.n_kv_heads, self.hd).transpose(1, 2)
        v = self.wv(x).view(b, s, self.n_kv_heads, self.hd).transpose(1, 2)
        q, k = rope(q, pos, self.theta), rope(k, pos, self.theta)
        if past_k is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        if cache is not None:
            cache[0].index_copy_(2, pos, k)
            cache[1].index_copy_(2, pos, v)
            k, v = cache
        rep = self.n_heads // self.n_kv_heads
        kk = k.repeat_interleave(rep, dim=1) if rep > 1 else k
        vv = v.repeat_interleave(rep, dim=1) if rep > 1 else v
        y = F.scaled_dot_product_attention(q, kk, vv, attn_mask=sdpa_mask(mask, q.dtype))
        return self.wo(y.transpose(1, 2).reshape(b, s, -1)), k, v


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class DecoderLayer(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads, ffn_dim, theta, eps, qkv_bias):
        super().__init__()
        self.attn_norm = RMSNorm(dim, eps)
        self.attn = Attention(dim, n_heads, n_kv_heads, theta, qkv_bias)
        self.ffn_norm = RMSNorm(dim, eps)
        self.ffn = SwiGLU(dim, ffn_dim)

    def forward(self, x, pos, mask, past_k=None, past_v=None, cache=None):
        h, k, v = self.attn(self.attn_norm(x), pos, mask, past_k, past_v, cache)
        x = x + h
        return x + self.ffn(self.ffn_norm(x)), k, v


class VisionEncoder(nn.Module):
    """Strided CNN shared by all views; a learned view embedding tells the views apart."""

    def __init__(self, cfg: DSDriveConfig):
        super().__init__()
        # patchify stem (cheap at full resolution), then one stride-2 conv per stage: the Q-Former
        # does the heavy lifting on the tokens, and training on a CPU stays affordable
        c0 = cfg.vision_channels[0]
        layers = [nn.Conv2d(3, c0, cfg.vision_stem, cfg.vision_stem), nn.GroupNorm(8, c0), nn.GELU()]
        c_in = c0
        for c in cfg.vision_channels[1:]:
            layers += [nn.Conv2d(c_in, c, 3, 2, 1, bias=False), nn.GroupNorm(8, c), nn.GELU()]
            c_in = c
        self.cnn = nn.Sequential(*layers)
        stride = cfg.vision_stem * 2 ** (len(cfg.vision_channels) - 1)
        self.grid = (cfg.image_height // stride, cfg.image_width // stride)
        n_pos = self.grid[0] * self.grid[1]
        self.pos_emb = nn.Parameter(torch.randn(n_pos, c_in) * 0.02)
        self.view_emb = nn.Parameter(torch.randn(cfg.n_cameras, c_in) * 0.02)
        self.proj = nn.Linear(c_in, cfg.qformer_dim)
        self.norm = nn.LayerNorm(cfg.qformer_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, NCAM, 3, H, W) -> visual tokens (B, NCAM*h*w, Dq)."""
        b, n = images.shape[:2]
        f = self.cnn(images.flatten(0, 1))  # (B*NCAM, C, h, w)
        f = f.flatten(2).transpose(1, 2)  # (B*NCAM, h*w, C)
        f = f.reshape(b, n, -1, f.shape[-1]) + self.pos_emb[None, None] + self.view_emb[None, :, None]
        return self.norm(self.proj(f.flatten(1, 2)))


class CrossAttention(nn.Module):
    """Plain multi-head attention (no RoPE): queries read a memory; `visible` (B, M) masks its keys."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.o = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, x, memory, visible=None):
        b, s, d = x.shape
        q = self.q(x).view(b, s, self.heads, -1).transpose(1, 2)
        kv = self.kv(memory).view(b, memory.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        mask = None if visible is None else visible[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask(mask, q.dtype))
        return self.o(y.transpose(1, 2).reshape(b, s, d))


class QFormerLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.n1, self.self_attn = nn.LayerNorm(dim), CrossAttention(dim, heads)
        self.n2, self.cross_attn = nn.LayerNorm(dim), CrossAttention(dim, heads)
        self.n3 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q, memory, memory_visible):
        h = self.n1(q)
        q = q + self.self_attn(h, h)
        q = q + self.cross_attn(self.n2(q), memory, memory_visible)
        return q + self.ffn(self.n3(q))


class QFormer(nn.Module):
    """A few learned queries per frame read the visual tokens and the instruction (BLIP-2 / LMDrive)."""

    def __init__(self, cfg: DSDriveConfig):
        super().__init__()
        d = cfg.qformer_dim
        self.queries = nn.Parameter(torch.randn(cfg.n_query, d) * 0.02)
        self.use_speed = cfg.use_speed
        self.speed_proj = nn.Linear(1, d)
        self.text_proj = nn.Linear(cfg.dim, d)
        self.type_emb = nn.Parameter(torch.randn(2, d) * 0.02)  # 0 = visual, 1 = text
        self.layers = nn.ModuleList(QFormerLayer(d, cfg.qformer_heads) for _ in range(cfg.qformer_layers))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.dim)  # projection to the LLM width

    def forward(self, visual, text_emb, text_mask, speed):
        b = visual.shape[0]
        memory = torch.cat([visual + self.type_emb[0], self.text_proj(text_emb) + self.type_emb[1]], dim=1)
        visible = torch.cat([torch.ones(b, visual.shape[1], dtype=torch.bool, device=visual.device), text_mask], 1)
        if not self.use_speed:
            speed = speed * 0.0  # keeps the graph input; see DSDriveConfig.use_speed
        q = self.queries[None].expand(b, -1, -1) + self.speed_proj(speed)[:, None]
        for layer in self.layers:
            q = layer(q, memory, visible)
        return self.out(self.norm(q))


class Reasoner(nn.Module):
    """Reasoning head: Qwen2-style decoder layers over [backbone prefix | text tokens]."""

    def __init__(self, cfg: DSDriveConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.reasoner_dim)
        self.prefix_proj = nn.Linear(cfg.dim, cfg.reasoner_dim)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.reasoner_dim, cfg.reasoner_heads, cfg.reasoner_kv_heads, cfg.reasoner_ffn_dim,
                         cfg.reasoner_rope_theta, cfg.norm_eps, qkv_bias=True)
            for _ in range(cfg.reasoner_layers))
        self.norm = RMSNorm(cfg.reasoner_dim, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.reasoner_dim, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied, as in Qwen2-0.5B

    def run(self, x: torch.Tensor, past_kv: torch.Tensor | None):
        """x (B, T, Dr); past_kv (NL, 2, B, KVH, P, HD) or None -> hidden (B, T, Dr), present_kv."""
        t = x.shape[1]
        p = 0 if past_kv is None else past_kv.shape[4]
        pos = torch.arange(t, device=x.device) + p
        key_pos = torch.arange(p + t, device=x.device)
        mask = key_pos[None, :] <= pos[:, None]
        present = []
        for i, layer in enumerate(self.layers):
            pk = None if past_kv is None else past_kv[i, 0]
            pv = None if past_kv is None else past_kv[i, 1]
            x, k, v = layer(x, pos, mask, pk, pv)
            present.append(torch.stack([k, v]))
        return self.norm(x), torch.stack(present)

    def prefix(self, hidden: torch.Tensor) -> torch.Tensor:
        """Backbone hidden states (B, NQ, D) -> the reasoner's KV cache for that prefix."""
        return self.run(self.prefix_proj(hidden), None)[1]

    def step(self, input_ids: torch.Tensor, past_kv: torch.Tensor):
        h, present = self.run(self.tok_emb(input_ids), past_kv)
        return self.lm_head(h), present

    def step_static(self, input_ids: torch.Tensor, pos: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        """One decode step on a static cache (NL, 2, B, KVH, L, HD), written in place at `pos` (a 1-element
        tensor: no host value, so the step can be replayed as a CUDA graph). Returns logits (B, V)."""
        key_pos = torch.arange(cache.shape[4], device=cache.device)
        mask = key_pos[None, :] <= pos[:, None]
        x = self.tok_emb(input_ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, pos, mask, cache=cache[i])[0]
        return self.lm_head(self.norm(x))[:, -1]


class DSDrive(nn.Module):
    def __init__(self, cfg: DSDriveConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.vision = VisionEncoder(cfg)
        self.qformer = QFormer(cfg)
        self.frame_pos = nn.Parameter(torch.randn(cfg.history_frames, 1, cfg.dim) * 0.02)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim, cfg.rope_theta, cfg.norm_eps,
                         qkv_bias=False)
            for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        if cfg.head_layout == "path_speed":
            self.path_head = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(),
                                           nn.Linear(cfg.dim, cfg.path_points * 2))
            self.speed_head = nn.Linear(cfg.dim, len(cfg.speed_bins))
            self.register_buffer("speed_bins", torch.tensor(cfg.speed_bins, dtype=torch.float32),
                                 persistent=False)
        else:
            self.waypoint_head = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(),
                                               nn.Linear(cfg.dim, cfg.n_waypoints * 2))
        self.end_head = nn.Linear(cfg.dim, 2)
        self.reasoner = Reasoner(cfg)

    def encode_frame(self, images, instruction_ids, instruction_mask, speed):
        """One frame's query tokens (B, NQ, D): what the history ring stores."""
        visual = self.vision(images)
        return self.qformer(visual, self.tok_emb(instruction_ids), instruction_mask, speed)

    def backbone(self, instruction_ids, instruction_mask, history_tokens, history_mask, frame_tokens):
        cfg = self.cfg
        b, nq = frame_tokens.shape[0], cfg.n_query
        frames = torch.cat([history_tokens, frame_tokens[:, None]], dim=1)  # (B, HIST, NQ, D)
        frames = (frames + self.frame_pos[None]).flatten(1, 2)
        x = torch.cat([self.tok_emb(instruction_ids), frames], dim=1)
        valid = torch.cat([instruction_mask, history_mask.repeat_interleave(nq, dim=1),
                           torch.ones(b, nq, dtype=torch.bool, device=x.device)], dim=1)
        s = x.shape[1]
        pos = torch.arange(s, device=x.device)
        causal, itself = pos[None, :] <= pos[:, None], pos[None, :] == pos[:, None]
        # padded keys are invisible; each token still sees itself so no row is empty (no NaN)
        mask = (causal[None] & valid[:, None, :]) | itself[None]
        mask = mask[:, None]  # (B, 1, S, S)
        for layer in self.layers:
            x = layer(x, pos, mask)[0]
        return self.norm(x)

    def plan(self, images, instruction_ids, instruction_mask, history_tokens, history_mask, speed):
        frame_tokens = self.encode_frame(images, instruction_ids, instruction_mask, speed)
        h = self.backbone(instruction_ids, instruction_mask, history_tokens, history_mask, frame_tokens)
        out = self.heads(h[:, -1], speed)
        out.update(end_prob=out["end_logits"].softmax(-1)[:, 1], frame_tokens=frame_tokens,
                   reasoner_kv=self.reasoner.prefix(h[:, -self.cfg.n_query:]))
        return out

    def heads(self, last: torch.Tensor, speed: torch.Tensor) -> dict[str, torch.Tensor]:
        """The planning heads on the last hidden state: timed `waypoints` in both layouts."""
        cfg = self.cfg
        out = {"end_logits": self.end_head(last)}
        if cfg.head_layout == "path_speed":
            path = self.path_head(last).view(-1, cfg.path_points, 2)
            speed_logits = self.speed_head(last)
            probs = speed_logits.softmax(-1)
            out.update(path=path, speed_logits=speed_logits, speed_probs=probs,
                       waypoints=self.rebuild_waypoints(path, probs, speed))
        else:
            out["waypoints"] = self.waypoint_head(last).view(-1, cfg.n_waypoints, 2)
        return out

    def rebuild_waypoints(self, path: torch.Tensor, speed_probs: torch.Tensor,
                          speed: torch.Tensor) -> torch.Tensor:
        """Timed waypoints (B, K, 2) from path checkpoints (B, P, 2) and speed classes (B, C).

        Target speed: the expected class speed, or 0 when the stop class is likelier than
        `brake_threshold` (TF++'s brake rule). The speed ramps from the measured `speed` (B, 1) to it at
        `accel_mps2` / `decel_mps2`; waypoint k lies at the distance driven by t = k * dt along the path
        (origin, then the checkpoints; past the last one, straight on along its last segment). Only
        elementwise ops, Min/Max and one MatMul: the same arithmetic in ONNX Runtime and TensorRT."""
        cfg = self.cfg
        v_exp = (speed_probs * self.speed_bins).sum(-1)
        v_target = torch.where(speed_probs[:, 0] > cfg.brake_threshold, torch.zeros_like(v_exp), v_exp)
        v0 = speed[:, 0].clamp(min=0.0)
        dv = v_target - v0
        rate = torch.where(dv >= 0, torch.full_like(dv, cfg.accel_mps2), torch.full_like(dv, cfg.decel_mps2))
        ramp = (dv.abs() / rate)[:, None]  # seconds until the target speed is reached
        t = torch.arange(1, cfg.n_waypoints + 1, dtype=path.dtype, device=path.device) * cfg.waypoint_dt
        tr = torch.minimum(t[None], ramp)
        dist = v0[:, None] * tr + 0.5 * (torch.sign(dv) * rate)[:, None] * tr * tr + v_target[:, None] * (t[None] - tr)
        seg = path - torch.cat([torch.zeros_like(path[:, :1]), path[:, :-1]], dim=1)  # (B, P, 2)
        seg_len = torch.linalg.vector_norm(seg, dim=-1).clamp(min=1e-3)
        start = torch.cumsum(seg_len, dim=1) - seg_len
        frac = ((dist[:, :, None] - start[:, None]) / seg_len[:, None]).clamp(min=0.0)  # (B, K, P)
        cap = torch.ones(cfg.path_points, dtype=path.dtype, device=path.device)
        cap[-1] = 1e6  # the last segment extends the path
        return torch.minimum(frac, cap) @ seg

    def clip_tokens(self, batch: dict[str, torch.Tensor], history_grad: bool = True) -> torch.Tensor:
        """Every frame of a clip through the vision encoder + Q-Former: (B, HIST, NQ, D). Each earlier
        frame is encoded at its own speed (`history_speed`, (B, HIST-1)), as the runtime's history ring
        holds it; encoding them at the current speed taught the model that history tokens encoded at
        0 m/s mean "stand", which stopped every start from rest at run time.

        history_grad=False encodes the earlier frames without a graph, as the ring holds them: tokens
        computed once, never revised. The shared encoder still learns from every current frame, and a
        CPU training step costs about half (the backward pass through HIST-1 of HIST frames is gone)."""
        images, ids, imask = batch["images"], batch["instruction_ids"], batch["instruction_mask"]
        b, hist = images.shape[:2]
        speeds = torch.cat([batch["history_speed"], batch["speed"]], dim=1)  # (B, HIST), oldest first

        def encode(frames: slice) -> torch.Tensor:  # (B, n, NQ, D) for the clip's frames[frames]
            x, v = images[:, frames], speeds[:, frames]
            n = x.shape[1]
            t = self.encode_frame(x.flatten(0, 1), ids.repeat_interleave(n, 0), imask.repeat_interleave(n, 0),
                                  v.reshape(b * n, 1))
            return t.view(b, n, self.cfg.n_query, self.cfg.dim)

        if history_grad or hist == 1:
            return encode(slice(None))
        with torch.no_grad():
            past = encode(slice(None, -1))
        return torch.cat([past, encode(slice(-1, None))], dim=1)

    def forward(self, batch: dict[str, torch.Tensor], history_grad: bool = True) -> dict[str, torch.Tensor]:
        """Training step on a batch of clips; returns the joint loss and its parts.

        batch: images (B, HIST, NCAM, 3, H, W) oldest first, frame_mask (B, HIST) (last always true),
        instruction_ids/mask (B, L), speed (B, 1), history_speed (B, HIST-1) (each earlier frame's own),
        waypoints (B, K, 2), end (B,) long, reasoning_ids (B, T) starting with bos, padded with pad_id;
        path_speed adds path (B, P, 2), path_mask (B, P) and speed_target (B, C) class weights.
        """
        cfg = self.cfg
        ids, imask = batch["instruction_ids"], batch["instruction_mask"]
        tokens = self.clip_tokens(batch, history_grad)
        h = self.backbone(ids, imask, tokens[:, :-1], batch["frame_mask"][:, :-1], tokens[:, -1])
        # under mixed precision the heads run in fp32: bf16 resolves a waypoint 20 m ahead to 0.125 m
        with torch.autocast(h.device.type, enabled=False):
            out = self.heads(h[:, -1].float(), batch["speed"])
        if cfg.lambda_reasoning > 0:  # what plan() hands the reasoner (the reasoning loss, open-loop text)
            out["reasoner_kv"] = self.reasoner.prefix(h[:, -cfg.n_query:])
        w = cfg.waypoint_lateral_weight  # the L1s: a weighted mean of x and y (w = 1: plain L1)
        err = (out["waypoints"] - batch["waypoints"]).abs()
        out["loss_waypoints"] = err.mean()  # the plain timed-waypoint L1, logged in both layouts
        if cfg.head_layout == "path_speed":
            # checkpoints the ego's future never reached (it stood until the episode ended) are masked
            mask = batch["path_mask"].to(err.dtype)
            perr = (out["path"] - batch["path"]).abs()
            denom = mask.sum().clamp(min=1.0)
            loss_geo = ((perr[..., 0] * mask).sum() + w * (perr[..., 1] * mask).sum()) / (denom * (1.0 + w))
            # two-hot targets (train.data): the expected class speed the runtime drives at is the label's
            out["loss_speed"] = F.cross_entropy(out["speed_logits"], batch["speed_target"])
            out["loss_path"] = loss_geo
            loss_geo = loss_geo + cfg.lambda_speed * out["loss_speed"]
        else:
            loss_geo = (err[..., 0].mean() + w * err[..., 1].mean()) / (1.0 + w)
        out["loss_end"] = F.cross_entropy(out["end_logits"], batch["end"])
        loss = cfg.lambda_waypoints * loss_geo + cfg.lambda_end * out["loss_end"]
        if cfg.lambda_reasoning > 0 and "reasoning_ids" in batch:
            r = batch["reasoning_ids"]
            logits, _ = self.reasoner.step(r[:, :-1], out["reasoner_kv"])
            # summed over real tokens: a batch without any teacher text (LMDrive data) adds 0, not NaN
            target = r[:, 1:].flatten()
            loss_r = F.cross_entropy(logits.flatten(0, 1), target, ignore_index=cfg.pad_id, reduction="sum")
            loss_r = loss_r / (target != cfg.pad_id).sum().clamp(min=1)
            loss = loss + cfg.lambda_reasoning * loss_r
            out.update(loss_reasoning=loss_r, reasoning_logits=logits)
        out["loss"] = loss
        return out

    def num_params(self) -> int:
        # tied lm_head counted once
        return sum(p.numel() for p in self.parameters())


def init_weights(model: DSDrive, seed: int = 0) -> DSDrive:
    """Deterministic GPT-2-style init for the linear and embedding layers."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
    for name, p in model.named_parameters():
        if name.endswith("wo.weight") or name.endswith("w2.weight"):
            with torch.no_grad():
                p.mul_(1 / math.sqrt(2 * model.cfg.n_layers))
    return model

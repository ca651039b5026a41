"""node_bench's statistics: per-frame rows from what the rig received, and a phase's figures."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from node_rig import Rig


def _pct(xs, q) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return float(np.percentile(xs, q)) if xs else None


def _mean(xs) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def collect(rig: Rig, stamps: list[int]) -> list[dict]:
    """Per received Path: end-to-end latency, the DrivingPlan's fields and the stage breakdown (ms)."""
    sent = set(stamps)
    with rig.lock:
        paths = [(s, r) for s, r in rig.paths if s in sent]
        plans = {s: p for s, p in rig.plans.items() if s in sent}
        stages = {s: v for s, v in rig.stages.items() if s in sent}
    rows = []
    for s, r in paths:
        v, plan = stages.get(s, {}), plans.get(s)
        dec = v.get("decode_ms") or []
        rows.append({
            "e2e": (r - s) / 1e6,
            "model_latency": None if plan is None else plan["model_latency_ms"],
            "frames_dropped": 0 if plan is None else plan["frames_dropped"],
            "transport_in": None if v.get("in_wall_ns") is None else (v["in_wall_ns"] - s) / 1e6,
            "decode_sum": float(sum(dec)) if dec else None,
            "resize_sum": float(sum(v["resize_ms"])) if v.get("resize_ms") else None,
            "sync": v.get("sync_ms"),
            "queue_wait": v.get("queue_wait_ms"),
            "preprocess": v.get("preprocess_ms"),
            "inference": v.get("inference_ms"),
            "parse": v.get("parse_ms"),
            "fill_publish": v.get("publish_ms"),
            "transport_out": None if plan is None or "published_wall_ns" not in v
            else (plan["recv_ns"] - v["published_wall_ns"]) / 1e6,
        })
    return rows


STAGE_KEYS = ("transport_in", "decode_sum", "resize_sum", "sync", "queue_wait", "preprocess", "inference", "parse",
              "fill_publish", "transport_out", "e2e")


def summarize(rows: list[dict], sent: int, label: str, rate_hz: float) -> dict:
    e2e = [r["e2e"] for r in rows]
    res: dict[str, Any] = {
        "phase": label, "rate_hz": rate_hz if rate_hz > 0 else "burst", "sent": sent,
        "received": len(rows), "drop_ratio": 1.0 - len(rows) / max(1, sent),
        "e2e_ms": {"p50": _pct(e2e, 50), "p90": _pct(e2e, 90), "p99": _pct(e2e, 99),
                   "max": max(e2e) if e2e else None,
                   "mean": _mean(e2e)},
        "model_latency_ms": {"p50": _pct([r["model_latency"] for r in rows], 50),
                             "p99": _pct([r["model_latency"] for r in rows], 99)},
        "frames_dropped_reported": int(sum(r["frames_dropped"] for r in rows)),
    }
    if len(e2e) >= 4:  # bounded, not growing: the second half is no slower than the first
        half = len(e2e) // 2
        res["e2e_ms"]["p50_first_half"] = _pct(e2e[:half], 50)
        res["e2e_ms"]["p50_second_half"] = _pct(e2e[half:], 50)
    full = [r for r in rows if r["inference"] is not None]
    if full:
        res["stages_ms"] = {k: {"p50": _pct([r[k] for r in full], 50), "mean": _mean([r[k] for r in full]),
                                "p99": _pct([r[k] for r in full], 99)} for k in STAGE_KEYS}
        e2e_mean = _mean([r["e2e"] for r in full])
        inf_mean = _mean([r["inference"] for r in full])
        node_own = _mean([sum(r[k] or 0.0 for k in ("decode_sum", "preprocess", "parse", "fill_publish"))
                          for r in full])
        cut = _pct([r["e2e"] for r in full], 90)
        tail = [r for r in full if r["e2e"] >= cut]
        # the slowest 10 % of frames: which stage makes them slow
        res["tail_stages_ms"] = {k: _mean([r[k] for r in tail]) for k in STAGE_KEYS}
        res["tail_stages_ms"]["frames"] = len(tail)
        res["overhead"] = {
            # decode + preprocess + parse + fill/publish: the node's own work per frame
            "node_work_ms_mean": node_own,
            "node_work_share": node_own / e2e_mean if e2e_mean else None,
            # everything that is not the model (transport, decode, sync, queueing, pre/post)
            "non_model_ms_mean": e2e_mean - inf_mean,
            "non_model_share": 1.0 - inf_mean / e2e_mean if e2e_mean else None,
            "frames": len(full),
        }
    return res


def pooled(parts: list[dict], label: str) -> dict:
    """One figure from alternated blocks of the same condition, recomputed from their frames."""
    rows = [r for p in parts for r in p["_rows"]]
    rate = parts[0]["rate_hz"]
    out = summarize(rows, sum(p["sent"] for p in parts), label, rate if isinstance(rate, float) else 0.0)
    out.update({"load_avg_start": parts[0]["load_avg_start"], "load_avg_end": parts[-1]["load_avg_end"],
                "node_cpu_pct": _mean([p.get("node_cpu_pct") for p in parts]),
                "reasoning_texts": sum(p.get("reasoning_texts", 0) for p in parts),
                "params": parts[0].get("params"), "pooled_from": [p["phase"] for p in parts]})
    return out

"""The think-then-answer text the reasoning head learns: the teacher's chain of thought, then the
ground-truth waypoints as the final answer (DSDrive's waypoint-driven dual-head coordination)."""
from __future__ import annotations

import re

import numpy as np

THINK, THINK_END, ANSWER, ANSWER_END = "<think>", "</think>", "<answer>", "</answer>"
_POINT = re.compile(r"\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)")


def format_reasoning(chain_of_thought: str, waypoints) -> str:
    points = " ".join(f"({x:.1f}, {y:.1f})" for x, y in np.asarray(waypoints, dtype=float).reshape(-1, 2))
    return f"{THINK}{chain_of_thought.strip()}{THINK_END}{ANSWER}{points}{ANSWER_END}"


def split_reasoning(text: str) -> tuple[str, np.ndarray | None]:
    """Generated text -> (chain of thought, answer waypoints (K, 2) or None if no answer parsed)."""
    thought = text.split(THINK_END)[0].replace(THINK, "").strip()
    if ANSWER not in text:
        return thought, None
    answer = text.split(ANSWER, 1)[1].split(ANSWER_END)[0]
    points = [(float(x), float(y)) for x, y in _POINT.findall(answer)]
    return thought, (np.array(points, dtype=np.float32) if points else None)

"""What every runtime offers: plan() for one planner step, decode() for one reasoner step."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from .spec import ModelSpec


class RunnerError(RuntimeError):
    pass


class Runner(Protocol):
    spec: ModelSpec
    name: str  # e.g. "onnxruntime:CPUExecutionProvider", reported in diagnostics and the plan message

    def plan(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def decode(self, input_ids: np.ndarray, past_kv: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def check_io(spec: ModelSpec, graph: str, actual_inputs: dict[str, list], actual_outputs: dict[str, list]) -> None:
    """Fail loudly when a graph's I/O names or static dims differ from config.json."""
    for kind, actual in (("inputs", actual_inputs), ("outputs", actual_outputs)):
        expected = spec.io(graph, kind)
        if set(expected) != set(actual):
            raise RunnerError(f"{graph} {kind} are {sorted(actual)} but config.json says {sorted(expected)}: "
                              "the ONNX does not belong to this config.json; re-export the model")
        for name, (shape, _) in expected.items():
            got = actual[name]
            if len(got) != len(shape) or any(isinstance(e, int) and isinstance(g, int) and e != g
                                              for e, g in zip(shape, got)):
                raise RunnerError(f"{graph} {kind[:-1]} {name!r} has shape {got} but config.json says {shape}")


def zero_inputs(spec: ModelSpec) -> dict[str, np.ndarray]:
    """Planner inputs of the right shapes (for warm-up and engine builds)."""
    return {n: np.zeros(spec.fixed_shape("planner", "inputs", n), dtype=d)
            for n, (_, d) in spec.io("planner", "inputs").items()}

"""The exported model directory, parsed once: everything the runtime knows about the model."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FORMAT = "dsdrive-onnx/1"
_DTYPES = {"float32": "float32", "int64": "int64", "bool": "bool"}


class ModelSpecError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    dir: Path
    raw: dict

    @classmethod
    def load(cls, model_dir: str | Path) -> "ModelSpec":
        d = Path(model_dir)
        if not d.is_dir():
            raise ModelSpecError(f"model_dir {str(d)!r} does not exist or is not a folder")
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            raise ModelSpecError(f"{cfg_path} is missing: export the model with export/to_onnx.py")
        try:
            raw = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise ModelSpecError(f"{cfg_path} is not valid JSON: {e}") from e
        if raw.get("format") != FORMAT:
            raise ModelSpecError(f"{cfg_path}: format {raw.get('format')!r}, expected {FORMAT!r}")
        spec = cls(d, raw)
        for key in ("planner", "reasoner", "tokenizer"):
            if not spec.file(key).is_file():
                raise ModelSpecError(f"{spec.file(key)} is missing (listed in config.json)")
        for graph in ("planner", "reasoner"):
            data = spec.data_file(graph)
            if data is not None and not data.is_file():
                raise ModelSpecError(f"{data} is missing: {spec.file(graph).name} keeps its weights there "
                                     "(config.json files); copy it with the model")
        return spec

    def file(self, key: str) -> Path:
        return self.dir / self.raw["files"][key]

    def data_file(self, graph: str) -> Path | None:
        """The graph's external-data file (`planner.onnx.data`), None when its weights are inline.
        Runtimes open the graph by path: ONNX Runtime and TensorRT find this file beside it."""
        name = self.raw["files"].get(f"{graph}_data")
        return None if name is None else self.dir / name

    @property
    def weights_dtype(self) -> str:
        return str(self.raw.get("weights_dtype", "fp32"))  # exports before it: fp32

    @property
    def cameras(self) -> list[str]:
        return list(self.raw["cameras"])

    @property
    def image(self) -> dict:
        return dict(self.raw["image"])

    @property
    def waypoint_count(self) -> int:
        return int(self.raw["waypoints"]["count"])

    @property
    def waypoint_dt(self) -> float:
        return float(self.raw["waypoints"]["dt_s"])

    @property
    def frame_id(self) -> str:
        return str(self.raw["waypoints"]["frame_id"])

    @property
    def head_layout(self) -> str:
        """"waypoints" or "path_speed"; exports before the path/speed heads have no "heads" entry."""
        return str(self.raw.get("heads", {}).get("layout", "waypoints"))

    @property
    def history_frames(self) -> int:
        return int(self.raw["history_frames"])

    @property
    def query_tokens(self) -> int:
        return int(self.raw["query_tokens"])

    @property
    def max_instruction_tokens(self) -> int:
        return int(self.raw["max_instruction_tokens"])

    @property
    def max_reasoning_tokens(self) -> int:
        return int(self.raw["max_reasoning_tokens"])

    @property
    def end_threshold(self) -> float:
        return float(self.raw["end_threshold"])

    @property
    def tokens(self) -> dict[str, int]:
        return dict(self.raw["tokens"])

    @property
    def model(self) -> dict:
        return dict(self.raw["model"])

    def io(self, graph: str, kind: str) -> dict[str, tuple[list, str]]:
        """{name: (shape with str for dynamic axes, dtype)} of a graph's inputs or outputs."""
        return {n: (v["shape"], _DTYPES[v["dtype"]]) for n, v in self.raw["io"][graph][kind].items()}

    def fixed_shape(self, graph: str, kind: str, name: str, batch: int = 1) -> tuple[int, ...]:
        shape, _ = self.io(graph, kind)[name]
        return tuple(batch if s == "batch" else s for s in shape)

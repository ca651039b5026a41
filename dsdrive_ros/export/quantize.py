"""INT8 planner by explicit quantization: Q/DQ nodes in the ONNX, calibrated on real frames.

Symmetric int8 activations and weights, as TensorRT's explicit quantization requires; the same
planner.int8.onnx runs on ONNX Runtime (measured here) and builds on TensorRT 10/11 with no calibrator.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..outputs.parse import PlanParseError
from ..planner.planner import Planner
from ..runners import ModelSpec, PlannerSession, load_tokenizer
from ..runners.onnxruntime_runner import OnnxRuntimeRunner
from .frame_source import iter_samples

log = logging.getLogger(__name__)


class RealFrame(NamedTuple):
    stamp_ns: int
    feed: dict[str, np.ndarray]  # planner inputs


class _Recorder:
    """A runner that keeps a copy of every planner feed (the calibration and evaluation inputs)."""

    def __init__(self, runner: OnnxRuntimeRunner) -> None:
        self.runner, self.feeds = runner, []

    def plan(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.feeds.append({k: v.copy() for k, v in inputs.items()})
        return self.runner.plan(inputs)


def planner_frames(spec: ModelSpec, source: str | Path, limit: int) -> list[RealFrame]:
    """Planner inputs for real frames, as the node's Planner feeds them on fp32 (frame history too)."""
    recorder = _Recorder(OnnxRuntimeRunner(spec))
    planner = Planner(spec, PlannerSession(spec, recorder, load_tokenizer(spec)), backend="onnxruntime")
    stamps: list[int] = []
    for sample in iter_samples(source, spec.cameras):
        if len(stamps) >= limit:
            break
        stamps.append(sample.stamp_ns)
        try:
            planner.plan_frames(sample.images, sample.instruction, sample.speed, sample.stamp_ns)
        except PlanParseError:
            pass  # the feed is recorded and calibrates as well; only this output was unusable
    if not stamps:
        raise ValueError(f"{source}: no frame with all cameras {spec.cameras} found")
    return [RealFrame(stamp, feed) for stamp, feed in zip(stamps, recorder.feeds)]


def planner_inputs(spec: ModelSpec, source: str | Path, limit: int) -> list[dict[str, np.ndarray]]:
    return [f.feed for f in planner_frames(spec, source, limit)]


def _ground_truth(source: str | Path) -> dict[int, np.ndarray]:
    """{stamp: (K, 2) expert waypoints} of a bag's /ground_truth/path; {} for a dataset or a bag without."""
    if (Path(source) / "index.jsonl").is_file():
        return {}
    from ..data.bag_export import read_ground_truth

    return read_ground_truth(source)


def _ade_m(sess: ort.InferenceSession, frames: list[RealFrame], gt: dict[int, np.ndarray]) -> float:
    return float(np.mean([np.linalg.norm(sess.run(["waypoints"], f.feed)[0][0] - gt[f.stamp_ns], axis=-1).mean()
                          for f in frames]))


class _Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def _latency_ms(sess: ort.InferenceSession, feeds: list[dict], repeats: int = 3) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        for f in feeds:
            t0 = time.perf_counter()
            sess.run(None, f)
            times.append((time.perf_counter() - t0) * 1e3)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def spread_split(n: int, n_calib: int, n_eval: int) -> tuple[list[int], list[int]]:
    """Disjoint calibration and evaluation frames, each spread over all n frames.

    A drive's first frames (standing, then straight) do not cover the activation ranges of its turns:
    on the sample bag, calibrating on frames 0-63 and measuring on 64-127 gave 0.148 m of mean
    waypoint error; spread over the drive, 0.096 m."""
    if n < 2:
        return list(range(n)), list(range(n))
    stride = max(2, n // max(n_calib, n_eval))
    return list(range(0, n, stride))[:n_calib], list(range(stride // 2, n, stride))[:n_eval]


def _ade_report(fp32: ort.InferenceSession, int8: ort.InferenceSession, frames: list[RealFrame],
                gt: dict[int, np.ndarray]) -> dict | None:
    """ADE against the recorded ground truth on the evaluation frames, fp32 and int8; None without it."""
    frames = [f for f in frames if f.stamp_ns in gt]
    if not frames:
        return None
    a32, a8 = _ade_m(fp32, frames, gt), _ade_m(int8, frames, gt)
    return {"frames": len(frames), "fp32": a32, "int8": a8, "delta": a8 - a32}


def quantize_planner(model_dir: str | Path, calib: str | Path, n_calib: int = 64, n_eval: int = 64) -> dict:
    """Write planner.int8.onnx beside planner.onnx and return (and save) its accuracy/speed report.

    Reads up to 4 x (n_calib + n_eval) frames of `calib` and takes both sets spread over them."""
    spec = ModelSpec.load(model_dir)
    frames = planner_frames(spec, calib, 4 * (n_calib + n_eval))
    calib_idx, eval_idx = spread_split(len(frames), n_calib, n_eval)
    calib_feeds, eval_feeds = [frames[i].feed for i in calib_idx], [frames[i].feed for i in eval_idx]
    fp32_path = spec.file("planner")
    prep = fp32_path.with_suffix(".prep.onnx")
    out = fp32_path.with_suffix(".int8.onnx")
    # A planner with external weights (planner.onnx.data: > 2 GB, or exported so) is read by path
    # (ONNX Runtime finds the data beside it) and written the same way: planner.int8.onnx.data.
    external = spec.data_file("planner") is not None
    # symbolic shape inference trips on the dynamic Reshape of the attention; ONNX's own is enough
    quant_pre_process(str(fp32_path), str(prep), skip_symbolic_shape=True, save_as_external_data=external,
                      all_tensors_to_one_file=True, external_data_location=prep.name + ".data")
    log.info("calibrating on %d frames from %s", len(calib_feeds), calib)
    quantize_static(str(prep), str(out), _Reader(calib_feeds), quant_format=QuantFormat.QDQ,
                    use_external_data_format=external,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    # Measured on the shipped tiny model (64 sample-bag frames): int8 convolutions cost
                    # 0.003 m of waypoint error, int8 linear layers (MatMul/Gemm) 1-2 m, even with the
                    # attention MatMuls and the Q-Former left float. So only the vision CNN is quantized.
                    op_types_to_quantize=["Conv"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    prep.unlink()
    prep.with_name(prep.name + ".data").unlink(missing_ok=True)
    opts = ort.SessionOptions()
    fp32 = ort.InferenceSession(str(fp32_path), opts, providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    errs = np.array([np.linalg.norm(fp32.run(["waypoints"], f)[0] - int8.run(["waypoints"], f)[0], axis=-1).mean()
                     for f in eval_feeds])
    report = {
        "calibration_source": str(calib), "calibration_frames": len(calib_feeds), "eval_frames": len(eval_feeds),
        "waypoint_error_m": {"mean": float(errs.mean()), "p95": float(np.percentile(errs, 95)),
                             "max": float(errs.max())},
        "ade_m": _ade_report(fp32, int8, [frames[i] for i in eval_idx], _ground_truth(calib)),
        "latency_ms_cpu": {"fp32": _latency_ms(fp32, eval_feeds[:16]), "int8": _latency_ms(int8, eval_feeds[:16])},
        "bytes": {"fp32": fp32_path.stat().st_size, "int8": out.stat().st_size},
    }
    (spec.dir / "quantization.json").write_text(json.dumps(report, indent=2))
    return report

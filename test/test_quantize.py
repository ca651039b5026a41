"""INT8 by explicit Q/DQ: symmetric, calibrated on the sample bag's real frames, runs on ONNX Runtime."""
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from dsdrive_ros.export.quantize import quantize_planner, spread_split
from dsdrive_ros.runners import ModelSpec, PlannerSession, load_tokenizer, make_runner

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample"


@pytest.fixture(scope="module")
def quantized(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "model"
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("*.int8.onnx", "engines"))
    report = quantize_planner(out, SAMPLE, n_calib=8, n_eval=8)
    return out, report


def test_qdq_is_symmetric_int8(quantized):
    out, _ = quantized
    graph = onnx.load(str(out / "planner.int8.onnx")).graph
    inits = {i.name: i for i in graph.initializer}
    q = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    dq_outputs = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert q and convs and all(c.input[0] in dq_outputs and c.input[1] in dq_outputs for c in convs), \
        "every convolution must read Q/DQ'd activations and weights (explicit quantization)"
    for node in q:
        zp = numpy_helper.to_array(inits[node.input[2]])
        assert zp.dtype == np.int8 and not zp.any(), f"{node.name}: TensorRT needs zero points of 0"


def test_int8_planner_runs_and_reports_error(quantized):
    out, report = quantized
    assert report["calibration_frames"] == 8 and report["eval_frames"] == 8
    err = report["waypoint_error_m"]
    assert 0 <= err["mean"] <= err["max"] and np.isfinite(err["max"])
    assert report["bytes"]["int8"] < report["bytes"]["fp32"]  # int8 conv weights
    spec = ModelSpec.load(out)
    runner = make_runner(spec, "onnxruntime", "int8")
    assert runner.name.endswith(":int8")
    session = PlannerSession(spec, runner, load_tokenizer(spec))
    result = session.step(np.zeros((1, 4, 3, 128, 224), np.float32), "go straight", 2.0)
    assert np.isfinite(result["waypoints"]).all()


# int8 may cost at most this much ADE (m) against the recorded expert path on held-out frames.
# Measured on the shipped model and the sample bag: -0.003 m over the 8 frames below, +0.004 m over
# 64 (quantization.json); the per-waypoint int8-fp32 gap 0.020 m (8) and 0.028 m (64).
INT8_ADE_DELTA_M = 0.05
INT8_WAYPOINT_GAP_M = 0.10


def test_int8_accuracy_is_bounded_on_held_out_frames(quantized):
    """The evaluation frames are disjoint from the calibration frames (spread_split)."""
    _, report = quantized
    ade = report["ade_m"]
    assert ade is not None and ade["frames"] == report["eval_frames"], "the sample bag has /ground_truth/path"
    if ade["fp32"] > 1.5:  # the shipped model: 0.63 m on these frames; random weights: metres
        pytest.skip(f"fp32 ADE {ade['fp32']:.2f} m: not a trained model, no accuracy to bound")
    assert ade["delta"] <= INT8_ADE_DELTA_M, ade
    assert report["waypoint_error_m"]["mean"] <= INT8_WAYPOINT_GAP_M, report["waypoint_error_m"]


@pytest.mark.parametrize("n,nc,ne", [(301, 64, 64), (301, 8, 8), (100, 64, 64), (5, 2, 2)])
def test_calibration_and_evaluation_frames_are_disjoint_and_span_the_drive(n, nc, ne):
    calib, evaluation = spread_split(n, nc, ne)
    assert not set(calib) & set(evaluation) and calib and evaluation
    assert len(calib) <= nc and len(evaluation) <= ne
    assert max(calib) >= n // 2 and max(evaluation) >= n // 2  # not only the drive's start

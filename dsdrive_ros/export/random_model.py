"""A model with random weights and a small bootstrap tokenizer: the stand-in until a trained model ships.

Made by the same export path as a trained checkpoint, so everything downstream (node, replay, tests)
runs on real exported artifacts.
"""
from __future__ import annotations

import itertools

import torch

from ..model.config import preset
from ..model.dsdrive import DSDrive, init_weights
from ..model.tokenizer import DSDriveTokenizer

_SUBJECTS = ["turn left", "turn right", "go straight", "follow the lane", "stop", "slow down",
             "keep going", "change lanes"]
_PLACES = ["at the next intersection", "at the traffic light", "until the junction", "along the road",
           "for the pedestrian ahead", "behind the car in front"]


def bootstrap_corpus() -> list[str]:
    return [f"{s} {p}." for s, p in itertools.product(_SUBJECTS, _PLACES)] + [
        "<think>The road ahead is clear.</think><answer>(2.0, 0.0) (4.0, 0.1)</answer>"]


def random_model(preset_name: str, seed: int = 0) -> tuple[DSDrive, DSDriveTokenizer]:
    cfg = preset(preset_name)
    tokenizer = DSDriveTokenizer.train(bootstrap_corpus(), vocab_size=min(cfg.vocab_size, 512))
    # the convolutions keep PyTorch's default init, drawn from the global RNG: seed it for this model only
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DSDrive(cfg)
    return init_weights(model, seed).eval(), tokenizer

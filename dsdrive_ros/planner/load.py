"""What a Planner runs on: the session on the chosen backend, and the preprocessor that fits it."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

if TYPE_CHECKING:
    from dsdrive_ros.runners.session import PlannerSession
    from dsdrive_ros.runners.spec import ModelSpec

__all__ = ["gpu_preprocessor", "load_session"]

_log = logging.getLogger("dsdrive_ros.planner")


def load_session(spec: ModelSpec, backend: str = "auto", precision: str = "fp32",
                 engine_cache_dir: Optional[str] = None, threads: int = 0, device: str = "",
                 log: Callable[[str], None] = _log.info) -> tuple[PlannerSession, str]:
    """(PlannerSession, the runner's name) for a ModelSpec on a backend. ``log`` gets the one line
    saying which backend ``auto`` chose and why it passed over the others."""
    from dsdrive_ros.runners import PlannerSession, RunnerOptions, load_tokenizer, select_runner

    selection = select_runner(spec, backend, RunnerOptions(precision, engine_cache_dir, threads, device))
    if backend == "auto":
        log(selection.summary())
    runner = selection.runner
    return PlannerSession(spec, runner, load_tokenizer(spec)), str(getattr(runner, "name", backend))


def gpu_preprocessor(spec: ModelSpec, runner: Any, cameras: Sequence[str],
                     warn: Callable[[str], None]) -> Optional[Callable[..., Any]]:
    """The torch preprocessor on the runner's device when the runner takes device tensors (torch);
    None (the Planner's OpenCV one) with a warning for a runner that takes host arrays."""
    device = getattr(runner, "device", None)
    if device is None:
        warn(f"preprocess_on_gpu ignored: {getattr(runner, 'name', 'this backend')} takes host arrays "
             "(only the torch backend reads device tensors); preprocessing on the CPU")
        return None
    from dsdrive_ros.frames.preprocess_torch import TorchPreprocessor
    return TorchPreprocessor.from_spec(spec.image, cameras, device)

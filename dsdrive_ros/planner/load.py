"""What a Planner runs on: the session on the chosen backend."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from dsdrive_ros.runners.session import PlannerSession
    from dsdrive_ros.runners.spec import ModelSpec

__all__ = ["load_session"]


def load_session(spec: ModelSpec, backend: str = "auto", precision: str = "fp32",
                 engine_cache_dir: Optional[str] = None, threads: int = 0) -> tuple[PlannerSession, str]:
    """(PlannerSession, the runner's name) for a ModelSpec on a backend."""
    from dsdrive_ros.runners import PlannerSession, load_tokenizer, make_runner

    runner = make_runner(spec, backend=backend, precision=precision, engine_cache_dir=engine_cache_dir,
                         threads=threads)
    return PlannerSession(spec, runner, load_tokenizer(spec)), str(getattr(runner, "name", backend))

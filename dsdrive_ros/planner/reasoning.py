"""Reasoning text off the planning path: ``ReasoningWorker`` (its own thread, latest request only,
rate-limited, lower CPU priority) and ``LatestSlot``, the one-element mailbox it and the Planner use."""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Generic, Mapping, NamedTuple, Optional, TypeVar

import numpy as np

from .stats import Counters, LatencyStats

__all__ = ["LatestSlot", "ReasoningText", "ReasoningWorker"]

T = TypeVar("T")
_log = logging.getLogger("dsdrive_ros.planner.reasoning")


class LatestSlot(Generic[T]):
    """Single-item mailbox: ``put`` replaces what is waiting (returns True if it replaced)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._has = False
        self._closed = False

    def put(self, item: T) -> bool:
        with self._cond:
            replaced = self._has
            self._item, self._has = item, True
            self._cond.notify()
            return replaced

    def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """The waiting item (removed), or None after ``timeout`` s or when closed."""
        with self._cond:
            if not self._has and not self._closed:
                self._cond.wait(timeout)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            return item

    def clear(self) -> bool:
        with self._cond:
            had, self._item, self._has = self._has, None, False
            return had

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __bool__(self) -> bool:
        return self._has



class ReasoningText(NamedTuple):
    """One generated text: from the frame set stamped ``stamp_ns``, in ``gen_ms`` of wall time."""

    text: str
    stamp_ns: int
    gen_ms: float



class ReasoningWorker:
    """Generates reasoning text in its own thread: latest request only, at most ``max_rate_hz``.

    ``generate(raw, max_tokens) -> str`` is typically ``PlannerSession.reason``; ``on_text(text,
    stamp_ns, gen_ms)`` publishes. A request submitted while generating replaces the waiting one
    (older frames are never explained late).

    ``nice``: the worker thread raises its own niceness by this much (Linux: niceness is per
    thread; elsewhere nothing happens). With the default 10 the scheduler gives the planning
    thread ~10x the CPU share of text generation when both want a core, so reasoning costs
    planning little even on 2 cores. Work that generation hands to a runtime's own thread pool
    (created at model load) is not affected: give the reasoner one intra-op thread.
    """

    def __init__(self, generate: Callable[[Mapping[str, Any], int], str],
                 on_text: Callable[[str, int, float], None], *, max_tokens: int = 64,
                 max_rate_hz: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 on_error: Optional[Callable[[BaseException], None]] = None, nice: int = 10) -> None:
        self._generate = generate
        self._on_text = on_text
        self._on_error = on_error
        self.max_tokens = int(max_tokens)
        self.max_rate_hz = float(max_rate_hz)
        self.nice = int(nice)
        self.enabled = True
        self._clock = clock
        self._slot: LatestSlot[tuple[dict[str, Any], int]] = LatestSlot()
        self._stop = threading.Event()
        self._last_start: Optional[float] = None
        self.latency = LatencyStats()
        self.counters = Counters("texts", "errors", "skipped")
        self.last = ReasoningText("", 0, 0.0)  # replaced as a whole: text and stamp always match
        self._thread = threading.Thread(target=self._run, name="dsdrive-reasoning", daemon=True)

    def start(self) -> "ReasoningWorker":
        self._thread.start()
        return self

    def due(self) -> bool:
        """True when a request submitted now would start without waiting for the rate limit."""
        if not self.enabled:
            return False
        if self._last_start is None or self.max_rate_hz <= 0:
            return True
        return self._clock() - self._last_start >= 1.0 / self.max_rate_hz

    def submit(self, raw: Mapping[str, Any], stamp_ns: int) -> None:
        if not self.enabled or self._stop.is_set():
            return
        # Copy what generation needs: a runner may reuse its output buffers on the next step.
        req = {k: np.array(v, copy=True) for k, v in raw.items() if k == "reasoner_kv"}
        req.update({k: v for k, v in raw.items() if k != "reasoner_kv" and not isinstance(v, np.ndarray)})
        if self._slot.put((req, int(stamp_ns))):
            self.counters.inc("skipped")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _lower_priority(self) -> None:
        """Raise this (the worker) thread's niceness by ``self.nice`` (Linux only; best effort)."""
        if self.nice <= 0 or not sys.platform.startswith("linux"):
            return  # elsewhere PRIO_PROCESS with a thread id would name a process
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
        except (OSError, AttributeError) as exc:
            _log.debug("reasoning thread keeps its priority: %s", exc)

    def _run(self) -> None:
        self._lower_priority()
        while not self._stop.is_set():
            item = self._slot.get(0.2)
            if item is None:
                continue
            if self.max_rate_hz > 0 and self._last_start is not None:
                wait = 1.0 / self.max_rate_hz - (self._clock() - self._last_start)
                if wait > 0:
                    # Wait out the rate limit, but take a newer request if one arrives.
                    if self._stop.wait(wait):
                        return
                    newer = self._slot.get(0)
                    if newer is not None:
                        self.counters.inc("skipped")
                        item = newer
            req, stamp_ns = item
            self._last_start = self._clock()
            try:
                text = self._generate(req, self.max_tokens)
            except Exception as exc:  # noqa: BLE001 - reported, the worker keeps going
                self.counters.inc("errors")
                if self._on_error is not None:
                    self._on_error(exc)
                else:
                    _log.warning("reasoning failed: %s", exc)
                continue
            gen_ms = (self._clock() - self._last_start) * 1000.0
            self.latency.add(gen_ms)
            self.counters.inc("texts")
            self.last = ReasoningText(str(text), int(stamp_ns), gen_ms)
            try:
                self._on_text(str(text), stamp_ns, gen_ms)
            except Exception as exc:  # noqa: BLE001
                self.counters.inc("errors")
                if self._on_error is not None:
                    self._on_error(exc)

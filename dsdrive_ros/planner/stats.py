"""Small thread-safe counters for diagnostics (ROS-free): latency percentiles, arrival rates."""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Deque, Optional

import numpy as np

__all__ = ["LatencyStats", "RateMeter", "Counters"]


class LatencyStats:
    """The last ``window`` samples (ms); p50/p99/max over them."""

    def __init__(self, window: int = 200) -> None:
        self._samples: Deque[float] = collections.deque(maxlen=int(window))
        self._lock = threading.Lock()
        self.total = 0

    def add(self, ms: float) -> None:
        with self._lock:
            self._samples.append(float(ms))
            self.total += 1

    def percentile(self, q: float) -> Optional[float]:
        with self._lock:
            if not self._samples:
                return None
            return float(np.percentile(np.fromiter(self._samples, dtype=np.float64), q))

    @property
    def p50(self) -> Optional[float]:
        return self.percentile(50)

    @property
    def p99(self) -> Optional[float]:
        return self.percentile(99)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._samples)


class RateMeter:
    """Arrivals per second over a sliding window of ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = float(window_s)
        self._clock = clock
        self._times: Deque[float] = collections.deque()
        self._lock = threading.Lock()
        self.total = 0
        self.last: Optional[float] = None

    def tick(self, now: Optional[float] = None) -> None:
        now = self._clock() if now is None else now
        with self._lock:
            self._times.append(now)
            self.total += 1
            self.last = now
            self._trim(now)

    def _trim(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        """Arrivals in the last ``window_s`` seconds / ``window_s`` (Hz)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._trim(now)
            return len(self._times) / self.window_s

    def age(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds since the last arrival, None if nothing arrived yet."""
        with self._lock:
            if self.last is None:
                return None
            return (self._clock() if now is None else now) - self.last


class Counters:
    """Named monotonically increasing counters (thread-safe)."""

    def __init__(self, *names: str) -> None:
        self._lock = threading.Lock()
        self._c: dict[str, int] = {n: 0 for n in names}

    def inc(self, name: str, n: int = 1) -> int:
        with self._lock:
            self._c[name] = self._c.get(name, 0) + int(n)
            return self._c[name]

    def get(self, name: str) -> int:
        with self._lock:
            return self._c.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._c)

"""`dsdrive-replay --clock`: /clock (rosgraph_msgs/Clock) from the bag's timeline.

``PlaybackClock`` (ROS-free) says what time it is in the bag: from the first message on it runs at the
replay's ``rate`` (0.5: half speed), but never past the message that is due next. A replay that
falls behind (a busy machine) therefore holds the clock instead of ageing the inputs that it has
not published yet, and sim time is the same whether the player kept up or not. With ``rate`` 0 (as
fast as the node keeps up) it steps to each published message's time and stands still while the
node works. It never goes backwards.

``ClockPublisher`` publishes it on /clock every 1/``hz`` s from a thread (so the node's sim time
moves between messages), and once more right before each message, like ``ros2 bag play --clock``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

__all__ = ["PlaybackClock", "ClockPublisher", "CLOCK_TOPIC"]

CLOCK_TOPIC = "/clock"


class PlaybackClock:
    def __init__(self, rate: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # (bag ns, monotonic s) when the first message was published: the replay's timeline too
        self._origin: Optional[tuple[int, float]] = None
        self._limit_ns = 0   # the message due next: the clock does not pass it
        self._last_ns: Optional[int] = None

    def hold(self, t_bag_ns: int) -> None:
        """The next message to publish has bag time ``t_bag_ns``: run up to it, not past it."""
        with self._lock:
            if self._last_ns is None:
                self._last_ns = int(t_bag_ns)
            self._limit_ns = max(self._last_ns, int(t_bag_ns))

    def reach(self, t_bag_ns: int) -> int:
        """The message with bag time ``t_bag_ns`` is published now: the clock is at least there."""
        self.hold(t_bag_ns)
        with self._lock:
            if self._origin is None:
                self._origin = (int(t_bag_ns), self._monotonic())
            self._last_ns = max(self._last_ns, int(t_bag_ns))
            return self._last_ns

    def now_ns(self) -> Optional[int]:
        """Bag time now (None before hold() named the first message)."""
        with self._lock:
            if self._origin is None:
                return self._last_ns
            if self.rate > 0:
                t0_bag, t0_mono = self._origin
                running = t0_bag + int((self._monotonic() - t0_mono) * self.rate * 1e9)
                self._last_ns = max(self._last_ns, min(running, self._limit_ns))
            return self._last_ns


class ClockPublisher:
    """/clock from a PlaybackClock: a thread at ``hz``, plus ``publish_at`` before each message."""

    def __init__(self, node: Any, clock: PlaybackClock, hz: float) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._msg_type = Clock
        self.clock = clock
        self._period = 1.0 / max(1e-3, float(hz))
        # rclpy's time source subscribes best effort, depth 1; a reliable publisher matches it too
        self._pub = node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dsdrive-replay-clock", daemon=True)
        self.published = 0

    def _publish(self, t_ns: Optional[int]) -> None:
        if t_ns is None:
            return
        msg = self._msg_type()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        self._pub.publish(msg)
        self.published += 1

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._publish(self.clock.now_ns())
            except Exception:  # noqa: BLE001 - the context is going down
                if self._stop.is_set():
                    return
                raise

    def start(self, first_bag_ns: int) -> None:
        """Clock at the bag's first message (standing), before anything is published."""
        self.clock.hold(first_bag_ns)
        self._publish(self.clock.now_ns())
        self._thread.start()

    def publish_at(self, t_bag_ns: int) -> None:
        self._publish(self.clock.reach(t_bag_ns))

    def subscription_count(self) -> int:
        return self._pub.get_subscription_count()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

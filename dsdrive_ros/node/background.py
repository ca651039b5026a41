"""An rclpy node in its own context, spun by a background thread: the client side of the node for
tools (replay, closed-loop bridge), benchmarks and tests, so several can live in one process. The
one ROS rig: replay, bench/node_rig.py and test/ros_harness.py build on it."""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Optional


class BackgroundNode:
    """``subscribe`` keeps what arrives, by topic. rclpy installs no signal handlers for
    a context of its own: the caller's (e.g. replay's KeyboardInterrupt) stay in place."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.lock = threading.Lock()
        self.msgs: dict[str, list[tuple[float, Any]]] = collections.defaultdict(list)
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._spin_thread = threading.Thread(target=self._spin, daemon=True, name=f"{name}-spin")
        self._spin_thread.start()

    def _spin(self) -> None:
        try:
            while not self._stop.is_set() and self.ctx.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - the context is shut down under us at close
            pass

    # ---- recording ----

    def subscribe(self, topic: str, msg_type: Any, qos: Any = 10, raw: bool = False,
               on_msg: Optional[Callable[[Any], None]] = None) -> Any:
        """Subscribe and keep (monotonic time, message) per topic; ``on_msg`` instead of keeping."""
        def keep(msg: Any) -> None:
            with self.lock:
                self.msgs[topic].append((time.monotonic(), msg))

        return self.node.create_subscription(msg_type, topic, on_msg or keep, qos, raw=raw)

    def got(self, topic: str) -> list[Any]:
        with self.lock:
            return [m for _, m in self.msgs[topic]]

    def clear(self, topic: Optional[str] = None) -> None:
        with self.lock:
            if topic is None:
                self.msgs.clear()
            else:
                self.msgs[topic].clear()

    @staticmethod
    def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(interval)
        return pred()

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._spin_thread.join(2.0)  # before shutdown: spin_once may be inside the wait set
        try:
            self.executor.shutdown(timeout_sec=1.0)
        except Exception:  # noqa: BLE001 - already shut down
            pass
        try:
            self.node.destroy_node()
        except Exception:  # noqa: BLE001 - already destroyed
            pass
        rclpy.try_shutdown(context=self.ctx)

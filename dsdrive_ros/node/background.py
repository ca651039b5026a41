"""An rclpy node in its own context, spun by a background thread: the client side of the node for
tools (closed-loop bridge), benchmarks and tests, so several can live in one process."""
from __future__ import annotations

import threading
import time
from typing import Callable


class BackgroundNode:
    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._spin_thread = threading.Thread(target=self._spin, daemon=True, name=f"{name}-spin")
        self._spin_thread.start()

    def _spin(self) -> None:
        try:
            while self.ctx.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - the context is shut down under us at close
            pass

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

        try:
            self.executor.shutdown(timeout_sec=1.0)
        except Exception:  # noqa: BLE001 - already shut down
            pass
        try:
            self.node.destroy_node()
        except Exception:  # noqa: BLE001 - already destroyed
            pass
        rclpy.try_shutdown(context=self.ctx)
        self._spin_thread.join(2.0)

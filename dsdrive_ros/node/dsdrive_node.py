"""dsdrive_node: cameras + instruction (+ odom) -> dsdrive/path, dsdrive/plan, dsdrive/reasoning
(+ dsdrive/reasoning_stamped), dsdrive/markers (RViz) and, if enabled, dsdrive/debug_image.

A thin rclpy layer over the ROS-free ``dsdrive_ros.planner.Planner``: parameters (node/params.py),
subscriptions, message conversion and publishing (node/wiring.py, shared with the managed
``lifecycle_node``), /diagnostics (node/diagnostics.py). Threads: the executor (callbacks hand
messages to the Planner and never block; /diagnostics timer), planning (newest complete camera set
-> Path + DrivingPlan + MarkerArray) and reasoning (latest-only, rate-limited text; a Path is never
delayed by it).

Bad input never stops the node: the Planner drops or fixes it, counted in /diagnostics with one
throttled WARN line per kind (planner/inputs.py lists the rules). Endpoints with incompatible QoS
(e.g. a best-effort instruction publisher) and camera messages that never reached the callback
(publisher sequence gaps) are logged and counted (node/qos_events.py). A change of the overall
/diagnostics level or reason is logged too. SIGINT/SIGTERM stop it cleanly. Run:
  python -m dsdrive_ros.node.dsdrive_node --ros-args --params-file config/dsdrive.params.yaml \
      -p model_dir:=build/models/random-tiny
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import signal
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from dsdrive_ros.node.memory import keep_freed_image_buffers
from dsdrive_ros.node.params import ConfigError, declare_parameters, load_config
from dsdrive_ros.node.process import STACKS_SIGNAL
from dsdrive_ros.node.topics import NODE_NAME
from dsdrive_ros.node.wiring import LoadedModel, PlannerNodeMixin

__all__ = ["DSDriveNode", "destroyed_on_failure", "main", "run_node"]

# A node that failed to start must exit, so that launch and supervisors see it. If rclpy/DDS teardown
# wedges after the FATAL line, the stacks go to stderr and the process exits with code 1 this much
# later; a wedge in native exit handlers ends by SIGALRM at twice this.
FAILED_START_EXIT_S = 15.0


@contextlib.contextmanager
def destroyed_on_failure(node: Any) -> Iterator[None]:
    """For a node's constructor: a node that fails to start frees its DDS entities now, in order. Left
    to a GC pass after rclpy shutdown, the half-built node's handles can be torn down out of order,
    and the process hung at exit once (rclpy's destroy_node works around the same hang)."""
    try:
        yield
    except BaseException:
        node.stop()
        node.destroy_node()
        raise


class DSDriveNode(PlannerNodeMixin, Node):
    """The plain node: model loaded, subscriptions open and publishing from construction on."""

    def __init__(self, *, node_name: str = NODE_NAME, model: Optional[LoadedModel] = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._planner_init()
        with destroyed_on_failure(self):
            declare_parameters(self)  # ConfigError (bad type / out of range): main() exits 2
            cfg = load_config(self)
            self._build_planner(cfg, model)
            self._open_inputs()
        self._active = True
        self._watch_parameters()


def run_node(make_node: Callable[[], Node], name: str, argv: Optional[Sequence[str]] = None) -> int:
    """A node process's main: rclpy.init, construct, spin until SIGINT/SIGTERM, stop the node's
    threads, exit code (0; 2 for a configuration error, 1 for any other failed start)."""
    args = list(sys.argv if argv is None else argv)
    faulthandler.register(STACKS_SIGNAL, all_threads=True)
    malloc = keep_freed_image_buffers()  # camera images of several MB: no page faults per take
    rclpy.init(args=args)
    rclpy.logging.get_logger(name).info(malloc.reason)
    node: Optional[Node] = None
    try:
        try:
            node = make_node()
        except ConfigError as exc:
            return _failed_start(name, f"configuration error: {exc}", 2)
        except Exception as exc:  # noqa: BLE001 - model load failure etc.: say what and exit
            return _failed_start(name, f"startup failed: {type(exc).__name__}: {exc}", 1)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except RuntimeError:
            # rclpy's signal handler shuts the context down from another thread; landing between
            # spin's context check and its wait-set init, SIGINT/SIGTERM surfaces as RCLError
            # "context is not valid" (ros2/rclpy#1166). A stop, not a failure, once the context is down.
            if executor.context.ok():
                raise
        finally:
            node.get_logger().info("shutting down")
            node.stop()
            executor.shutdown(timeout_sec=1.0)
        return 0
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()


def _failed_start(name: str, message: str, code: int) -> int:
    """Log FATAL and bound what is left of the process. faulthandler's watchdog is a native thread: it
    fires where rclpy teardown holds the GIL, until interpreter finalization cancels it; SIGALRM, left
    at its default action, ends a process whose native exit handlers (DDS factories' static
    destructors) wedge after that."""
    rclpy.logging.get_logger(name).fatal(message)
    faulthandler.dump_traceback_later(FAILED_START_EXIT_S, exit=True)
    signal.alarm(math.ceil(2 * FAILED_START_EXIT_S))
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_node(lambda: DSDriveNode(), NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())

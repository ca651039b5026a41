"""dsdrive_lifecycle_node: the managed (ROS 2 lifecycle) variant of dsdrive_node.

Same topics, parameters, threads and /diagnostics as ``dsdrive_node``: both mix in
``PlannerNodeMixin`` (node/wiring.py); only *when* things happen differs:

  unconfigured  parameters declared (values checked at startup: a bad -p exits 2), nothing else.
  configure     load the model / build the TensorRT engine (the slow part), create the Planner,
                lifecycle publishers (inactive), the /diagnostics timer and the worker threads.
                A failure (missing model, mismatching ONNX, ...) is logged and the transition
                FAILS: the node stays unconfigured and can be configured again.
  activate      activate the publishers, then open the subscriptions: Paths flow.
  deactivate    close the subscriptions (held frames and a waiting set are discarded), then
                deactivate the publishers: nothing is published; /diagnostics says "inactive".
  cleanup       stop the threads, destroy publishers and timer, drop the model.
  shutdown      the same, from any state. Errors in a transition go through on_error: cleanup.

Drive it with the standard services (``<node>/change_state``, ``lifecycle_msgs/srv/ChangeState``),
e.g. ``ros2 lifecycle set /dsdrive_node configure`` then ``activate``, or from a lifecycle manager.
The default node name is ``dsdrive_node`` (the same parameter file applies). Run:
  python -m dsdrive_ros.node.lifecycle_node --ros-args --params-file config/dsdrive.params.yaml \
      -p model_dir:=build/models/random-tiny
"""
from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from dsdrive_ros.node.dsdrive_node import destroyed_on_failure, run_node
from dsdrive_ros.node.topics import NODE_NAME
from dsdrive_ros.node.wiring import LoadedModel, PlannerNodeMixin
from dsdrive_ros.node.params import declare_parameters, load_config

__all__ = ["DSDriveLifecycleNode", "main"]


class DSDriveLifecycleNode(PlannerNodeMixin, LifecycleNode):
    def __init__(self, *, node_name: str = NODE_NAME, model: Optional[LoadedModel] = None,
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._planner_init()
        self._model = model  # preloaded (tests); else loaded by every configure
        with destroyed_on_failure(self):
            declare_parameters(self)  # ConfigError (bad type / out of range): main() exits 2
        self._watch_parameters()
        self._inactive_reason = "unconfigured"
        self.get_logger().info("unconfigured: configure to load the model, activate to plan")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg = load_config(self)
            self._build_planner(cfg, self._model, lifecycle=True)
        except Exception as exc:  # noqa: BLE001 - reported; the node stays unconfigured
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self._teardown_planner()
            return TransitionCallbackReturn.FAILURE
        self._inactive_reason = "lifecycle state inactive: activate to plan"
        self.get_logger().info("configured (inactive)")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # lifecycle publishers first: nothing planned is lost
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        self._active = True
        self._open_inputs()
        self.get_logger().info("active")
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._inactive_reason = "lifecycle state inactive"
        self._close_inputs()
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_planner()
        self._inactive_reason = "unconfigured"
        self.get_logger().info("cleaned up (unconfigured)")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_planner()
        self.get_logger().info("shut down (finalized)")
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in a transition from {state.label}: cleaning up")
        self._teardown_planner()
        self._inactive_reason = "unconfigured"
        return TransitionCallbackReturn.SUCCESS  # -> unconfigured


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_node(lambda: DSDriveLifecycleNode(), NODE_NAME, argv)


if __name__ == "__main__":
    sys.exit(main())

"""QoS profiles of dsdrive_node's topics.

- cameras: SensorData (best effort, keep last 1, volatile) by default — a late frame is worthless,
  never queue. Overridden per topic the ROS 2 way, through rclpy's QoSOverridingOptions:
  ``qos_overrides./camera/front/image_raw.subscription.reliability|depth|history|durability``
  (the topic as resolved: namespace and remapping applied), e.g. reliable when the camera driver only
  offers reliable (a best-effort publisher cannot feed a reliable subscription). The node-wide
  ``qos.reliability`` / ``qos.depth`` parameters are deprecated (a warning) and still set the default
  that the overrides start from, for one release.
- instruction: reliable + transient_local, depth 1 ("latched"): a node started after the route
  planner published still gets the current instruction. The publisher MUST be reliable +
  transient_local: a volatile or best-effort publisher offers less than this subscription requests,
  DDS does not match them and nothing arrives (the node logs it and counts ``qos_incompatible`` in
  /diagnostics; test_faults.py checks both cases).
- odom: best effort keep last 1 (matches both reliable and best-effort publishers).
- outputs: reliable keep last 10, volatile; reasoning and plan the same.
- /diagnostics: reliable keep last 10 (as diagnostic_updater does).
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions, QoSPolicyKind

__all__ = ["camera_qos", "camera_qos_overrides", "deprecated_camera_qos", "describe", "instruction_qos", "odom_qos", "output_qos", "diagnostics_qos"]

_RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
    "system_default": ReliabilityPolicy.SYSTEM_DEFAULT,
}


def camera_qos(reliability: str = "", depth: int = 1) -> QoSProfile:
    qos = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(1, int(depth)),
        reliability=qos_profile_sensor_data.reliability,
        durability=DurabilityPolicy.VOLATILE,
    )
    if reliability:
        qos.reliability = _RELIABILITY[reliability]
    return qos


def camera_qos_overrides() -> QoSOverridingOptions:
    """The qos_overrides.<topic>.subscription.* parameters a camera subscription declares."""
    return QoSOverridingOptions([QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH,
                                 QoSPolicyKind.RELIABILITY, QoSPolicyKind.DURABILITY])


def deprecated_camera_qos(reliability: str, depth: int, topic: str) -> str:
    """The warning for the deprecated qos.reliability / qos.depth parameters ('' = not set)."""
    used = [f"{name}:={value}" for name, value, default in
            (("qos.reliability", reliability, ""), ("qos.depth", depth, 1)) if value != default]
    if not used:
        return ""
    return (f"parameter(s) {', '.join(used)} are deprecated and will be removed in the next release; "
            f"they are honoured as the default of every camera subscription. Use the standard "
            f"per-topic overrides instead, e.g. -p qos_overrides.{topic}.subscription.reliability:=reliable "
            f"-p qos_overrides.{topic}.subscription.depth:=5")


def describe(qos: QoSProfile) -> str:
    """'reliable, keep_last 5, volatile': a profile as /diagnostics reports it (DDS discovery does not
    carry history/depth, so the graph cannot tell another process a subscription's depth)."""
    history = qos.history.name.lower() + (f" {qos.depth}" if qos.history == HistoryPolicy.KEEP_LAST else "")
    return f"{qos.reliability.name.lower()}, {history}, {qos.durability.name.lower()}"


def instruction_qos() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def odom_qos() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def output_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def diagnostics_qos() -> QoSProfile:
    return output_qos(10)

"""QoS profiles of dsdrive_node's topics.

- cameras: SensorData (best effort, keep last 1, volatile) by default — a late frame is worthless,
  never queue; ``qos.reliability`` / ``qos.depth`` override (e.g. reliable when the camera driver
  only offers reliable: a best-effort publisher cannot feed a reliable subscription).
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

__all__ = ["camera_qos", "instruction_qos", "odom_qos", "output_qos", "diagnostics_qos"]

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

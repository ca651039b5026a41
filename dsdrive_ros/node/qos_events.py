"""What the node learns from DDS about its endpoints (rclpy): incompatible QoS on either side, and
camera messages that never reached the callback (gaps in the publisher's sequence numbers).
Mixed into the node (``PlannerNodeMixin``); both are logged and counted in /diagnostics."""
from __future__ import annotations

from typing import Any, Callable

from dsdrive_ros.node.topics import TOPICS

__all__ = ["QosEventsMixin"]


class QosEventsMixin:
    """Subscriptions and publishers with QoS event callbacks. Needs ``self.planner`` (counters,
    log) once built, ``self._built``, ``self._input_group`` and rclpy's Node methods."""

    _qos_last: str = ""

    def _subscribe(self, msg_type: Any, topic: str, cb: Callable[..., None], qos: Any,
                   overrides: Any = None) -> Any:
        """``overrides``: QoSOverridingOptions; rclpy applies the qos_overrides.* parameters to
        ``qos`` in place, so the incompatible-QoS report shows the QoS in effect."""
        from rclpy.event_handler import SubscriptionEventCallbacks

        def incompatible(info: Any) -> None:
            self._on_incompatible_qos(topic, "publisher", qos, info)

        return self.create_subscription(
            msg_type, topic, cb, qos, callback_group=self._input_group,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible),
            qos_overriding_options=overrides)

    def _pub_events(self, topic: str, qos: Any) -> Any:
        from rclpy.event_handler import PublisherEventCallbacks

        return PublisherEventCallbacks(
            incompatible_qos=lambda info: self._on_incompatible_qos(topic, "subscription", qos, info))

    def _on_incompatible_qos(self, topic: str, other: str, qos: Any, info: Any) -> None:
        from rclpy.qos import qos_policy_name_from_kind

        policy = qos_policy_name_from_kind(info.last_policy_kind)
        ours = (f"reliability={qos.reliability.name.lower()}, durability={qos.durability.name.lower()}")
        if other == "publisher":
            what = (f"a publisher on '{topic}' offers QoS incompatible with this node's subscription "
                    f"({ours}); policy {policy}: none of its messages will arrive")
        else:
            what = (f"a subscription on '{topic}' requests QoS incompatible with this node's publisher "
                    f"({ours}); policy {policy}: it will receive nothing")
        hint = ""
        if topic == TOPICS["instruction"]:
            hint = (" - publish the instruction reliable + transient_local (latched), e.g. "
                    "`ros2 topic pub --qos-reliability reliable --qos-durability transient_local`")
        elif topic.startswith("camera/"):
            hint = (f" - set -p qos_overrides.{self.resolve_topic_name(topic)}.subscription.reliability"
                    ":=<the publisher's>")
        if self._built:
            self.planner.counters.inc("qos_incompatible", max(1, int(getattr(info, "total_count_change", 1))))
        self._qos_last = f"{topic}: {policy}"
        self.get_logger().warning(what + hint)

    def _seq_gap_counter(self, camera: str) -> Callable[[Any], None]:
        """Counts camera messages that never reached the callback, from the publisher's sequence
        numbers (rmw message info): lost in transport or replaced in the subscription's keep-last
        queue (its depth) because the executor fell behind. Neither is visible otherwise."""
        last: dict[bytes, int] = {}
        counters, log = self.planner.counters, self.planner.log

        def on_info(info: Any) -> None:
            seq = info.get("publication_sequence_number")
            gid = info.get("publisher_gid")
            if seq is None or not gid:
                return
            key = bytes(gid.get("data", b""))
            prev = last.get(key)
            if prev is None and len(last) >= 64:
                last.clear()
            last[key] = seq
            if prev is not None and seq > prev + 1:
                n = seq - prev - 1
                counters.inc("transport_lost", n)
                counters.inc(f"transport_lost.{camera}", n)
                log.warn(f"lost:{camera}", f"camera {camera}: {n} message(s) never reached the node "
                                           "(lost in transport or replaced in the subscription queue: "
                                           "the node fell behind)")

        return on_info

"""The ROS 2 layer (rclpy) over the ROS-free ``dsdrive_ros.planner``: ``dsdrive_node`` (the plain node,
``run_node``) and ``lifecycle_node`` (the managed one) share ``wiring`` (subscriptions -> Planner ->
publishers); ``qos`` and ``qos_events`` (profiles, incompatible-QoS and sequence-gap reports),
``diagnostics`` (levels decided ROS-free, then DiagnosticArray), ``params`` (the parameter table),
``topics`` (names), ``background`` (an rclpy node spun in a thread: tools, benches, tests),
``process`` (how tools and tests start the node). Nothing is imported here so the ROS-free modules
stay importable."""

"""dsdrive_node (rclpy) and its ROS-free pieces: ``core`` (sync, keep-latest, planning, reasoning
worker), ``params`` (parameter table), ``diagnostics`` (levels), ``stats``; ``qos`` and
``dsdrive_node`` import rclpy. Nothing is imported here so the ROS-free modules stay importable."""

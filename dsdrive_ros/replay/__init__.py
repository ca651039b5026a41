"""dsdrive-replay: a rosbag2 bag through the real node, outputs recorded, report written.

``cli`` (rclpy: publishes the bag, starts/stops the node, records), ``report`` and ``bagio``
(ROS-free, `rosbags`). Nothing is imported here so ``report`` works without rclpy.
"""

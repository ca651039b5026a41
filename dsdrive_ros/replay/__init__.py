"""dsdrive-replay: a rosbag2 bag through the real node, outputs recorded, report written.

``cli`` (rclpy, on ``node.background.BackgroundNode``: publishes the bag, starts/stops the node),
``recorder`` (the node's outputs into a bag), ``clock`` (/clock from the bag), ``report`` and
``bagio`` (ROS-free, `rosbags`). Nothing is imported here so ``report`` works without rclpy.
"""

"""DSDrive on ROS 2: a ROS-free core (frames, model, runners, outputs) under a thin rclpy layer."""

__version__ = "0.1.0"

"""Where model outputs become messages: ``parse`` (ROS-free) and ``fill`` (needs ROS message types).

Only ``parse`` is imported here so that ``import dsdrive_ros.outputs`` works without rclpy.
"""

from dsdrive_ros.outputs.parse import PlanOutput, PlanParseError, parse_plan, waypoint_times

__all__ = ["PlanOutput", "PlanParseError", "parse_plan", "waypoint_times"]

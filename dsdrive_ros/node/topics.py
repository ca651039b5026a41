"""The node's topic names (relative: they follow the node's namespace and remappings). ROS-free."""
from __future__ import annotations

NODE_NAME = "dsdrive_node"
TOPICS = {
    "path": "dsdrive/path",
    "plan": "dsdrive/plan",
    "reasoning": "dsdrive/reasoning",
    "reasoning_stamped": "dsdrive/reasoning_stamped",
    "markers": "dsdrive/markers",
    "debug_image": "dsdrive/debug_image",
    "diagnostics": "/diagnostics",
    "instruction": "instruction",
    "odom": "odom",
}


def camera_topic(name: str, transport: str = "raw") -> str:
    base = f"camera/{name}/image_raw"
    return base + "/compressed" if transport == "compressed" else base

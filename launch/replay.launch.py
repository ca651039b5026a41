"""Replay a rosbag2 bag through dsdrive_node on a full ROS 2 install (ros2 bag, launch_ros).

    ros2 launch dsdrive_ros replay.launch.py bag:=/data/drive_0001 record:=/tmp/dsdrive_out

Plays the bag with --clock, runs the node (dsdrive.launch.py) with use_sim_time:=true and,
if `record` is set, records the node's outputs into that bag folder. Without a ROS install
(PyPI wheels only) use the `dsdrive-replay` command instead, which needs no launch/ros2 CLI.

    ros2 launch dsdrive_ros replay.launch.py bag:=/data/drive_0001 rviz:=true

Arguments: bag (required), rate (1.0), start_delay_s (2.0: lets the node load its model and
subscribe before the bag starts), record ('' = do not record), rviz (false: start rviz2 with
rviz_config, default share/dsdrive_ros/config/dsdrive.rviz), dds_profile (the Fast DDS profile of
the player, recorder and node; see dsdrive.launch.py), plus all of dsdrive.launch.py's arguments
(namespace, params_file, model_dir, camera_topic_prefix, every node parameter, ...).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription,
                            OpaqueFunction, TimerAction)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dsdrive_ros"
NODE_LAUNCH = "dsdrive.launch.py"
RVIZ_CONFIG = os.path.join("config", "dsdrive.rviz")
DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
# What the node publishes (relative to its namespace) and /diagnostics.
OUTPUT_TOPICS = ("dsdrive/path", "dsdrive/plan", "dsdrive/reasoning", "/diagnostics")


def _bag_processes(context, *args, **kwargs):
    bag = LaunchConfiguration("bag").perform(context)
    if not bag:
        raise RuntimeError("replay.launch.py: set bag:=<rosbag2 folder or .mcap file>")
    rate = LaunchConfiguration("rate").perform(context)
    delay = float(LaunchConfiguration("start_delay_s").perform(context))
    record = LaunchConfiguration("record").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context).strip("/")
    # The bag player publishes the images: its shared memory must hold them (config/fastdds_large_data.xml).
    profile = LaunchConfiguration("dds_profile").perform(context)
    env = {DDS_PROFILE_ENV: profile} if profile else {}

    actions = []
    if record:
        topics = [t if t.startswith("/") or not namespace else f"/{namespace}/{t}"
                  for t in OUTPUT_TOPICS]
        actions.append(ExecuteProcess(
            cmd=["ros2", "bag", "record", "--use-sim-time", "-o", record] + topics,
            additional_env=env, output="screen"))
    play = ExecuteProcess(cmd=["ros2", "bag", "play", bag, "--clock", "--rate", rate],
                          additional_env=env, output="screen")
    actions.append(TimerAction(period=delay, actions=[play]))
    return actions


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    node_launch = os.path.join(share, "launch", NODE_LAUNCH)
    arguments = [
        DeclareLaunchArgument("bag", default_value="", description="rosbag2 to play (required)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("start_delay_s", default_value="2.0",
                              description="seconds between node start and playback"),
        DeclareLaunchArgument("record", default_value="",
                              description="output bag folder for the node's topics ('' = none)"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "dsdrive.params.yaml"),
            description="dsdrive_node parameter file"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2"),
        DeclareLaunchArgument("rviz_config", default_value=os.path.join(share, RVIZ_CONFIG),
                              description="rviz2 display config"),
        DeclareLaunchArgument(
            "dds_profile",
            default_value=os.environ.get(DDS_PROFILE_ENV)
            or os.path.join(share, "config", "fastdds_large_data.xml"),
            description="Fast DDS XML profile of the player, recorder and node ('' = none)"),
    ]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(node_launch),
        launch_arguments={
            "use_sim_time": "true",
            "namespace": LaunchConfiguration("namespace"),
            "params_file": LaunchConfiguration("params_file"),
            "dds_profile": LaunchConfiguration("dds_profile"),
        }.items(),
    )
    rviz = Node(package="rviz2", executable="rviz2", name="rviz2",
                arguments=["-d", LaunchConfiguration("rviz_config")],
                parameters=[{"use_sim_time": True}], output="screen",
                condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription(arguments + [node, rviz, OpaqueFunction(function=_bag_processes)])

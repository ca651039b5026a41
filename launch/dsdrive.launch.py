"""Launch dsdrive_node on a vehicle / a full ROS 2 install (launch and launch_ros needed).

    ros2 launch dsdrive_ros dsdrive.launch.py model_dir:=/opt/models/dsdrive-tiny \
        namespace:=ego front_image_topic:=/sensors/cam_front/image_raw

Arguments:
  namespace          ROS namespace of the node and of its relative topics ('' = none)
  params_file        parameter file (default: share/dsdrive_ros/config/dsdrive.params.yaml)
  model_dir          exported model directory; '' keeps the params file's value
                     (default: share/dsdrive_ros/models/dsdrive-tiny)
  use_sim_time       'true' when replaying a bag with --clock
  log_level          debug | info | warn | error
  <cam>_image_topic  where camera <cam> publishes (cameras: front, left, right, rear);
                     the node subscribes camera/<cam>/image_raw (and .../compressed)
  instruction_topic  std_msgs/String navigation instruction
  odom_topic         nav_msgs/Odometry (ego speed)
  dds_profile        Fast DDS XML profile of the node's process (default: $FASTDDS_DEFAULT_PROFILES_FILE,
                     else share/dsdrive_ros/config/fastdds_large_data.xml: shared memory with room
                     for camera images; export it for the camera drivers too); '' = none

Outputs (relative to namespace): dsdrive/path, dsdrive/plan, dsdrive/reasoning, /diagnostics.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dsdrive_ros"
EXECUTABLE = "dsdrive_node"
NODE_NAME = "dsdrive_node"  # the key in config/dsdrive.params.yaml
PARAMS_FILE = os.path.join("config", "dsdrive.params.yaml")
DDS_PROFILE = os.path.join("config", "fastdds_large_data.xml")
DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
DEFAULT_MODEL = os.path.join("models", "dsdrive-tiny")
# The model's default camera order (config.json "cameras"); one remap argument each.
CAMERAS = ("front", "left", "right", "rear")


def _node(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    parameters = [arg("params_file"), {"use_sim_time": arg("use_sim_time").lower() == "true"}]
    if arg("model_dir"):
        parameters.append({"model_dir": arg("model_dir")})

    remappings = [("instruction", arg("instruction_topic")), ("odom", arg("odom_topic"))]
    for cam in CAMERAS:
        topic = arg(f"{cam}_image_topic")
        remappings.append((f"camera/{cam}/image_raw", topic))
        remappings.append((f"camera/{cam}/image_raw/compressed", f"{topic}/compressed"))

    profile = arg("dds_profile")
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=arg("namespace"),
            parameters=parameters,
            remappings=remappings,
            arguments=["--ros-args", "--log-level", arg("log_level")],
            additional_env={DDS_PROFILE_ENV: profile} if profile else {},
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(share, PARAMS_FILE),
            description="dsdrive_node parameter file"),
        DeclareLaunchArgument(
            "model_dir", default_value=os.path.join(share, DEFAULT_MODEL),
            description="exported model directory ('' = the params file's model_dir)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (bag replay)"),
        DeclareLaunchArgument("log_level", default_value="info", description="ROS log level"),
        DeclareLaunchArgument(
            "dds_profile", default_value=os.environ.get(DDS_PROFILE_ENV) or os.path.join(share, DDS_PROFILE),
            description="Fast DDS XML profile ('' = none): shared memory sized for camera images"),
        DeclareLaunchArgument("instruction_topic", default_value="instruction",
                              description="std_msgs/String navigation instruction"),
        DeclareLaunchArgument("odom_topic", default_value="odom",
                              description="nav_msgs/Odometry for ego speed"),
    ]
    for cam in CAMERAS:
        arguments.append(DeclareLaunchArgument(
            f"{cam}_image_topic", default_value=f"camera/{cam}/image_raw",
            description=f"sensor_msgs/Image topic of the {cam} camera"))
    return LaunchDescription(arguments + [OpaqueFunction(function=_node)])

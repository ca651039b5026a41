"""Launch dsdrive_node: cameras from the model's config.json, every node parameter an argument.

    ros2 launch dsdrive_ros dsdrive.launch.py model_dir:=/opt/models/dsdrive-tiny namespace:=ego \
        camera_topic_prefix:=/sensors front_image_topic:=/sensors/cam_front/image_raw

Arguments:
  namespace            ROS namespace of the node and of its relative topics ('' = none)
  params_file          parameter file (default: share/dsdrive_ros/config/dsdrive.params.yaml)
  model_dir            exported model directory; '' keeps the params file's value
                       (default: share/dsdrive_ros/models/dsdrive-tiny)
  use_sim_time         'true' when /clock comes from a bag replay or a simulator
  log_level            debug | info | warn | error
  camera_topic_prefix  camera <name> is read from <prefix>/<name>/image_raw (and .../compressed);
                       default 'camera' (relative: under the namespace)
  <name>_image_topic   one camera's topic, over the prefix (not declared: the cameras are the
                       model's, read from its config.json when the launch runs; any count, any names)
  instruction_topic    std_msgs/String navigation instruction
  odom_topic           nav_msgs/Odometry (ego speed)
  dds_profile          Fast DDS XML profile of the node's process (default: $FASTDDS_DEFAULT_PROFILES_FILE,
                       else share/dsdrive_ros/config/fastdds_large_data.xml: shared memory with room
                       for camera images; export it for the camera drivers too); '' = none
  <parameter>          every node parameter (dsdrive_ros.node.params, e.g. stale_after_ms:=800.0,
                       reasoning.enabled:=false, cameras:=[a, b]); '' (default) keeps the params
                       file's value. cameras defaults to the model's.

Outputs (relative to namespace): dsdrive/path, dsdrive/plan, dsdrive/reasoning, /diagnostics.
"""
import json
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

from dsdrive_ros.node.params import PARAMS, ParamSpec

PACKAGE = "dsdrive_ros"
EXECUTABLE = "dsdrive_node"
NODE_NAME = "dsdrive_node"  # the key in config/dsdrive.params.yaml
PARAMS_FILE = os.path.join("config", "dsdrive.params.yaml")
DDS_PROFILE = os.path.join("config", "fastdds_large_data.xml")
DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
DEFAULT_MODEL = os.path.join("models", "dsdrive-tiny")
# Launch arguments of their own (model_dir too: its default is the shipped model, not '').
OWN = {"model_dir"}


def _typed(spec: ParamSpec, text: str):
    """A launch argument's text as the parameter's type (ROS 2 parameters are strictly typed)."""
    if spec.type_name == "string_array":
        value = yaml.safe_load(text)
        return [str(v) for v in (value if isinstance(value, list) else [value])]
    if isinstance(spec.default, bool):
        return yaml.safe_load(text) is True
    if isinstance(spec.default, (int, float)):
        return type(spec.default)(yaml.safe_load(text))
    return text


def _model_dir(args: dict, params_file: str) -> str:
    if args["model_dir"]:
        return args["model_dir"]
    with open(params_file) as f:
        sections = yaml.safe_load(f) or {}
    for key in (NODE_NAME, f"/{NODE_NAME}", "/**"):
        value = (sections.get(key) or {}).get("ros__parameters", {}).get("model_dir")
        if value:
            return value
    raise RuntimeError(f"dsdrive.launch.py: no model_dir (argument empty and none in {params_file})")


def _node(context, *args, **kwargs):
    cfg = context.launch_configurations
    params_file = cfg["params_file"]
    model_dir = _model_dir(cfg, params_file)
    try:
        with open(os.path.join(model_dir, "config.json")) as f:
            cameras = list(json.load(f)["cameras"])
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"dsdrive.launch.py: no camera list in {model_dir}/config.json "
                           f"(model_dir: an exported model directory): {exc!r}") from None

    overrides = {"use_sim_time": cfg["use_sim_time"].lower() == "true", "model_dir": model_dir,
                 "cameras": cameras}
    overrides.update({p.name: _typed(p, cfg[p.name]) for p in PARAMS if p.name not in OWN and cfg[p.name]})

    prefix = cfg["camera_topic_prefix"].rstrip("/")
    remappings = [("instruction", cfg["instruction_topic"]), ("odom", cfg["odom_topic"])]
    for cam in cameras:
        topic = cfg.get(f"{cam}_image_topic") or f"{prefix}/{cam}/image_raw"
        remappings.append((f"camera/{cam}/image_raw", topic))
        remappings.append((f"camera/{cam}/image_raw/compressed", f"{topic}/compressed"))

    profile = cfg["dds_profile"]
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=cfg["namespace"],
            parameters=[params_file, overrides],
            remappings=remappings,
            arguments=["--ros-args", "--log-level", cfg["log_level"]],
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
                              description="use /clock (bag replay, simulator)"),
        DeclareLaunchArgument("log_level", default_value="info", description="ROS log level"),
        DeclareLaunchArgument("camera_topic_prefix", default_value="camera",
                              description="cameras on <prefix>/<name>/image_raw (<name>_image_topic "
                                          "overrides one)"),
        DeclareLaunchArgument(
            "dds_profile", default_value=os.environ.get(DDS_PROFILE_ENV) or os.path.join(share, DDS_PROFILE),
            description="Fast DDS XML profile ('' = none): shared memory sized for camera images"),
        DeclareLaunchArgument("instruction_topic", default_value="instruction",
                              description="std_msgs/String navigation instruction"),
        DeclareLaunchArgument("odom_topic", default_value="odom",
                              description="nav_msgs/Odometry for ego speed"),
    ]
    arguments += [DeclareLaunchArgument(p.name, default_value="",
                                        description=f"{p.description} ('' = the params file's)")
                  for p in PARAMS if p.name not in OWN]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node)])

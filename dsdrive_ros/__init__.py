"""DSDrive on ROS 2: a ROS-free core (frames, model, runners, outputs) under a thin rclpy layer."""

# The colcon install holds a second `dsdrive_ros` (our modules + the generated `msg`): merge the two
# so a source checkout on sys.path still finds `dsdrive_ros.msg`.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"

"""pip packaging of the ROS-free parts of dsdrive_ros (model, export, runners, training, sim).

`pip install .` works on a machine without ROS: rclpy and the message packages are not
requirements (the node, replay and the DrivingPlan message come from the colcon build, see
CMakeLists.txt and the Makefile). On a ROS machine the colcon build is the way to install.
"""
import os

from setuptools import find_namespace_packages, setup

# build/ is colcon's build base: keep setuptools' temporary tree (and egg-info) in build/pip.
_HERE = os.path.dirname(os.path.abspath(__file__))
_BUILD_BASE = os.path.join("build", "pip")
os.makedirs(os.path.join(_HERE, _BUILD_BASE), exist_ok=True)

setup(
    name="dsdrive_ros",
    version="0.1.0",
    description="DSDrive end-to-end driving model: PyTorch model, ONNX export, runtimes, "
    "SUMO simulation and training, plus the ROS 2 node (built with colcon)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_namespace_packages(
        include=["dsdrive_ros", "dsdrive_ros.*"],
        exclude=["*.__pycache__", "*.__pycache__.*"],
    ),
    include_package_data=True,
    package_data={"": ["*.json", "*.yaml", "*.txt", "*.xml", "*.sumocfg"]},
    install_requires=[
        # torch: install the CPU build first where wanted; a plain `pip install torch` from
        # PyPI is a multi-GB CUDA build.
        "torch>=2.4",
        "numpy>=1.26",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "onnxscript>=0.1",
        "safetensors>=0.4",
        "tokenizers>=0.19",
        "tqdm>=4.60",
        "matplotlib>=3.8",
        "opencv-python-headless>=4.9",
        "rosbags>=0.10",
        "transforms3d>=0.4",
        "PyYAML>=6.0",  # training configs
    ],
    extras_require={
        "sim": ["eclipse-sumo>=1.20", "libsumo>=1.20", "sumolib>=1.20", "traci>=1.20"],
        "test": ["pytest>=8", "pytest-timeout>=2.3"],
    },
    options={"build": {"build_base": _BUILD_BASE}, "egg_info": {"egg_base": _BUILD_BASE}},
    entry_points={
        "console_scripts": [
            "dsdrive-train = dsdrive_ros.train.cli:main",
            "dsdrive-eval = dsdrive_ros.sim.eval_cli:main",
            "dsdrive-replay = dsdrive_ros.replay.cli:main",
            "dsdrive-export = dsdrive_ros.export.cli:main",
            "dsdrive-dagger = dsdrive_ros.train.dagger_chain:main",
        ],
    },
)

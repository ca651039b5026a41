"""Shared pytest setup for dsdrive_ros.

Run the suite through `make test` (or after `. scripts/ros_env.sh`): that sources the colcon
install (dsdrive_ros.msg), puts the venv first on PATH and sets HOME/ROS_LOG_DIR/Fast DDS.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsdrive_ros.node.process import MAX_ROS_DOMAIN_ID

REPO_ROOT = Path(__file__).resolve().parents[1]


# ROS 2 domain ids go up to 232. Each test process (pytest-xdist workers included) gets its
# own, so concurrent test runs on one machine never see each other's nodes; subprocesses that a
# test starts inherit it. Domain 0 (everyone's default) is never used.
# DSDRIVE_TEST_ROS_DOMAIN_ID pins it instead (debugging against a live system).
def _test_domain_id() -> int:
    pinned = os.environ.get("DSDRIVE_TEST_ROS_DOMAIN_ID")
    if pinned:
        return int(pinned)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    worker_index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return 1 + (os.getpid() + 7 * worker_index) % MAX_ROS_DOMAIN_ID


# Set at import time: before any test (or fixture) calls rclpy.init().
os.environ["ROS_DOMAIN_ID"] = str(_test_domain_id())
# What scripts/ros_env.sh sets, for in-process rclpy when pytest is started by hand.
# (LD_LIBRARY_PATH / PYTHONPATH for dsdrive_ros.msg cannot be fixed from here.)
if not os.environ.get("HOME"):
    os.environ["HOME"] = str(REPO_ROOT / "log" / "home")
    os.makedirs(os.environ["HOME"], exist_ok=True)
os.environ.setdefault("ROS_LOG_DIR", str(REPO_ROOT / "log" / "ros"))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds_large_data.xml"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


def pytest_configure(config: pytest.Config) -> None:
    # rclpy's first create_publisher imports lark (rosidl parser), which imports the deprecated
    # sre_parse/sre_constants modules: harmless, and not ours.
    for line in (
        "ignore:module 'sre_parse' is deprecated:DeprecationWarning",
        "ignore:module 'sre_constants' is deprecated:DeprecationWarning",
        "ignore::DeprecationWarning:lark",
        "ignore::DeprecationWarning:lark.*",
    ):
        config.addinivalue_line("filterwarnings", line)


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} "
        f"DSDRIVE_TEST_MODEL_DIR={os.environ.get('DSDRIVE_TEST_MODEL_DIR', '(unset)')}"
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """An exported model directory (planner.onnx, reasoner.onnx, config.json, tokenizer.json).

    `make test` sets DSDRIVE_TEST_MODEL_DIR to $(MODEL_DIR) (a random-weight tiny export until a
    trained model is shipped in models/dsdrive-tiny).
    """
    value = os.environ.get("DSDRIVE_TEST_MODEL_DIR")
    if not value:
        pytest.skip(
            "DSDRIVE_TEST_MODEL_DIR is unset: run `make test`, or `make model` and set it to the "
            "exported model directory (e.g. build/models/random-tiny)"
        )
    path = Path(value).resolve()
    if not (path / "config.json").is_file():
        pytest.fail(f"DSDRIVE_TEST_MODEL_DIR={value} holds no config.json (run `make model`)")
    return path

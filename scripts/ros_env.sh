# shellcheck shell=bash
# The one definition of the environment dsdrive_ros needs at run time and in tests.
# Source it from the repository root or anywhere (bash; from sh/dash set DSDRIVE_ROOT first):
#     . scripts/ros_env.sh
# Used by the Makefile (build, demo, test), by .ci/run through `make test`, and by humans.
# Safe under `set -u` (install/setup.sh is not, so -u is lifted around it).

if [ -z "${DSDRIVE_ROOT:-}" ]; then
  if [ -n "${BASH_SOURCE:-}" ]; then
    DSDRIVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  else
    DSDRIVE_ROOT="$(pwd)"
  fi
fi
export DSDRIVE_ROOT
DSDRIVE_VENV="${DSDRIVE_VENV:-$DSDRIVE_ROOT/.venv}"
export DSDRIVE_VENV

# rcl logging fails to initialise without HOME (or ROS_LOG_DIR).
if [ -z "${HOME:-}" ] || [ ! -w "${HOME:-/nonexistent}" ]; then
  export HOME="$DSDRIVE_ROOT/log/home"
  mkdir -p "$HOME"
fi
export ROS_LOG_DIR="${ROS_LOG_DIR:-$DSDRIVE_ROOT/log/ros}"
mkdir -p "$ROS_LOG_DIR"

# Fast DDS is the only RMW the wheels carry. Its profile gives shared memory a 64 MiB segment:
# with the default 512 KiB one (and under every FASTDDS_BUILTIN_TRANSPORTS setting) most raw camera
# images lost fragments between processes (config/fastdds_large_data.xml says more). Discovery stays
# on this host.
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$DSDRIVE_ROOT/config/fastdds_large_data.xml}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"

# The venv's interpreter first (installed scripts and "#!/usr/bin/env python3" need rclpy).
if [ -d "$DSDRIVE_VENV/bin" ]; then
  export VIRTUAL_ENV="$DSDRIVE_VENV"
  case ":$PATH:" in
    *":$DSDRIVE_VENV/bin:"*) ;;
    *) export PATH="$DSDRIVE_VENV/bin:$PATH" ;;
  esac
  # The ROS wheels install their share/ and CMake configs into the venv prefix.
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$DSDRIVE_VENV:"*) ;;
    *) export AMENT_PREFIX_PATH="$DSDRIVE_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
  case ":${CMAKE_PREFIX_PATH:-}:" in
    *":$DSDRIVE_VENV:"*) ;;
    *) export CMAKE_PREFIX_PATH="$DSDRIVE_VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;;
  esac
fi

# Our colcon install (dsdrive_ros.msg, executables, share/): PYTHONPATH, PATH,
# LD_LIBRARY_PATH, AMENT_PREFIX_PATH. Absent before the first `make build`;
# DSDRIVE_NO_INSTALL=1 leaves it out (the build itself runs that way).
if [ -z "${DSDRIVE_NO_INSTALL:-}" ] && [ -f "$DSDRIVE_ROOT/install/setup.sh" ]; then
  case $- in *u*) _dsdrive_had_u=1; set +u ;; *) _dsdrive_had_u= ;; esac
  COLCON_CURRENT_PREFIX="$DSDRIVE_ROOT/install"
  # shellcheck disable=SC1091
  . "$DSDRIVE_ROOT/install/setup.sh"
  unset COLCON_CURRENT_PREFIX
  if [ -n "$_dsdrive_had_u" ]; then set -u; fi
  unset _dsdrive_had_u
fi

# Upstream launch + launch_ros (../shared/vendor/ros2-launch, beside the clone) for the launch
# tests, where the PyPI wheels have none: after everything above, so that a ROS 2 install's own
# launch comes first. composition_interfaces (launch_ros needs it) is built by `make launch-support`.
DSDRIVE_LAUNCH_VENDOR="${DSDRIVE_LAUNCH_VENDOR:-$DSDRIVE_ROOT/../shared/vendor/ros2-launch}"
if [ -d "$DSDRIVE_LAUNCH_VENDOR/launch_ros_repo" ]; then
  for _dsdrive_p in launch launch_xml launch_yaml launch_ros_repo/launch_ros; do
    case ":${PYTHONPATH:-}:" in
      *":$DSDRIVE_LAUNCH_VENDOR/$_dsdrive_p:"*) ;;
      *) export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$DSDRIVE_LAUNCH_VENDOR/$_dsdrive_p" ;;
    esac
  done
  unset _dsdrive_p
fi

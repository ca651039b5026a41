"""dsdrive_node in its own process: how the replay tool, the closed-loop harness, tests and
benchmarks start the real node (one definition of the command line and its environment)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence


MAX_ROS_DOMAIN_ID = 232  # Fast DDS maps the domain id to UDP ports; 232 is the last that fits
# `kill -USR1 <pid>` makes a running dsdrive_node write every thread's Python stack to its stderr
# (faulthandler) and run on: where a wedged node is stuck.
STACKS_SIGNAL = signal.SIGUSR1
STACKS_WAIT_S = 1.0


# Fast DDS reads its XML profile from this variable when a process creates its first participant.
DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def _config_file(name: str) -> Optional[Path]:
    """config/<name>: the installed share copy, else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        p = Path(get_package_share_directory("dsdrive_ros")) / "config" / name
        if p.is_file():
            return p
    except Exception:  # noqa: BLE001 - no ament index (pip install): fall back to the source tree
        pass
    p = Path(__file__).resolve().parents[2] / "config" / name
    return p if p.is_file() else None


def default_params_file() -> Optional[Path]:
    """config/dsdrive.params.yaml: the installed share copy, else the source tree's."""
    return _config_file("dsdrive.params.yaml")


def dds_profile() -> Optional[Path]:
    """config/fastdds_large_data.xml: Fast DDS shared memory with room for camera images (the
    default 512 KiB segment loses most raw frames larger than it; see the file)."""
    return _config_file("fastdds_large_data.xml")


def use_dds_profile() -> Optional[str]:
    """Select the shipped Fast DDS profile for this process and the nodes it starts, unless the
    environment already names one. Call before rclpy.init. Returns the profile in effect."""
    profile = dds_profile()
    if profile is not None:
        os.environ.setdefault(DDS_PROFILE_ENV, str(profile))
    return os.environ.get(DDS_PROFILE_ENV)


def private_domain(domain_id: Optional[int] = None) -> int:
    """Put this process, and every node it starts from now on, on a ROS domain of its own (from the
    pid unless given). A tool that starts its own node must not hear another run's cameras, odometry,
    instructions or plans: two replays or evaluations on one machine would otherwise drive each other's
    node. Call before rclpy.init."""
    if domain_id is None:
        d = 1 + (os.getpid() * 13 + 101) % MAX_ROS_DOMAIN_ID
        if str(d) == os.environ.get("ROS_DOMAIN_ID"):  # never the shared one this shell is on
            d = d % MAX_ROS_DOMAIN_ID + 1
    else:
        d = domain_id
    if not 0 <= d <= MAX_ROS_DOMAIN_ID:
        raise ValueError(f"ROS domain id must be in 0..{MAX_ROS_DOMAIN_ID}, not {d}")
    os.environ["ROS_DOMAIN_ID"] = str(d)
    return d


def node_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    profile = dds_profile()  # camera images between processes without loss
    if profile is not None:
        env.setdefault(DDS_PROFILE_ENV, str(profile))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def node_command(model_dir: Path, params_file: Optional[Path], params: Sequence[str] = (),
                 ros_args: Sequence[str] = (), module: str = "dsdrive_ros.node.dsdrive_node") -> list[str]:
    """`module` is a module name, or a script path (a benchmark's instrumented node)."""
    program = [module] if module.endswith(".py") else ["-m", module]
    cmd = [sys.executable, *program, "--ros-args", *ros_args]
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    cmd += ["-p", f"model_dir:={Path(model_dir).resolve()}"]
    for p in params:
        cmd += ["-p", p]
    return cmd


class NodeProcess:
    """The node as a subprocess, stdout+stderr into `workdir/log_name`.

    cwd = workdir, outside the source tree, so that the colcon-installed dsdrive_ros (the one with
    dsdrive_ros.msg) is imported.
    """

    def __init__(self, model_dir: Path, workdir: Path, params: Sequence[str] = (),
                 params_file: Optional[Path] = None, ros_args: Sequence[str] = (),
                 module: str = "dsdrive_ros.node.dsdrive_node", log_name: str = "node.log",
                 env: Optional[dict[str, str]] = None) -> None:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.command = node_command(model_dir, params_file or default_params_file(), params, ros_args, module)
        self.log_path = workdir / log_name
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=node_env(**(env or {})), start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            if not self._log.closed:
                self._log.flush()
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGINT) -> Optional[int]:
        """`sig`, then SIGKILL after `timeout`; a node that ignored `sig` first writes its threads'
        stacks into the log (the node's STACKS_SIGNAL), so that the log says where it was stuck."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(STACKS_SIGNAL)
                try:
                    self.proc.wait(STACKS_WAIT_S)  # faulthandler writes at once; this is the margin
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

"""`pip install .` gives the ROS-free parts (model, export, runners, frames, train, sim) on a
machine without ROS: installed into a scratch folder, they import with every ROS module blocked."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Folders that must not import ROS (docs/ARCHITECTURE.md), and the files allowed to.
ROS_FREE = ("frames", "model", "export", "runners", "outputs", "sim", "train")
ALLOWED_ROS = {"outputs/fill.py", "sim/eval.py", "sim/eval_cli.py", "sim/closed_loop.py"}
BLOCKED = ("rclpy", "rosidl_runtime_py", "std_msgs", "sensor_msgs", "nav_msgs", "geometry_msgs",
           "diagnostic_msgs", "builtin_interfaces", "dsdrive_ros.msg", "ament_index_python")

CHECK = textwrap.dedent("""
    import importlib, importlib.abc, json, sys
    blocked = tuple(sys.argv[2].split(","))
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in blocked):
                raise ImportError(f"ROS module {name} imported (blocked: no ROS here)")
            return None
    sys.meta_path.insert(0, Block())
    results = {}
    for mod in sys.argv[3:]:
        try:
            importlib.import_module(mod)
            results[mod] = "ok"
        except ImportError as e:
            results[mod] = ("ros: " if "blocked: no ROS" in str(e) else "missing: ") + str(e)
    import dsdrive_ros
    results["__file__"] = dsdrive_ros.__file__
    print(json.dumps(results))
""")


def _modules() -> list[str]:
    mods = []
    for folder in ROS_FREE:
        for path in sorted((REPO / "dsdrive_ros" / folder).glob("*.py")):
            rel = f"{folder}/{path.name}"
            if rel in ALLOWED_ROS:
                continue
            name = "dsdrive_ros." + folder + ("" if path.stem == "__init__" else "." + path.stem)
            mods.append(name)
    return mods


@pytest.mark.timeout(600)
def test_pip_install_without_ros(tmp_path):
    target = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "--target", str(target), str(REPO)],
        capture_output=True, text=True, timeout=500, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for exe in ("dsdrive-train", "dsdrive-eval", "dsdrive-replay", "dsdrive-export", "dsdrive-dagger"):
        assert (target / "bin" / exe).is_file(), exe
    assert not (target / "dsdrive_ros" / "msg").exists()  # the message comes from colcon only

    mods = _modules()
    assert mods, "no ROS-free modules found"
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", CHECK, "x", ",".join(BLOCKED), *mods],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    assert out.returncode == 0, out.stderr
    import json

    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results.pop("__file__").startswith(str(target))
    ros = {m: r for m, r in results.items() if r.startswith("ros: ")}
    assert not ros, f"ROS-free modules import ROS: {ros}"


def test_console_scripts_resolve():
    """Every console script in setup.py names a module and function that exist."""
    import importlib

    from entry_points import CONSOLE_SCRIPTS as scripts

    assert {s[0] for s in scripts} >= {"dsdrive-train", "dsdrive-eval", "dsdrive-replay", "dsdrive-export",
                                       "dsdrive-dagger"}
    for name, module, func in scripts:
        assert callable(getattr(importlib.import_module(module), func, None)), f"{name} -> {module}:{func}"

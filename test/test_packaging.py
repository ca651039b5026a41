"""`pip install .` gives the ROS-free parts (model, export, runners, frames, train, sim) on a
machine without ROS: installed into a scratch folder, they import with every ROS module blocked.
Every third-party import in dsdrive_ros/ is declared (setup.py, requirements*.txt, package.xml)."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
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
    missing = {m: r for m, r in results.items() if r != "ok"}
    assert not missing, f"ROS-free modules fail to import: {missing}"


def test_console_scripts_resolve():
    """Every console script in setup.py names a module and function that exist."""
    import importlib

    from entry_points import CONSOLE_SCRIPTS as scripts

    assert {s[0] for s in scripts} >= {"dsdrive-train", "dsdrive-eval", "dsdrive-replay", "dsdrive-export",
                                       "dsdrive-dagger"}
    for name, module, func in scripts:
        assert callable(getattr(importlib.import_module(module), func, None)), f"{name} -> {module}:{func}"


# Imported only where present, each behind a clear error: not a requirement of any install.
OPTIONAL_IMPORTS = {
    "tensorrt": "TensorRT, on the vehicle (backend tensorrt, export/to_tensorrt.py)",
    "cuda": "cuda-python, with TensorRT",
}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the dsdrive_ros files importing it (at any depth: lazy imports count)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "dsdrive_ros").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "dsdrive_ros":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _setup_requirements() -> set[str]:
    """Distributions named in setup.py's install_requires and extras_require."""
    reqs: list[str] = []
    for node in ast.walk(ast.parse((REPO / "setup.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            reqs += ast.literal_eval(node.value)
        elif isinstance(node, ast.keyword) and node.arg == "extras_require":
            reqs += [r for group in ast.literal_eval(node.value).values() for r in group]
    return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in reqs}


def _pinned(*files: str) -> set[str]:
    """Distributions pinned in requirements files (what CI's fresh venv installs)."""
    return {_norm(re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0])
            for f in files for line in (REPO / f).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


def _package_xml_depends() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for tag in ("depend", "exec_depend", "build_depend") for e in root.iter(tag)}


def test_every_runtime_import_is_declared():
    """Each third-party module dsdrive_ros imports is installed here and declared where its users
    get it: ROS packages in package.xml (rosdep / colcon), the rest in setup.py (pip install .) and
    pinned in requirements*.txt (`make venv`, CI). A new import without a declaration fails here."""
    dists = importlib.metadata.packages_distributions()
    setup_reqs = _setup_requirements()
    pinned = _pinned("requirements.txt", "requirements-ros.txt")
    ros_depends = _package_xml_depends()
    problems = []
    for module, files in sorted(_third_party_imports().items()):
        if module in OPTIONAL_IMPORTS:
            continue
        where = ", ".join(sorted(files)[:3])
        owners = [_norm(d) for d in dists.get(module, [])]
        if not owners:
            problems.append(f"{module} ({where}): not installed, and not in OPTIONAL_IMPORTS")
        elif any(o.startswith("ros-") for o in owners):
            if module not in ros_depends:
                problems.append(f"{module} ({where}): ROS package missing from package.xml")
        else:
            if not set(owners) & setup_reqs:
                problems.append(f"{module} ({where}): {owners} missing from setup.py install_requires/extras")
            if not set(owners) & pinned:
                problems.append(f"{module} ({where}): {owners} missing from requirements*.txt")
    assert not problems, "\n".join(problems)

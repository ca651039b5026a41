"""Static checks of launch/*.launch.py (launch / launch_ros have no wheels: they cannot run here).

1. Each file compiles and defines generate_launch_description().
2. By `ast`: the executables it names are installed by CMakeLists.txt from scripts/, every
   .yaml it names is a file in config/ (and dsdrive.launch.py names config/dsdrive.params.yaml),
   every launch file it includes exists, every package it names is ours.
3. Run against small stand-ins for launch / launch_ros / ament_index_python: the arguments
   namespace / params_file / model_dir exist, the node gets the params file, the model dir and
   the camera remappings, and every LaunchConfiguration it reads was declared.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_DIR = REPO / "launch"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))
PARAMS_FILE = "dsdrive.params.yaml"


def _package_name() -> str:
    return ET.parse(REPO / "package.xml").getroot().findtext("name")


def _cmake_programs() -> set[str]:
    """Executable names that CMakeLists.txt installs from scripts/."""
    text = (REPO / "CMakeLists.txt").read_text()
    names: set[str] = set()
    for m in re.finditer(r"set\((DSDRIVE_\w+_EXECUTABLES)\s+([^)]*)\)", text):
        names.update(m.group(2).split())
    return names


def _strings(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _keyword_values(tree: ast.AST, keyword: str) -> list[ast.expr]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            out.extend(kw.value for kw in node.keywords if kw.arg == keyword)
    return out


def _module_constants(tree: ast.Module) -> dict[str, object]:
    consts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return consts


def _resolve_str(node: ast.expr, consts: dict[str, object]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and isinstance(consts.get(node.id), str):
        return consts[node.id]
    return None


def test_launch_files_exist():
    names = {p.name for p in LAUNCH_FILES}
    assert {"dsdrive.launch.py", "replay.launch.py"} <= names, names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_compiles_and_defines_entry(path: Path):
    source = path.read_text()
    compile(source, str(path), "exec")
    tree = ast.parse(source)
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_references_exist(path: Path):
    tree = ast.parse(path.read_text())
    consts = _module_constants(tree)
    package = _package_name()

    # executables: installed by CMakeLists.txt from scripts/
    programs = _cmake_programs()
    assert "dsdrive_node" in programs
    for value in _keyword_values(tree, "executable"):
        exe = _resolve_str(value, consts)
        assert exe is not None, f"{path.name}: executable must be a literal or module constant"
        assert exe in programs, f"{path.name}: executable {exe!r} not installed by CMakeLists.txt"
        assert (REPO / "scripts" / exe).is_file(), f"scripts/{exe} missing"
    for value in _keyword_values(tree, "package"):
        assert _resolve_str(value, consts) == package

    strings = _strings(tree)
    # parameter files: only files that exist in config/ (installed to share/<pkg>/config)
    for s in strings:
        if s.endswith((".yaml", ".yml")):
            name = Path(s).name
            assert (REPO / "config" / name).is_file(), f"{path.name} names config/{name}: missing"
    # included launch files exist in launch/
    for s in strings:
        if s.endswith(".launch.py"):
            assert (LAUNCH_DIR / Path(s).name).is_file(), f"{path.name} includes {s}: missing"


def test_node_launch_points_at_params_file():
    tree = ast.parse((LAUNCH_DIR / "dsdrive.launch.py").read_text())
    strings = _strings(tree)
    assert any(Path(s).name == PARAMS_FILE for s in strings)
    assert "config" in strings or any(s.startswith("config/") for s in strings)
    assert (REPO / "config" / PARAMS_FILE).is_file(), "config/dsdrive.params.yaml is missing"


# --------------------------------------------------------------------------- stand-in execution
class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(_Recorder):
    reads: list[str] = []

    def perform(self, context):
        LaunchConfiguration.reads.append(self.args[0])
        return context.values[self.args[0]]


class _Context:
    def __init__(self, values):
        self.values = values


def _stub_modules(share: Path) -> dict[str, types.ModuleType]:
    mods = {}

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        mods[name] = m
        return m

    rec = lambda name: type(name, (_Recorder,), {})  # noqa: E731
    module("launch", LaunchDescription=rec("LaunchDescription"))
    module("launch.actions", **{n: rec(n) for n in (
        "DeclareLaunchArgument", "OpaqueFunction", "ExecuteProcess", "IncludeLaunchDescription",
        "TimerAction", "GroupAction", "SetParameter", "LogInfo")})
    module("launch.substitutions", LaunchConfiguration=LaunchConfiguration,
           PathJoinSubstitution=rec("PathJoinSubstitution"), TextSubstitution=rec("TextSubstitution"))
    module("launch.launch_description_sources",
           PythonLaunchDescriptionSource=rec("PythonLaunchDescriptionSource"))
    module("launch.conditions", IfCondition=rec("IfCondition"), UnlessCondition=rec("UnlessCondition"))
    module("launch_ros")
    module("launch_ros.actions", Node=rec("Node"), PushRosNamespace=rec("PushRosNamespace"))
    module("ament_index_python")
    module("ament_index_python.packages", get_package_share_directory=lambda pkg: str(share / pkg))
    return mods


def _load(path: Path, monkeypatch, share: Path):
    for name, mod in _stub_modules(share).items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location(f"_launch_{path.stem.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared(ld) -> dict[str, str]:
    return {a.args[0]: a.kwargs.get("default_value") for a in ld.args[0]
            if type(a).__name__ == "DeclareLaunchArgument"}


def _opaque_actions(ld, values):
    out = []
    for action in ld.args[0]:
        if type(action).__name__ == "OpaqueFunction":
            out.extend(action.kwargs["function"](_Context(values)))
    return out


def test_node_launch_runs_against_stand_ins(monkeypatch, tmp_path):
    LaunchConfiguration.reads = []
    mod = _load(LAUNCH_DIR / "dsdrive.launch.py", monkeypatch, tmp_path)
    ld = mod.generate_launch_description()
    declared = _declared(ld)
    assert {"namespace", "params_file", "model_dir"} <= set(declared)
    share = tmp_path / _package_name()
    assert declared["params_file"] == str(share / "config" / PARAMS_FILE)

    values = dict(declared)
    values.update(namespace="ego", model_dir="/opt/models/m", front_image_topic="/cam0/image_raw")
    (node,) = _opaque_actions(ld, values)
    assert type(node).__name__ == "Node"
    kw = node.kwargs
    assert kw["package"] == _package_name() and kw["executable"] == "dsdrive_node"
    assert kw["namespace"] == "ego"
    assert kw["parameters"][0] == str(share / "config" / PARAMS_FILE)
    assert {"model_dir": "/opt/models/m"} in kw["parameters"]
    profile = share / "config" / "fastdds_large_data.xml"
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        assert declared["dds_profile"] == str(profile)
    assert kw["additional_env"] == {"FASTDDS_DEFAULT_PROFILES_FILE": declared["dds_profile"]}
    assert (REPO / "config" / profile.name).is_file()
    remaps = dict(kw["remappings"])
    assert remaps["camera/front/image_raw"] == "/cam0/image_raw"
    assert remaps["camera/front/image_raw/compressed"] == "/cam0/image_raw/compressed"
    assert remaps["camera/left/image_raw"] == "camera/left/image_raw"
    # every launch configuration read was declared
    assert set(LaunchConfiguration.reads) <= set(declared), set(LaunchConfiguration.reads) - set(declared)

    # model_dir '' keeps the params file's value
    values["model_dir"] = ""
    (node,) = _opaque_actions(ld, values)
    assert not any(isinstance(p, dict) and "model_dir" in p for p in node.kwargs["parameters"])


def test_replay_launch_runs_against_stand_ins(monkeypatch, tmp_path):
    LaunchConfiguration.reads = []
    mod = _load(LAUNCH_DIR / "replay.launch.py", monkeypatch, tmp_path)
    ld = mod.generate_launch_description()
    declared = _declared(ld)
    assert {"bag", "namespace", "params_file"} <= set(declared)
    share = tmp_path / _package_name()
    includes = [a for a in ld.args[0] if type(a).__name__ == "IncludeLaunchDescription"]
    assert len(includes) == 1
    source = includes[0].args[0]
    included = Path(source.args[0])
    assert included == share / "launch" / "dsdrive.launch.py"
    assert (LAUNCH_DIR / included.name).is_file()
    assert dict(includes[0].kwargs["launch_arguments"])["use_sim_time"] == "true"

    values = dict(declared)
    values.update(bag="/data/bag", record="/tmp/out", namespace="ego")
    actions = _opaque_actions(ld, values)
    record = [a for a in actions if type(a).__name__ == "ExecuteProcess"]
    timers = [a for a in actions if type(a).__name__ == "TimerAction"]
    assert record and "/ego/dsdrive/plan" in record[0].kwargs["cmd"]
    play = timers[0].kwargs["actions"][0].kwargs
    assert play["cmd"][:4] == ["ros2", "bag", "play", "/data/bag"] and "--clock" in play["cmd"]
    # the player publishes the images: it runs with the node's DDS profile
    assert play["additional_env"] == {"FASTDDS_DEFAULT_PROFILES_FILE": declared["dds_profile"]}
    assert dict(includes[0].kwargs["launch_arguments"])["dds_profile"].args[0] == "dds_profile"
    assert set(LaunchConfiguration.reads) <= set(declared)


def test_cmake_installs_launch_and_config():
    text = (REPO / "CMakeLists.txt").read_text()
    assert re.search(r"foreach\(_dir\s+launch\s+config\s+models\)", text)
    assert "DESTINATION share/${PROJECT_NAME}" in text

"""dsdrive_node parameters: one table, declared with ParameterDescriptors, loaded into NodeConfig.

``NodeConfig`` and the validation are ROS-free (tested without DDS); ``declare_parameters`` and
``load_config`` need an rclpy node. Defaults here equal config/dsdrive.params.yaml.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from dsdrive_ros.outputs.parse import PlausibilityLimits

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "TRANSPORTS",
    "RELIABILITIES",
    "ParamSpec",
    "PARAMS",
    "NodeConfig",
    "ConfigError",
    "check_cameras",
    "check_reasoning_tokens",
    "declare_parameters",
    "load_config",
    "validate_update",
]

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
DEVICE_PATTERN = re.compile(r"^(|cpu|cuda(:\d+)?)$")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("", "best_effort", "reliable", "system_default")


class ConfigError(ValueError):
    """A parameter value the node cannot run with (message says which and why)."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    int_range: Optional[tuple[int, int, int]] = None  # (from, to, step)
    float_range: Optional[tuple[float, float, float]] = None
    choices: Optional[Sequence[str]] = None
    type_name: str = ""  # "string_array" for lists (empty defaults need an explicit type)


_PLAUSIBLE = PlausibilityLimits()  # the defaults

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_dir", "", "Exported model directory (config.json, planner.onnx, reasoner.onnx, "
              "tokenizer.json). Required.", read_only=True),
    ParamSpec("backend", "auto", "Runtime: auto | tensorrt | onnxruntime | torch (auto: the first of "
              "TensorRT, ONNX Runtime CUDA, torch CUDA, ONNX Runtime CPU that loads; the log says why the "
              "others were passed over).", read_only=True, choices=BACKENDS),
    ParamSpec("precision", "fp32", "fp32 | fp16 | bf16 | int8 (int8 uses planner.int8.onnx; fp16/bf16 "
              "compute: TensorRT or torch; `auto` falling to ONNX Runtime runs the exported weights at fp32).",
              read_only=True, choices=PRECISIONS),
    ParamSpec("device", "", "Where torch / ONNX Runtime run: '' (cuda:0 when the backend can use a GPU, "
              "else cpu) | cpu | cuda:N.", read_only=True),
    ParamSpec("preprocess_on_gpu", False, "Resize + normalize camera images with torch on the runner's "
              "device (torch backend; others take host arrays and ignore it, with a warning).",
              read_only=True),
    ParamSpec("engine_cache_dir", "", "Where TensorRT engines are cached ('' = the runner's default).",
              read_only=True),
    ParamSpec("cameras", ["front", "left", "right", "rear"],
              "Camera names in the model's order; must equal config.json 'cameras' ([] = take the "
              "model's). Topics: camera/<name>/image_raw[/compressed].", read_only=True,
              type_name="string_array"),
    ParamSpec("anchor_camera", "", "Camera whose stamp a plan carries and whose arrival triggers "
              "a set ('' = first camera).", read_only=True),
    ParamSpec("image_transport", "raw", "raw (sensor_msgs/Image on camera/<name>/image_raw) | "
              "compressed (sensor_msgs/CompressedImage on camera/<name>/image_raw/compressed).",
              read_only=True, choices=TRANSPORTS),
    ParamSpec("max_camera_skew_ms", 50.0, "Largest stamp difference to the anchor camera for a set "
              "to be planned on; larger: the set is rejected (counted).", float_range=(0.0, 2000.0, 0.0)),
    ParamSpec("stale_after_ms", 500.0, "A camera with no frame for this long is stale (WARN, no "
              "planning); no plan for this long is an ERROR in /diagnostics. Odometry older than "
              "this is ignored (speed 0).", float_range=(10.0, 60000.0, 0.0)),
    ParamSpec("max_frame_age_ms", 0.0, "A camera set older than this (node clock - anchor stamp) when "
              "planning starts is dropped (counted sets_too_old); 0 = off.",
              float_range=(0.0, 600000.0, 0.0)),
    ParamSpec("drop_implausible_plans", False, "Drop (count implausible_plans, publish nothing) a plan "
              "whose first waypoint is farther than plausibility.max_first_waypoint_m from the ego or "
              "whose consecutive waypoints imply more than plausibility.max_speed_mps."),
    ParamSpec("plausibility.max_first_waypoint_m", _PLAUSIBLE.max_first_waypoint_m,
              "drop_implausible_plans: farthest first waypoint from the ego (m).",
              float_range=(0.0, 1000.0, 0.0)),
    ParamSpec("plausibility.max_speed_mps", _PLAUSIBLE.max_speed_mps,
              "drop_implausible_plans: highest speed consecutive waypoints may imply (m/s).",
              float_range=(0.0, 1000.0, 0.0)),
    ParamSpec("debug_image.enabled", False, "Publish dsdrive/debug_image (sensor_msgs/Image): the "
              "anchor camera with the path and the texts drawn (costs CPU on the planning thread).",
              read_only=True),
    ParamSpec("reasoning.enabled", True, "Generate reasoning text (off the planning path)."),
    ParamSpec("reasoning.max_tokens", 64, "Most tokens per reasoning text; at most the model's "
              "max_reasoning_tokens (config.json; it also bounds the TensorRT profile).",
              int_range=(1, 1024, 1)),
    ParamSpec("reasoning.max_rate_hz", 1.0, "Most reasoning texts per second (latest frame only; "
              "0 = as fast as generation goes).", float_range=(0.0, 100.0, 0.0)),
    ParamSpec("qos.reliability", "", "DEPRECATED (use qos_overrides./<camera topic>.subscription."
              "reliability): camera subscription reliability: '' (default: best_effort, SensorData) | "
              "best_effort | reliable | system_default.", read_only=True, choices=RELIABILITIES),
    ParamSpec("qos.depth", 1, "DEPRECATED (use qos_overrides./<camera topic>.subscription.depth): "
              "camera subscription queue depth (keep last).", read_only=True, int_range=(1, 100, 1)),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics.", read_only=True,
              float_range=(0.1, 60.0, 0.0)),
)

_BY_NAME = {p.name: p for p in PARAMS}


@dataclass
class NodeConfig:
    model_dir: str = ""
    backend: str = "auto"
    precision: str = "fp32"
    device: str = ""
    preprocess_on_gpu: bool = False
    engine_cache_dir: str = ""
    cameras: list[str] = field(default_factory=lambda: ["front", "left", "right", "rear"])
    anchor_camera: str = ""
    image_transport: str = "raw"
    max_camera_skew_ms: float = 50.0
    stale_after_ms: float = 500.0
    max_frame_age_ms: float = 0.0
    drop_implausible_plans: bool = False
    plausibility_max_first_waypoint_m: float = _PLAUSIBLE.max_first_waypoint_m
    plausibility_max_speed_mps: float = _PLAUSIBLE.max_speed_mps
    debug_image_enabled: bool = False
    reasoning_enabled: bool = True
    reasoning_max_tokens: int = 64
    reasoning_max_rate_hz: float = 1.0
    qos_reliability: str = ""
    qos_depth: int = 1
    diagnostics_period_s: float = 1.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "NodeConfig":
        """From {'reasoning.enabled': ..., ...} (parameter names); unknown names are an error."""
        cfg = cls()
        for name, value in values.items():
            attr = name.replace(".", "_")
            if not hasattr(cfg, attr):
                raise ConfigError(f"unknown parameter {name!r}")
            setattr(cfg, attr, value)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not self.model_dir:
            raise ConfigError("parameter 'model_dir' is required (the exported model directory)")
        for name, choices in (("backend", BACKENDS), ("precision", PRECISIONS),
                              ("image_transport", TRANSPORTS), ("qos.reliability", RELIABILITIES)):
            value = getattr(self, name.replace(".", "_"))
            if value not in choices:
                raise ConfigError(f"parameter {name!r} = {value!r}; expected one of {list(choices)}")
        if not DEVICE_PATTERN.match(self.device):
            raise ConfigError(f"parameter 'device' = {self.device!r}; expected '', 'cpu' or 'cuda:N'")
        cams = list(self.cameras)
        if len(set(cams)) != len(cams):
            raise ConfigError(f"parameter 'cameras' has duplicates: {cams}")
        if self.anchor_camera and cams and self.anchor_camera not in cams:
            raise ConfigError(f"anchor_camera {self.anchor_camera!r} is not one of cameras {cams}")
        for name in ("max_camera_skew_ms", "stale_after_ms", "reasoning_max_rate_hz",
                     "diagnostics_period_s", "max_frame_age_ms", "plausibility_max_first_waypoint_m",
                     "plausibility_max_speed_mps"):
            if float(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0")

    @property
    def plausibility(self) -> PlausibilityLimits:
        return PlausibilityLimits(float(self.plausibility_max_first_waypoint_m),
                                  float(self.plausibility_max_speed_mps))

    @property
    def anchor(self) -> str:
        return self.anchor_camera or (self.cameras[0] if self.cameras else "")


def check_cameras(param_cameras: Sequence[str], model_cameras: Sequence[str]) -> list[str]:
    """The camera list to use: the model's, if the parameter is empty or equal; else ConfigError."""
    model = [str(c) for c in model_cameras]
    given = [str(c) for c in param_cameras]
    if not given:
        return model
    if given != model:
        if sorted(given) == sorted(model):
            why = "same names, different order: the model needs its order"
        else:
            missing = [c for c in model if c not in given]
            extra = [c for c in given if c not in model]
            why = f"missing {missing}, unknown {extra}"
        raise ConfigError(
            f"parameter 'cameras' = {given} does not match the model's cameras {model} "
            f"(config.json) — {why}. Set cameras to {model} (or [] to take the model's).")
    return given


def check_reasoning_tokens(value: int, model_max: int) -> Optional[str]:
    """Reason `reasoning.max_tokens` = value is refused for a model that generates at most model_max."""
    if int(value) <= int(model_max):
        return None
    return (f"reasoning.max_tokens = {value} is above the model's limit of {model_max} tokens "
            "(max_reasoning_tokens in config.json; the reasoner's KV cache and TensorRT profile are "
            f"sized for it): set reasoning.max_tokens to at most {model_max}")


def validate_update(name: str, value: Any) -> Optional[str]:
    """Reason a runtime change of ``name`` to ``value`` is refused, None when it is acceptable."""
    spec = _BY_NAME.get(name)
    if spec is None:
        return None  # not ours (use_sim_time, ...)
    if spec.read_only:
        return f"{name} is read-only (restart the node to change it)"
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {list(spec.choices)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be a finite number, got {value}"  # NaN passes rclpy's range check
    return None


def _range_text(spec: ParamSpec) -> str:
    if spec.int_range is not None:
        return f"[{spec.int_range[0]}, {spec.int_range[1]}]"
    if spec.float_range is not None:
        return f"[{spec.float_range[0]}, {spec.float_range[1]}]"
    return ""


# ---- rclpy side ----

def _descriptor(spec: ParamSpec) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    desc = spec.description
    if spec.choices is not None:
        desc += f" One of: {', '.join(repr(c) for c in spec.choices)}."
    d = ParameterDescriptor(name=spec.name, description=desc, read_only=spec.read_only)
    value = spec.default
    if spec.type_name == "string_array":
        d.type = ParameterType.PARAMETER_STRING_ARRAY
    elif isinstance(value, bool):
        d.type = ParameterType.PARAMETER_BOOL
    elif isinstance(value, int):
        d.type = ParameterType.PARAMETER_INTEGER
    elif isinstance(value, float):
        d.type = ParameterType.PARAMETER_DOUBLE
    elif isinstance(value, str):
        d.type = ParameterType.PARAMETER_STRING
    if spec.int_range is not None:
        lo, hi, step = spec.int_range
        d.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=step)]
    if spec.float_range is not None:
        lo, hi, step = spec.float_range
        d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=step)]
    if spec.choices is not None:
        d.additional_constraints = "one of: " + ", ".join(repr(c) for c in spec.choices)
    return d


def declare_parameters(node: Any) -> None:
    """Declare every parameter of PARAMS on ``node`` (values from --params-file / -p override).

    A startup value outside the declared range or of the wrong type (``-p stale_after_ms:=5.0``,
    ``-p stale_after_ms:=500`` for a double) is a ConfigError naming the parameter and its range."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    for spec in PARAMS:
        try:
            node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except InvalidParameterValueException as exc:
            raise ConfigError(f"parameter {spec.name!r} rejected at startup: {exc} "
                              f"(allowed range {_range_text(spec) or 'see the description'})") from None
        except InvalidParameterTypeException as exc:
            kind = type(spec.default).__name__ if spec.type_name != "string_array" else "list of strings"
            hint = " (write doubles with a decimal point, e.g. 500.0)" if isinstance(spec.default, float) else ""
            raise ConfigError(f"parameter {spec.name!r} has the wrong type at startup: {exc}; "
                              f"expected {kind}{hint}") from None
        value = node.get_parameter(spec.name).value
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"parameter {spec.name!r} = {value} at startup: must be a finite number")


def load_config(node: Any) -> NodeConfig:
    """Current parameter values -> validated NodeConfig (ConfigError on a bad value)."""
    values = {}
    for spec in PARAMS:
        value = node.get_parameter(spec.name).value
        if spec.type_name == "string_array":
            value = [str(v) for v in (value or [])]
        values[spec.name] = value
    return NodeConfig.from_dict(values)

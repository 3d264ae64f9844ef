"""Configuration of the policy node: one dataclass, shared by ROS parameters, YAML files and tests.

`PolicyNodeConfig` is the single source of truth: the node declares one ROS parameter per field
(`declare_parameters`), reads them back into the dataclass (`read_parameters`), and the params YAML
(config/policy.yaml) can be loaded without ROS (`from_params_file`). The two helpers are generic
over dataclasses, so other nodes can declare their parameters the same way.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Type, TypeVar

T = TypeVar("T")

PACKAGE = "qt_policy"
DEFAULT_MODEL = "models/qt_metaworld"
#: the robot of checkpoints that carry no embodiment (trained before embodiment files): the simulated arm
DEFAULT_EMBODIMENT = "config/embodiments/metaworld_sawyer.yaml"


def repo_root() -> Path | None:
    """The source checkout this module lives in (QT_ROS_ROOT wins), or None when installed elsewhere."""
    env = os.environ.get("QT_ROS_ROOT")
    if env and Path(env).is_dir():
        return Path(env)
    # .../src/qt_policy/qt_policy/runtime/policy_config.py (build/ symlinks resolve to src/)
    candidate = Path(__file__).resolve().parents[4]
    return candidate if (candidate / "src" / PACKAGE).is_dir() else None


def package_share() -> Path | None:
    """share/qt_policy of the installed package (launch/, config/, models/), or None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError, LookupError):
        return None


def resolve_data_path(path: str) -> Path:
    """A relative path (e.g. models/qt_metaworld) is looked up in the cwd, the package share dir, the repo."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute() or p.exists():
        return p
    for base in (package_share(), repo_root()):
        if base is not None and (base / p).exists():
            return base / p
    return p


def default_checkpoint() -> str:
    """The shipped model directory, absolute when it can be found; the relative path otherwise."""
    return str(resolve_data_path(DEFAULT_MODEL))


@dataclass
class PolicyNodeConfig:
    """Parameters of the qt_policy node. Empty lists mean "take it from the checkpoint"."""

    checkpoint: str = field(default_factory=default_checkpoint)  # model dir (config.json + model.safetensors) or an ensemble dir (tools.ensemble)
    device: str = "cpu"  # torch device: cpu, cuda, cuda:0
    torch_threads: int = 1  # intra-op threads (process-wide); 1 keeps batch-1 latency steady on a busy CPU; 0 = torch default
    # the robot: action dimensions -> commands, camera, state, safety limits (robot/embodiment.py);
    # '' = the checkpoint's own; a file that does not match the checkpoint's is refused at configure
    embodiment: str = ""
    stale_timeout_s: float = 0.5  # camera/state/pose older than this -> hold (zero twist)
    instruction_settle_s: float = 0.05  # after a new instruction, frames that arrived sooner are not used
    instruction_topic: str = "instruction"  # std_msgs/String, reliable + transient-local
    action_topic: str = "qt/action"  # qt_msgs/QAction
    enable_topic: str = "enable"  # std_msgs/Bool hold input (reliable + transient-local); also service ~/enable
    start_enabled: bool = True  # false: hold until enabled (a latched enable=False also holds a restarted node)
    q_floor: float = 0.0  # hold while the greedy Q (the model's success estimate) is below this; 0 = off
    action_low: list[float] = field(default_factory=list)  # narrower envelope than the embodiment's; [] = none
    action_high: list[float] = field(default_factory=list)
    dry_run: bool = False  # publish QAction only, never twist/gripper commands
    autostart: bool = True  # configure + activate at startup (no lifecycle manager needed)
    diagnostics_period_s: float = 1.0

    def validate(self) -> "PolicyNodeConfig":
        """Raise ValueError naming the bad field; checked on configure, before anything is loaded."""
        if not self.checkpoint.strip():
            raise ValueError("parameter 'checkpoint' is empty: set it to a model directory")
        if self.instruction_settle_s < 0:
            raise ValueError(f"parameter 'instruction_settle_s' must be >= 0, got {self.instruction_settle_s}")
        for name in ("stale_timeout_s", "diagnostics_period_s"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")
        if self.torch_threads < 0:
            raise ValueError(f"parameter 'torch_threads' must be >= 0, got {self.torch_threads}")
        if not 0.0 <= self.q_floor < 1.0:
            raise ValueError(f"parameter 'q_floor' must lie in [0, 1), got {self.q_floor}")
        if len(self.action_low) != len(self.action_high):
            raise ValueError(f"action_low has {len(self.action_low)} values, action_high {len(self.action_high)}")
        if any(lo > hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError(f"action_low {self.action_low} exceeds action_high {self.action_high}")
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise ValueError(f"parameter 'device' must be cpu, cuda or cuda:N, got {self.device!r}")
        return self


# ----- dataclass <-> ROS parameters --------------------------------------------------------------

def _field_default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _param_kind(hint) -> str:
    """'bool' | 'int' | 'float' | 'str' | 'list[float]' | 'list[str]' | 'list[int]' | 'list[bool]'."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return f"list[{item.__name__}]"
    return hint.__name__


def _ros_types():
    from rcl_interfaces.msg import ParameterType
    from rclpy.parameter import Parameter

    return {
        "bool": (Parameter.Type.BOOL, ParameterType.PARAMETER_BOOL),
        "int": (Parameter.Type.INTEGER, ParameterType.PARAMETER_INTEGER),
        "float": (Parameter.Type.DOUBLE, ParameterType.PARAMETER_DOUBLE),
        "str": (Parameter.Type.STRING, ParameterType.PARAMETER_STRING),
        "list[bool]": (Parameter.Type.BOOL_ARRAY, ParameterType.PARAMETER_BOOL_ARRAY),
        "list[int]": (Parameter.Type.INTEGER_ARRAY, ParameterType.PARAMETER_INTEGER_ARRAY),
        "list[float]": (Parameter.Type.DOUBLE_ARRAY, ParameterType.PARAMETER_DOUBLE_ARRAY),
        "list[str]": (Parameter.Type.STRING_ARRAY, ParameterType.PARAMETER_STRING_ARRAY),
    }


_HINTS = {"float": "write 10.0, not 10", "list[float]": "write [1.0, -1.0], not [1, -1]"}


def declare_parameters(node, cls: Type[T] = PolicyNodeConfig) -> list[str]:
    """Declare one typed ROS parameter per dataclass field; returns the errors (bad override types).

    An override of the wrong type (e.g. an int for a float field) would raise inside the node's
    constructor; instead the parameter is declared with its default and the error is returned, so the
    node can refuse to configure with a clear message. Empty-list defaults are declared by type only
    (rclpy would type a literal [] as a byte array); `read_parameters` maps "not set" back to [].
    """
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import InvalidParameterTypeException

    types = _ros_types()
    hints = typing.get_type_hints(cls)
    errors = []
    for f in dataclasses.fields(cls):
        kind = _param_kind(hints[f.name])
        ptype, desc_type = types[kind]
        default = _field_default(f)
        descriptor = ParameterDescriptor(type=desc_type, description=f"{kind}, default {default!r}")
        value = ptype if isinstance(default, list) and not default else default
        try:
            node.declare_parameter(f.name, value, descriptor)
        except InvalidParameterTypeException as exc:
            hint = _HINTS.get(kind, "")
            errors.append(f"parameter '{f.name}' must be {kind}{' (' + hint + ')' if hint else ''}: {exc}")
            if not node.has_parameter(f.name):
                node.declare_parameter(f.name, value, descriptor, ignore_override=True)
    return errors


def read_parameters(node, cls: Type[T] = PolicyNodeConfig) -> T:
    """The declared parameters back into the dataclass (unset list parameters -> the field default)."""
    from rclpy.exceptions import ParameterUninitializedException

    values = {}
    for f in dataclasses.fields(cls):
        try:
            value = node.get_parameter(f.name).value
        except ParameterUninitializedException:
            value = _field_default(f)
        values[f.name] = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value
    return cls(**values)


# ----- YAML params files (no ROS needed) ----------------------------------------------------------

def from_params_file(path, node_name: str = PACKAGE, cls: Type[T] = PolicyNodeConfig) -> T:
    """Load a ROS params file (`/**:` and `<name>:` sections with `ros__parameters`) into the dataclass.

    The same merge the node sees: wildcard sections first, then the node's own; unknown keys are an
    error, so a typo in the YAML is caught by the tests rather than ignored at runtime.
    """
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    params: dict[str, Any] = {}
    wildcard = [k for k in data if str(k).strip("/") == "**"]
    own = [k for k in data if str(k).rstrip("/").split("/")[-1] == node_name]
    for key in wildcard + own:
        params.update(((data[key] or {}).get("ros__parameters") or {}))
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{path}: unknown {cls.__name__} parameters {unknown}; known: {sorted(known)}")
    return cls(**params)

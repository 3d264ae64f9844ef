"""Dataclass <-> ROS parameters, and ROS params YAML files read without ROS.

Every node declares one typed parameter per field of its config dataclass and reads them back into
it, so the dataclass is the one source of truth for names, types and defaults.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Type, TypeVar

T = TypeVar("T")


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


def declare_parameters(node, cls: Type[T]) -> list[str]:
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


def read_parameters(node, cls: Type[T]) -> T:
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

def from_params_file(path, node_name: str, cls: Type[T]) -> T:
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

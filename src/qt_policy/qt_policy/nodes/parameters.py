"""Config dataclass <-> ROS parameters: every node declares one typed parameter per field of its
config dataclass and reads them back into it, so the dataclass is the one source of truth for names,
types and defaults (the ROS-free half, params YAML files, is runtime/parameters.py)."""
from __future__ import annotations

import dataclasses
import typing
from typing import Type, TypeVar

from ..runtime.parameters import field_default, param_kind

T = TypeVar("T")


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
        kind = param_kind(hints[f.name])
        ptype, desc_type = types[kind]
        default = field_default(f)
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
            value = field_default(f)
        values[f.name] = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value
    return cls(**values)

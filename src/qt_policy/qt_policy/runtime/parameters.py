"""ROS params YAML files read into a node's config dataclass without ROS (what the node would see),
and the field kinds shared with the rclpy side (nodes/parameters.py)."""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Type, TypeVar

T = TypeVar("T")


def field_default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def param_kind(hint) -> str:
    """'bool' | 'int' | 'float' | 'str' | 'list[float]' | 'list[str]' | 'list[int]' | 'list[bool]'."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return f"list[{item.__name__}]"
    return hint.__name__


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

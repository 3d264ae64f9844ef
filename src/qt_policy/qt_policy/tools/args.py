"""Build argparse flags from the config dataclasses, so the CLI and the configs never drift apart."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, title: str, skip: tuple[str, ...] = ()) -> None:
    """One flag per field (default None = keep the dataclass default); lists take several values."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"(default: {default})"
        origin = typing.get_origin(hint)
        if hint is bool:
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif origin is list:
            (item,) = typing.get_args(hint)
            group.add_argument(_flag(f.name), dest=f.name, type=item, nargs="+", default=None, help=help_text)
        else:
            group.add_argument(_flag(f.name), dest=f.name, type=hint, default=None, help=help_text)


def dataclass_overrides(cls, args: argparse.Namespace) -> dict[str, Any]:
    """The fields the user set on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}

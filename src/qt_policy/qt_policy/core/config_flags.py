"""Build argparse flags from the config dataclasses, so the CLI and the configs never drift apart.

Each flag's help is the field's comment in the dataclass source (the line's trailing comment and
the comment lines just above it), so `--help` explains a field where its default is defined.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
import typing
from typing import Any


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@functools.lru_cache(maxsize=None)
def field_comments(cls) -> dict[str, str]:
    """{field name: its comment} read from the class source: comments above a field, then its trailing one."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    comments: dict[str, str] = {}
    pending: list[str] = []
    line_field: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            row = tok.start[0]
            if row in line_field:  # trailing comment of a field line
                name = line_field[row]
                comments[name] = " ".join(filter(None, [comments.get(name, ""), text]))
            else:
                pending.append(text)
        elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names and tok.start[0] not in line_field:
            line_field[tok.start[0]] = tok.string
            comments[tok.string] = " ".join(pending)
            pending = []
        elif tok.type == tokenize.NL and not pending:
            continue
        elif tok.type == tokenize.NL:  # a blank line ends a comment block that belongs to no field
            pending = [] if tok.line.strip() == "" else pending
    return {k: v for k, v in comments.items() if v}


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, title: str, skip: tuple[str, ...] = ()) -> None:
    """One flag per field (default None = keep the dataclass default); lists take several values."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = " ".join(filter(None, [comments.get(f.name, ""), f"(default: {default})"])).replace("%", "%%")
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


def existing_folder(text: str):
    """argparse type of a folder that must exist: a missing one is a usage error (exit 2) naming it."""
    from pathlib import Path

    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path

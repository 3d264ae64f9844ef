"""Resolving names in a launch file: $(...) substitutions and package / executable lookup (what
`ros2 run PKG EXE` would start), and the error every launch-file problem raises."""
from __future__ import annotations

import ast
import os
from importlib import metadata
from pathlib import Path

from ..paths import package_share, repo_root, source_share


class LaunchError(Exception):
    """A launch file this tool cannot run as written (the message names the file and the problem)."""


# ----- package lookup ---------------------------------------------------------------------------------

def find_pkg_share(pkg: str) -> Path:
    """share/PKG from the ament index; without an install, the source checkout (repo root for qt_policy)."""
    found = package_share(pkg) or source_share(pkg)
    if found is None:
        raise LaunchError(f"package {pkg!r} not found (no ament index entry, not in the source tree)")
    return found


def _setup_py_scripts(pkg: str) -> dict[str, str]:
    """console_scripts of the source checkout's setup.py (for an install that predates an entry)."""
    root = repo_root()
    setup = root / "src" / pkg / "setup.py" if root else None
    if setup is None or not setup.is_file():
        return {}
    scripts = {}
    for node in ast.walk(ast.parse(setup.read_text())):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts" and isinstance(value, (ast.List, ast.Tuple)):
                    for item in value.elts:
                        if isinstance(item, ast.Constant) and isinstance(item.value, str) and "=" in item.value:
                            name, target = (s.strip() for s in item.value.split("=", 1))
                            scripts[name] = target
    return scripts


def resolve_exec(pkg: str, exe: str) -> tuple[str, str]:
    """(module, function) of PKG's console_scripts entry EXE: what `ros2 run PKG EXE` would start."""
    known: dict[str, str] = {}
    try:
        for ep in metadata.distribution(pkg).entry_points:
            if ep.group == "console_scripts":
                known[ep.name] = ep.value
    except metadata.PackageNotFoundError:
        pass
    if exe not in known:
        known = {**_setup_py_scripts(pkg), **known}
    if exe not in known:
        raise LaunchError(f"package {pkg!r} has no executable {exe!r} (console_scripts: {sorted(known) or 'none'})")
    module, _, func = known[exe].partition(":")
    return module.strip(), (func.strip() or "main")


# ----- substitutions ------------------------------------------------------------------------------------

SUBSTITUTIONS = ("var", "env", "find-pkg-share", "eval")


class _Subst:
    """Recursive-descent evaluation of $(name arg ...) with nesting and '...' / "..." quoting."""

    def __init__(self, text: str, ctx, where: str):  # ctx: launch_xml._Context (its .vars)
        self.text, self.ctx, self.where, self.i = text, ctx, where, 0

    def error(self, msg):
        return LaunchError(f"{self.where}: {msg} in {self.text!r}")

    def run(self) -> str:
        return self._until(stop="")

    def _until(self, stop: str) -> str:
        """Text up to (not including) one of the `stop` characters at this level; '' = end of text."""
        out = []
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in stop:
                break
            if self.text.startswith("$(", self.i):
                self.i += 2
                out.append(self._substitution())
            else:
                out.append(c)
                self.i += 1
        return "".join(out)

    def _substitution(self) -> str:
        start = self.i
        while self.i < len(self.text) and not self.text[self.i].isspace() and self.text[self.i] != ")":
            self.i += 1
        name = self.text[start:self.i]
        args = []
        while True:
            while self.i < len(self.text) and self.text[self.i].isspace():
                self.i += 1
            if self.i >= len(self.text):
                raise self.error(f"unterminated $({name}")
            c = self.text[self.i]
            if c == ")":
                self.i += 1
                break
            if c in "'\"":
                self.i += 1
                args.append(self._until(stop=c))
                if self.i >= len(self.text):
                    raise self.error(f"unterminated quote in $({name}")
                self.i += 1
            else:
                args.append(self._until(stop=" \t\n)"))
        return self._evaluate(name, args)

    def _evaluate(self, name: str, args: list[str]) -> str:
        def need(n_min, n_max):
            if not n_min <= len(args) <= n_max:
                raise self.error(f"$({name}) takes {n_min}..{n_max} arguments, got {len(args)}")

        if name == "var":
            need(1, 1)
            if args[0] not in self.ctx.vars:
                raise self.error(f"launch argument {args[0]!r} is not defined")
            return self.ctx.vars[args[0]]
        if name == "env":
            need(1, 2)
            if args[0] in os.environ:
                return os.environ[args[0]]
            if len(args) == 2:
                return args[1]
            raise self.error(f"environment variable {args[0]!r} is not set and has no default")
        if name == "find-pkg-share":
            need(1, 1)
            return str(find_pkg_share(args[0]))
        if name == "eval":  # launch's PythonExpression: a Python expression, the math module in scope
            need(1, 1)
            import math

            try:
                return str(eval(args[0], {"math": math}))  # noqa: S307 - the user's own launch file
            except Exception as exc:  # noqa: BLE001
                raise self.error(f"$(eval) of {args[0]!r} failed: {type(exc).__name__}: {exc}") from None
        raise self.error(f"unsupported substitution $({name} ...) (supported: {', '.join(SUBSTITUTIONS)})")

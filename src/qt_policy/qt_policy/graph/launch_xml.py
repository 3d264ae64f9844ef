"""Reading the project's XML launch files into node specs, with launch_ros semantics (qt-launch runs them).

The same files work with `ros2 launch qt_policy <file>` where launch_ros exists; this reader
implements the subset they use, with the launch_ros semantics, and refuses everything else with
an error naming the tag, attribute or substitution (nothing is silently ignored):

* tags: launch, arg (name, default, description), let (name, value), node (pkg, exec, name,
  namespace, output, on_exit="shutdown", if, unless) with param (from=FILE | name+value) and
  remap (from, to), include (file, if, unless) with arg (name, value), group (if, unless, scoped)
  with push-ros-namespace (namespace);
* substitutions: $(var NAME), $(env NAME [DEFAULT]), $(find-pkg-share PKG) (ament index, else the
  source checkout), $(eval EXPR) (a Python expression, as launch's), nested and quoted arguments;
* launch configurations are inherited by includes and groups and do not leak out of a scoped group;
  as in launch_ros, an include is no scope (its args and its file's configurations stay set after
  it: the project's launch files wrap each include in a <group>); an arg keeps a value already set
  (command line, include arg, parent) and otherwise takes its default; command-line args must be declared by some file.

Each node runs as its own process `python -m MODULE --ros-args -r __node:=NAME -r __ns:=/NS
--params-file FILE -p k:=v -r from:=to`, MODULE from the package's console_scripts entry point.
Output lines are prefixed with the node name. SIGINT/SIGTERM are forwarded; every child is ended by
its pid (signal, wait, SIGKILL) on exit or when a node with on_exit="shutdown" dies.
"""
from __future__ import annotations

import os
import sys
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

from .launch_resolve import LaunchError, _Subst, resolve_exec


# ----- XML with line numbers ------------------------------------------------------------------------

@dataclass
class _Element:
    tag: str
    attrib: dict
    line: int
    children: list = field(default_factory=list)


def _parse_xml(path: Path) -> _Element:
    """A minimal tree with line numbers (ElementTree's C parser does not keep them)."""
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_Element] = []
    root: list[_Element] = []

    def start(tag, attrib):
        el = _Element(tag, dict(attrib), parser.CurrentLineNumber)
        (stack[-1].children if stack else root).append(el)
        stack.append(el)

    def end(tag):
        stack.pop()

    def text(data):
        if data.strip() and stack:
            raise LaunchError(f"{path}:{parser.CurrentLineNumber}: unexpected text {data.strip()[:40]!r} in <{stack[-1].tag}>")

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    try:
        parser.Parse(path.read_bytes(), True)
    except xml.parsers.expat.ExpatError as exc:
        raise LaunchError(f"{path}: invalid XML: {exc}") from None
    return root[0]


# ----- the launch description -----------------------------------------------------------------------

@dataclass
class NodeSpec:
    """One node to start, with everything resolved; `command()` is its process command line."""

    pkg: str
    exec: str
    name: str | None
    namespace: str  # absolute, '' = the root namespace
    output: str  # screen | log | both
    required: bool  # on_exit="shutdown": its exit ends the launch
    arguments: list  # ('params_file', path) | ('param', name, value) | ('remap', from, to), in file order
    source: str  # file:line, for messages
    module: str | None = None
    function: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.exec

    def ros_args(self) -> list[str]:
        args = ["--ros-args"]
        if self.name:
            args += ["-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace}"]
        for kind, a, *b in self.arguments:
            if kind == "params_file":
                args += ["--params-file", a]
            elif kind == "param":
                args += ["-p", f"{a}:={b[0] if b[0] != '' else repr('')}"]  # rcl refuses an empty value
            else:
                args += ["-r", f"{a}:={b[0]}"]
        return args

    def command(self, python: str = sys.executable) -> list[str]:
        if self.module is None:
            self.module, self.function = resolve_exec(self.pkg, self.exec)
        if self.function == "main":
            head = [python, "-m", self.module]
        else:  # entry point other than main(): call it explicitly
            head = [python, "-c", f"import sys; from {self.module} import {self.function} as f; sys.exit(f())"]
        return head + self.ros_args()


@dataclass
class _Context:
    vars: dict
    namespace: str  # pushed ROS namespace ('' = none)
    declared: set  # every arg name declared by any file (shared)
    stack: tuple  # include chain, to catch recursion


ALLOWED = {
    "launch": {"version"},
    "arg": {"name", "default", "description"},
    "let": {"name", "value"},
    "node": {"pkg", "exec", "name", "namespace", "output", "on_exit", "if", "unless"},
    "param": {"from", "name", "value"},
    "remap": {"from", "to"},
    "include": {"file", "if", "unless"},
    "include/arg": {"name", "value"},
    "group": {"if", "unless", "scoped"},
    "push-ros-namespace": {"namespace"},
}
ACTIONS = ("arg", "let", "node", "include", "group")


def _join_namespace(base: str, ns: str) -> str:
    """launch_ros rule: an absolute namespace wins, a relative one is appended to the pushed one."""
    full = ns if ns.startswith("/") else f"{base}/{ns}"
    parts = [p for p in full.split("/") if p]
    return "/" + "/".join(parts) if parts else ""


class _Parser:
    def __init__(self, path: Path):
        self.path = path

    def where(self, el: _Element) -> str:
        return f"{self.path}:{el.line} <{el.tag}>"

    def attrs(self, el: _Element, ctx: _Context, key: str | None = None, required=()) -> dict[str, str]:
        allowed = ALLOWED[key or el.tag]
        unknown = sorted(set(el.attrib) - allowed)
        if unknown:
            raise LaunchError(f"{self.where(el)}: unsupported attribute(s) {unknown} (supported: {sorted(allowed)})")
        missing = [a for a in required if a not in el.attrib]
        if missing:
            raise LaunchError(f"{self.where(el)}: missing attribute(s) {missing}")
        return {k: _Subst(v, ctx, self.where(el)).run() for k, v in el.attrib.items()}

    def condition(self, el: _Element, a: dict) -> bool:
        """if/unless as in launch: the value must be true/false/1/0."""
        def truth(v):
            low = v.strip().lower()
            if low in ("true", "1"):
                return True
            if low in ("false", "0"):
                return False
            raise LaunchError(f"{self.where(el)}: condition value {v!r} is not true/false/1/0")

        ok = True
        if "if" in a:
            ok = ok and truth(a["if"])
        if "unless" in a:
            ok = ok and not truth(a["unless"])
        return ok

    def no_children(self, el: _Element):
        if el.children:
            raise LaunchError(f"{self.where(el.children[0])}: unexpected <{el.children[0].tag}> inside <{el.tag}>")

    def actions(self, elements, ctx: _Context, nodes: list[NodeSpec]):
        for el in elements:
            if el.tag not in ACTIONS:
                known = ", ".join(f"<{t}>" for t in (*ACTIONS, "push-ros-namespace"))
                raise LaunchError(f"{self.where(el)}: unsupported tag <{el.tag}> (supported here: {known})")
            getattr(self, "do_" + el.tag)(el, ctx, nodes)

    def do_arg(self, el, ctx, nodes):
        self.no_children(el)
        a = self.attrs(el, ctx, required=("name",))
        ctx.declared.add(a["name"])
        if a["name"] not in ctx.vars:
            if "default" not in a:
                raise LaunchError(f"{self.where(el)}: launch argument {a['name']!r} is required: pass {a['name']}:=VALUE")
            ctx.vars[a["name"]] = a["default"]

    def do_let(self, el, ctx, nodes):
        self.no_children(el)
        a = self.attrs(el, ctx, required=("name", "value"))
        ctx.vars[a["name"]] = a["value"]

    def do_group(self, el, ctx, nodes):
        a = self.attrs(el, ctx)
        if not self.condition(el, a):
            return
        scoped = a.get("scoped", "true").strip().lower()
        if scoped not in ("true", "false"):
            raise LaunchError(f"{self.where(el)}: scoped must be true or false")
        inner = ctx if scoped == "false" else _Context(dict(ctx.vars), ctx.namespace, ctx.declared, ctx.stack)
        for child in el.children:  # a pushed namespace applies to the actions after it, as in launch_ros
            if child.tag in ("push-ros-namespace", "push_ros_namespace"):
                self.no_children(child)
                ns = self.attrs(child, inner, key="push-ros-namespace", required=("namespace",))["namespace"]
                inner.namespace = _join_namespace(inner.namespace, ns)
            else:
                self.actions([child], inner, nodes)

    def do_include(self, el, ctx, nodes):
        a = self.attrs(el, ctx, required=("file",))
        if not self.condition(el, a):
            return
        # as launch_ros: an include is not a scope; its arguments and the configurations its file sets stay
        # set after it (wrap it in <group> to scope it)
        inner = _Context(ctx.vars, ctx.namespace, ctx.declared, ctx.stack)
        for child in el.children:
            if child.tag != "arg":
                raise LaunchError(f"{self.where(child)}: unsupported tag <{child.tag}> inside <include> (only <arg>)")
            self.no_children(child)
            ca = self.attrs(child, ctx, key="include/arg", required=("name", "value"))
            inner.vars[ca["name"]] = ca["value"]
        path = Path(a["file"])
        if not path.is_absolute() and not path.exists():
            path = self.path.parent / path
        nodes.extend(_parse_file(path, inner, where=self.where(el)))

    def do_node(self, el, ctx, nodes):
        a = self.attrs(el, ctx, required=("pkg", "exec"))
        if not self.condition(el, a):
            return
        output = a.get("output", "log")
        if output not in ("screen", "log", "both"):
            raise LaunchError(f"{self.where(el)}: output must be screen, log or both, got {output!r}")
        on_exit = a.get("on_exit")
        if on_exit not in (None, "shutdown"):
            raise LaunchError(f"{self.where(el)}: on_exit={on_exit!r} unsupported (only 'shutdown')")
        arguments = []
        for child in el.children:
            if child.tag == "param":
                self.no_children(child)
                p = self.attrs(child, ctx)
                if "from" in p and not {"name", "value"} & set(p):
                    f = Path(p["from"])
                    if not f.is_file():
                        raise LaunchError(f"{self.where(child)}: parameter file {str(f)!r} does not exist")
                    arguments.append(("params_file", os.path.abspath(f)))
                elif "name" in p and "value" in p and "from" not in p:
                    arguments.append(("param", p["name"], p["value"]))
                else:
                    raise LaunchError(f"{self.where(child)}: use <param from=FILE/> or <param name=N value=V/>")
            elif child.tag == "remap":
                self.no_children(child)
                r = self.attrs(child, ctx, required=("from", "to"))
                arguments.append(("remap", r["from"], r["to"]))
            else:
                raise LaunchError(f"{self.where(child)}: unsupported tag <{child.tag}> inside <node> (param, remap)")
        nodes.append(NodeSpec(
            pkg=a["pkg"], exec=a["exec"], name=a.get("name") or None,
            namespace=_join_namespace(ctx.namespace, a.get("namespace", "")),
            output=output, required=on_exit == "shutdown", arguments=arguments, source=self.where(el)))


def _parse_file(path: Path, ctx: _Context, where: str = "") -> list[NodeSpec]:
    path = Path(path)
    if not path.is_file():
        raise LaunchError(f"{where + ': ' if where else ''}launch file {str(path)!r} not found")
    if not path.name.endswith(".xml"):
        raise LaunchError(f"{path}: only XML launch files are supported (not .py / .yaml)")
    key = str(path.resolve())
    if key in ctx.stack:
        raise LaunchError(f"{path}: recursive include")
    ctx.stack = ctx.stack + (key,)
    root = _parse_xml(path)
    parser = _Parser(path)
    if root.tag != "launch":
        raise LaunchError(f"{parser.where(root)}: the root element must be <launch>")
    parser.attrs(root, ctx)
    nodes: list[NodeSpec] = []
    parser.actions(root.children, ctx, nodes)
    return nodes


def resolve_launch_file(path, args: dict | None = None, check_exec: bool = True) -> list[NodeSpec]:
    """Parse a launch file with `name:=value` args into node specs (what --print shows).

    check_exec=False skips the console_scripts lookup (structure only, e.g. before a node exists).
    """
    args = {str(k): str(v) for k, v in (args or {}).items()}
    ctx = _Context(vars=dict(args), namespace="", declared=set(), stack=())
    nodes = _parse_file(Path(path), ctx)
    unknown = sorted(set(args) - ctx.declared)
    if unknown:
        raise LaunchError(f"{path}: unknown launch argument(s) {unknown} (declared: {sorted(ctx.declared)})")
    if check_exec:
        for node in nodes:
            node.module, node.function = resolve_exec(node.pkg, node.exec)
    return nodes

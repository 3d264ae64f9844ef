"""`ros2 launch` for machines without launch_ros: runs the project's XML launch files as they are.

    qt-launch launch/sim_demo.launch.xml [name:=value ...] [--print]

The same files work with `ros2 launch qt_policy <file>` where launch_ros exists; this tool
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

import argparse
import ast
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import xml.parsers.expat
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO

from ..paths import package_share, repo_root, source_share


class LaunchError(Exception):
    """A launch file this tool cannot run as written (the message names the file and the problem)."""


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

    def __init__(self, text: str, ctx: "_Context", where: str):
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


# ----- running ------------------------------------------------------------------------------------------

def stop_processes(procs, timeout: float = 5.0, sig: int = signal.SIGINT, on_kill=None) -> None:
    """End each process by its own pid: `sig` to every live one (a node shuts down cleanly), wait up
    to `timeout` s in all, then SIGKILL what is left (`on_kill(proc)` is told first)."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill(proc)
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


class LaunchedProcesses:
    """The started node processes. `stop()` ends each by its pid: signal, wait, then SIGKILL."""

    def __init__(self, nodes: list[NodeSpec], output: IO[str] | None = None, env: dict | None = None):
        self.nodes = nodes
        self.output = output if output is not None else sys.stdout
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.processes: list[tuple[NodeSpec, subprocess.Popen]] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._log_files: list[IO] = []

    def _emit(self, text: str):
        with self._lock:
            self.output.write(text)
            self.output.flush()

    def _pump(self, spec: NodeSpec, proc: subprocess.Popen, log: IO | None):
        prefix = f"[{spec.label}] "
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            if log is not None:
                log.write(line)
                log.flush()
            if spec.output in ("screen", "both"):
                self._emit(prefix + line if line.endswith("\n") else prefix + line + "\n")
        proc.stdout.close()

    def start(self) -> "LaunchedProcesses":
        try:
            for spec in self.nodes:
                cmd = spec.command()
                log = None
                if spec.output in ("log", "both"):
                    log_dir = Path(self.env.get("ROS_LOG_DIR") or Path.home() / ".ros" / "log") / "launch"
                    log_dir.mkdir(parents=True, exist_ok=True)
                    log = open(log_dir / f"{spec.label}-{os.getpid()}.log", "a")
                    self._log_files.append(log)
                # own session: a terminal's Ctrl-C reaches the launcher only, which forwards it once
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
                self.processes.append((spec, proc))
                self._emit(f"[launch] started {spec.label} (pid {proc.pid}): {shlex.join(cmd)}\n")
                thread = threading.Thread(target=self._pump, args=(spec, proc, log), daemon=True)
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise
        return self

    def poll(self) -> tuple[NodeSpec, int] | None:
        """(node, exit code) of a required node that exited, or of the last one when all have exited."""
        exited = [(spec, proc.poll()) for spec, proc in self.processes]
        for spec, rc in exited:
            if rc is not None and spec.required:
                return spec, rc
        if exited and all(rc is not None for _, rc in exited):
            return exited[-1][0], exited[-1][1]
        return None

    def wait(self, timeout: float | None = None, stop_flag=None) -> tuple[NodeSpec, int] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (deadline is None or time.monotonic() < deadline) and not (stop_flag and stop_flag()):
            result = self.poll()
            if result is not None:
                return result
            time.sleep(0.1)
        return None

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGINT) -> None:
        """Signal every live child by pid, wait up to `timeout` s in all, SIGKILL the rest."""
        labels = {proc.pid: spec.label for spec, proc in self.processes}
        stop_processes([proc for _, proc in self.processes], timeout, sig, on_kill=lambda proc: self._emit(
            f"[launch] {labels[proc.pid]} (pid {proc.pid}) did not exit after {timeout:g} s: SIGKILL\n"))
        for thread in self._threads:
            thread.join(timeout=2)
        for log in self._log_files:
            log.close()
        self._log_files = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_launch_file(path, args: dict | None = None, output: IO[str] | None = None,
                      env: dict | None = None) -> LaunchedProcesses:
    """Resolve and start every node of a launch file; call `.stop()` (or use `with`) to end them."""
    return LaunchedProcesses(resolve_launch_file(path, args), output=output, env=env).start()


# ----- command line -------------------------------------------------------------------------------------

def _parse_cli_args(items: list[str]) -> dict[str, str]:
    args = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchError(f"launch arguments are name:=value, got {item!r}")
        args[name] = value
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qt-launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="launch file (.launch.xml), a path or PKG FILE is not supported: use the path")
    parser.add_argument("args", nargs="*", help="launch arguments name:=value")
    parser.add_argument("--print", action="store_true", help="show the resolved node commands and exit")
    opts = parser.parse_args(argv)
    try:
        nodes = resolve_launch_file(opts.file, _parse_cli_args(opts.args))
    except LaunchError as exc:
        print(f"[launch] error: {exc}", file=sys.stderr)
        return 2
    if opts.print:
        for node in nodes:
            flags = " (on_exit=shutdown)" if node.required else ""
            print(f"# {node.label}: {node.pkg}/{node.exec}, output={node.output}{flags}, from {node.source}")
            print(shlex.join(node.command()))
        return 0

    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    launched = LaunchedProcesses(nodes)
    rc = 0
    try:
        launched.start()
        result = launched.wait(stop_flag=lambda: bool(received))
        if result is not None:
            spec, code = result
            print(f"[launch] {spec.label} exited with code {code}: stopping all", file=sys.stderr, flush=True)
            rc = code if code else 0
    finally:
        launched.stop(sig=received[0] if received else signal.SIGINT)
    return rc


if __name__ == "__main__":
    sys.exit(main())

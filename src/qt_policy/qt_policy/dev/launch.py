"""`ros2 launch` for machines without launch_ros: runs the project's XML launch files as they are.

    qt-launch launch/sim_demo.launch.xml [name:=value ...] [--print]

The same files work with `ros2 launch qt_policy <file>` where launch_ros exists. What this tool
accepts (the subset the project's files use, everything else refused with an error naming the tag,
attribute or substitution) is described in qt_policy/graph/launch_xml.py; the processes are started
and stopped by qt_policy/graph/processes.py.
"""
from __future__ import annotations

import argparse
import shlex
import signal
import sys

from ..graph.launch_resolve import LaunchError
from ..graph.launch_xml import resolve_launch_file
from ..graph.processes import LaunchedProcesses


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

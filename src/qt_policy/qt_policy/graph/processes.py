"""Starting the nodes of a launch file as processes and ending each by its own pid (signal, wait, SIGKILL)."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from .launch_xml import NodeSpec, resolve_launch_file


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

"""Which process works on a piece of a shared run: a claim file holding its process id.

Two processes started with the same command (qt-algorithms, qt-flywheel) split the work this way:
each takes a piece only if no live process holds its claim. A claim left by a process that died
(a crash, a kill) is taken over, so a rerun never waits on work nobody is doing.
"""
from __future__ import annotations

import os
from pathlib import Path


def claim(path: Path) -> bool:
    """Take `path` for this process (True), or leave it to the live process that holds it (False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(path.read_text().strip() or 0)
            os.kill(pid, 0)
            return pid == os.getpid()
        except (ValueError, ProcessLookupError, PermissionError):
            path.unlink(missing_ok=True)
            return claim(path)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def release(path: Path) -> None:
    """Give up a claim this process holds (a finished piece needs none)."""
    try:
        if int(path.read_text().strip() or 0) == os.getpid():
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass

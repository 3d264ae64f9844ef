"""Results JSON files: one written whole by a command, or one several processes add to under a lock."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def update_json(path: Path, change: Callable[[dict], None], empty: Callable[[], dict] = dict, indent: int = 2) -> dict:
    """Apply `change` to the file's content (or `empty()` where there is none yet) while holding
    PATH.lock, write it back atomically, and return it: rows other processes wrote meanwhile stay."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.is_file() else empty()
        change(results)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=indent))
        tmp.replace(path)
    return results


def write_json(path: Path, value, indent: int = 1) -> None:
    """Write a command's result to `path` (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=indent))

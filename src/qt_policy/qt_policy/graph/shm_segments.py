"""Fast DDS shared-memory segments that stopped nodes left behind in /dev/shm.

A participant that ends by a signal can leave its segment file (the size of the profile's segment,
140 MB with config/fastdds_shm.xml) behind; /dev/shm is RAM, so repeated graph runs fill the
memory until the machine swaps or kills (found running the flywheel beside the tests: 16 GB of
such files). A segment no live process maps is unused and safe to delete.
"""
from __future__ import annotations

import glob
from pathlib import Path

SHM = Path("/dev/shm")


def mapped_segments() -> set[str]:
    """Names of the /dev/shm files some process on this machine has mapped now."""
    names: set[str] = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):  # a process that ended, or is not ours to read, maps nothing
        names |= _mapped_by(maps)
    return names


def remove_stale_segments(since: float = 0.0, shm: Path = SHM) -> list[Path]:
    """Delete Fast DDS data segments (and their `_el` lock files) modified at or after `since` (a
    time.time()) that no process maps; returns what was deleted."""
    if not shm.is_dir():
        return []
    in_use = mapped_segments()
    removed = []
    for path in sorted(shm.glob("fastdds_*")):
        try:
            fresh = path.stat().st_mtime >= since
        except OSError:
            continue
        if _is_data_segment(path.name) and path.name not in in_use and fresh:
            removed += _remove_segment(path)
    return removed


def remove_own_segments(shm: Path = SHM) -> list[Path]:
    """At exit: delete the data segments this process maps. Fast DDS keeps a process's segment
    mapped until the process ends and does not delete it then; call this when this process's
    participants are done (atexit), never while its nodes still talk."""
    removed = []
    for name in sorted(_mapped_by("/proc/self/maps")):
        if _is_data_segment(name):
            removed += _remove_segment(shm / name)
    return removed


def _is_data_segment(name: str) -> bool:
    """A participant's data segment, not a port (the small discovery queues) or a lock file."""
    return name.startswith("fastdds_") and not name.startswith("fastdds_port") and not name.endswith("_el")


def _remove_segment(path: Path) -> list[Path]:
    """Delete a segment and its `_el` lock file; returns what was deleted."""
    removed = []
    for p in (path, path.with_name(path.name + "_el")):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            continue
    return removed


def _mapped_by(maps: str) -> set[str]:
    try:
        with open(maps) as f:
            return {line.rsplit("/dev/shm/", 1)[1].split()[0] for line in f if "/dev/shm/fastdds_" in line}
    except OSError:
        return set()

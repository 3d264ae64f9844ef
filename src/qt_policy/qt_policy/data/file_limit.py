"""The open-file limit, checked before the training cache opens its memory maps.

Each memory-mapped array keeps a file descriptor (CPython's mmap holds a duplicate of it), four per
episode in the training cache: 300 episodes pass a login shell's usual soft limit of 1,024. Training
raises its soft limit up to the hard limit when that is enough (any process may), and otherwise stops
before opening anything, naming both limits and the fix, instead of dying mid-way with
`OSError: [Errno 24] Too many open files`.
"""
from __future__ import annotations

import logging

#: descriptors kept free for everything else a training process opens (torch, tensorboard, logs)
HEADROOM = 256

_log = logging.getLogger("qt_policy.file_limit")


class OpenFileLimitError(ValueError):
    """More files must be open at once than the hard limit allows (the message says how to fix it)."""


def ensure_open_files(needed: int, what: str) -> int:
    """Make sure `needed` (+ HEADROOM) descriptors may be open; returns the soft limit now in force.

    Raises the soft limit (to the hard limit) when it is too low; raises OpenFileLimitError when the hard
    limit is too low as well. No-op where the platform has no such limit (resource is POSIX only)."""
    try:
        import resource
    except ImportError:  # Windows: no RLIMIT_NOFILE
        return -1
    want = int(needed) + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft == infinite or soft >= want:
        return soft
    if hard != infinite and hard < want:
        raise OpenFileLimitError(
            f"{what} keeps {needed} files open at once (+{HEADROOM} for the rest), but this process may open "
            f"only {soft} (soft limit) and at most {hard} (hard limit). Raise the limit in the shell that starts "
            f"it, e.g. `ulimit -n {want}` (above the hard limit this needs root, or `nofile` in "
            f"/etc/security/limits.conf, or LimitNOFILE= in a systemd unit), or train on fewer episodes.")
    target = hard if hard != infinite else max(want, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. a hard limit above the kernel's nr_open: ask for what is needed
        target = want
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    _log.info("open-file soft limit raised from %d to %d for %s (%d files)", soft, target, what, needed)
    return target

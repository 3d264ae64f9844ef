"""Logging from nodes without the two ways rclpy's logger can kill a node.

rclpy remembers the severity of each *call site* and raises ``ValueError: Logger severity cannot be
changed between calls`` when one line of code logs at a second severity -- e.g.
``(logger.info if ok else logger.error)(line)``. `log_at` gives every severity its own call site.
`CallbackFaults` is what the nodes' main loop (spin.py) does with an exception that escaped a
callback: log it (the first of each kind with its traceback, then one summary line per period),
count it for /diagnostics, and keep serving.
"""
from __future__ import annotations

import time
import traceback

from ..runtime.throttle import Throttle


def log_at(logger, level: str, message: str) -> None:
    """`level`: 'error' | 'warn' | 'info' (anything else logs as info)."""
    if level == "error":
        logger.error(message)
    elif level in ("warn", "warning"):
        logger.warning(message)
    else:
        logger.info(message)


class CallbackFaults:
    """Exceptions that escaped a callback, counted per kind; logged without flooding (runtime/throttle.py:
    the first of each kind with its traceback, then one line per period)."""

    def __init__(self, logger, period_s: float = 10.0, clock=time.monotonic):
        self.logger = logger
        self._throttle = Throttle(period_s, clock)
        self.last = ""

    @property
    def counts(self) -> dict[str, int]:
        return self._throttle.counts

    @property
    def total(self) -> int:
        return self._throttle.total

    def report(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        first = kind not in self.counts
        self.last = f"{kind}: {exc}"
        if self._throttle.hit(kind) is not None:
            trace = "".join(traceback.format_exception(exc)) if first else ""
            self.logger.error(f"a callback failed ({self.counts[kind]} {kind} so far), the node goes on: "
                              f"{self.last}" + (f"\n{trace}" if trace else ""))

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


def log_at(logger, level: str, message: str) -> None:
    """`level`: 'error' | 'warn' | 'info' (anything else logs as info)."""
    if level == "error":
        logger.error(message)
    elif level in ("warn", "warning"):
        logger.warning(message)
    else:
        logger.info(message)


class CallbackFaults:
    """Exceptions that escaped a callback, counted per kind; logged without flooding."""

    def __init__(self, logger, period_s: float = 10.0, clock=time.monotonic):
        self.logger = logger
        self.period_s = float(period_s)
        self.clock = clock
        self.counts: dict[str, int] = {}
        self._last_log: dict[str, float] = {}
        self.last = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.last = f"{kind}: {exc}"
        now = self.clock()
        first = kind not in self._last_log
        if first or now - self._last_log[kind] >= self.period_s:
            self._last_log[kind] = now
            trace = "".join(traceback.format_exception(exc)) if first else ""
            self.logger.error(f"a callback failed ({self.counts[kind]} {kind} so far), the node goes on: "
                              f"{self.last}" + (f"\n{trace}" if trace else ""))

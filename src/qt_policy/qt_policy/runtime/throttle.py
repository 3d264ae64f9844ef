"""One rule for every repeated complaint a node logs (malformed frames, unusable messages, failed
callbacks): count every one, log the first of each kind at once, then at most one line per period
saying how many came since. rclpy's own `throttle_duration_sec` throttles per call site, not per kind,
and says nothing of what it dropped."""
from __future__ import annotations

import math
import time
from typing import Callable


class Throttle:
    def __init__(self, period_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.period_s, self.clock = float(period_s), clock
        self.counts: dict[str, int] = {}  # every one, per kind
        self._since: dict[str, int] = {}  # since the last line, per kind
        self._last: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def hit(self, kind: str = "", now: float | None = None) -> int | None:
        """Count one of `kind`; how many came since the last line when one is due now, else None."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._since[kind] = self._since.get(kind, 0) + 1
        now = self.clock() if now is None else now
        if now - self._last.get(kind, -math.inf) < self.period_s:
            return None
        self._last[kind] = now
        since, self._since[kind] = self._since[kind], 0
        return since

"""Ask for help (issue 40): raise `help_needed` when the policy's success estimate stays low.

The estimate is the greedy Q of each decision, mapped through a calibration (research/q_calibration.py
writes one: points of a monotone map from Q to the success frequency on held-out episodes) when one is
given. `ticks` decisions in a row below `threshold` raise the signal; one at or above it lowers it. Off
when the threshold is 0. Measured on the shipped model, its Q does not separate failures from successes
(results/q_calibration/): leave it off there; check a model with that tool before relying on it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np


def load_calibration(path: str | Path) -> Callable[[float], float]:
    """The map Q -> success probability of a calibration file ({"q": [...], "p": [...]}, q increasing)."""
    data = json.loads(Path(path).read_text())
    q, p = np.asarray(data["q"], float), np.asarray(data["p"], float)
    if q.ndim != 1 or q.shape != p.shape or len(q) < 1 or np.any(np.diff(q) < 0):
        raise ValueError(f"{path}: expected {{'q': [...], 'p': [...]}} of one length, q increasing")
    return lambda value: float(np.interp(value, q, p))


class HelpSignal:
    def __init__(self, threshold: float, ticks: int = 3, calibrate: Callable[[float], float] | None = None):
        if not 0.0 <= threshold < 1.0 or ticks < 1:
            raise ValueError(f"help threshold must lie in [0, 1) and ticks be >= 1, got {threshold}, {ticks}")
        self.threshold, self.ticks, self.calibrate = float(threshold), int(ticks), calibrate
        self.needed = False
        self._low = 0
        self.estimate = math.nan  # the last success estimate

    @property
    def enabled(self) -> bool:
        return self.threshold > 0.0

    def update(self, q_value: float) -> bool | None:
        """One decision's greedy Q; returns the new state when it changes, else None."""
        if not self.enabled or not math.isfinite(q_value):
            return None
        self.estimate = self.calibrate(q_value) if self.calibrate is not None else float(q_value)
        self._low = self._low + 1 if self.estimate < self.threshold else 0
        needed = self._low >= self.ticks
        if needed == self.needed:
            return None
        self.needed = needed
        return needed

    def reset(self) -> bool | None:
        """A new episode (or a person drove): the count starts again; returns False if it was raised."""
        self._low = 0
        if self.needed:
            self.needed = False
            return False
        return None

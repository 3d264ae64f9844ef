"""qt_msgs/QAction's fields from a decision, one rule for the policy node (an rclpy message) and the
episode bags (a rosbags message): values float32, bins uint16 (empty for a human's or a script's
action), q_value NaN when unknown, as many names and bins as values."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


SOURCES = ("policy", "operator", "teleop")  # who decided a step's action (QAction.source)


def qaction_fields(values, dimension_names: Sequence[str] = (), bins=None, q_value: float = math.nan,
                   terminate: bool = False, instruction: str = "", source: str = "policy",
                   intervention: bool = False) -> dict:
    """The QAction fields but the header (ValueError for names or bins that do not match the values)."""
    vals = np.asarray(values, dtype=np.float32).reshape(-1)
    names = [str(n) for n in dimension_names]
    if names and len(names) != vals.size:
        raise ValueError(f"{len(names)} dimension names for {vals.size} action values")
    b = np.zeros(0, np.int64) if bins is None else np.asarray(bins).reshape(-1)
    if b.size and b.size != vals.size:
        raise ValueError(f"{b.size} bins for {vals.size} action values")
    if b.size and (b.min() < 0 or b.max() > np.iinfo(np.uint16).max):
        raise ValueError("bins out of uint16 range")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return dict(instruction=str(instruction), dimension_names=names, values=vals, bins=b.astype(np.uint16),
                q_value=float(q_value), terminate=bool(terminate), source=source, intervention=bool(intervention))

"""The one alignment rule (data/bag_format.py): a step's observation is the latest message of each
stream (a camera's frames, the robot state) stamped at or before the step's camera frame.

The bag reader applies it to a recorded episode, the policy node to what it has heard so far, so that
what the robot decides from is what training reads."""
from __future__ import annotations

import bisect
from typing import Sequence


def latest_at_or_before(stamps: Sequence[float], t: float) -> int | None:
    """Index of the last of the ascending `stamps` that is <= t; None when every one is later."""
    k = bisect.bisect_right(stamps, t) - 1
    return k if k >= 0 else None

"""What one control tick of the policy returns: an `Action` (values, bins, Q, the robot's commands) or
a `Hold` (why nothing is sent)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..robot.commands import RobotCommand


@dataclass(frozen=True)
class Action:
    """One decision: `values` is the action the robot is sent (decoded, clipped to the limits, then
    through the safety limits); `bins` is the model's raw choice; `command` the robot's commands."""

    values: np.ndarray  # (d,) float32, within [action_low, action_high]
    bins: np.ndarray  # (d,) int64
    q_value: float  # estimated success probability of this action
    latency_ms: float  # model time for this decision
    image_stamp: Any  # what add_image got as `stamp` for the newest frame used (the node passes the Header)
    instruction: str
    names: tuple[str, ...]
    command: RobotCommand | None = None
    limited: tuple[str, ...] = ()  # safety limits that changed this step's command (robot/safety.py)
    source: str = "policy"  # who decided what the robot was sent: "policy", or "operator" (runtime/takeover.py)

    @property
    def terminate(self) -> bool:
        return bool(self.command is not None and self.command.terminate)


@dataclass(frozen=True)
class Hold:
    """No action this tick. `kind` is stable across ticks (for logging transitions), `reason` is for humans."""

    kind: str  # disabled | terminated | no_instruction | no_image | settling | camera_stale | no_new_frame | no_state
    #            | state_stale | no_pose | pose_stale | q_floor | error
    reason: str

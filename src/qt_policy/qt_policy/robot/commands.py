"""Action values <-> robot commands, both ways, for one embodiment.

`CommandMap.to_commands(values)` is what the policy node sends (command = offset + scale * value,
per dimension) and `to_action(commands)` its exact inverse, used by the recorder to turn a
teleoperator's commands into the action dimensions a policy would have chosen. `RobotCommand`
groups a command vector the way the messages do (twist, joints, gripper, terminate), so the ROS
adapters only copy fields.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .embodiment import TWIST_AXES, Embodiment

TERMINATE_THRESHOLD = 0.5


@dataclass(frozen=True)
class RobotCommand:
    """One control step's commands, grouped by message."""

    linear: np.ndarray | None  # (3,) m/s, None when the embodiment has no twist dimension
    angular: np.ndarray | None  # (3,) rad/s
    joint_names: tuple[str, ...]
    joints: np.ndarray | None  # positions or velocities, in joint_names order; None without joint dimensions
    gripper: float | None
    terminate: bool


class CommandMap:
    def __init__(self, embodiment: Embodiment):
        self.embodiment = emb = embodiment.validate()
        self.scale = np.array([a.scale for a in emb.actions], dtype=np.float64)
        self.offset = np.array([a.offset for a in emb.actions], dtype=np.float64)
        self.low = np.array(emb.action_low, dtype=np.float64)
        self.high = np.array(emb.action_high, dtype=np.float64)
        self.is_velocity = np.array([a.is_velocity for a in emb.actions], dtype=bool)
        self.twist_index = {a.command: i for i, a in enumerate(emb.actions) if a.kind == "twist"}
        self.joint_index = [i for i, a in enumerate(emb.actions) if a.joint]
        self.joint_names = tuple(emb.actions[i].joint for i in self.joint_index)
        self.joint_kind = emb.actions[self.joint_index[0]].kind if self.joint_index else ""
        self.gripper_index = next((i for i, a in enumerate(emb.actions) if a.kind == "gripper"), None)
        self.terminate_index = next((i for i, a in enumerate(emb.actions) if a.kind == "terminate"), None)

    @property
    def dim(self) -> int:
        return len(self.scale)

    def to_commands(self, values) -> np.ndarray:
        """Action values (clipped to [low, high]) -> command vector (command units)."""
        v = np.clip(np.asarray(values, dtype=np.float64).reshape(-1), self.low, self.high)
        if v.shape != self.scale.shape:
            raise ValueError(f"{v.size} action values for {self.dim} dimensions {self.embodiment.action_names}")
        return self.offset + self.scale * v

    def to_action(self, commands) -> np.ndarray:
        """The inverse: command vector -> action values, clipped to [low, high] (float32)."""
        c = np.asarray(commands, dtype=np.float64).reshape(-1)
        return np.clip((c - self.offset) / self.scale, self.low, self.high).astype(np.float32)

    def group(self, commands) -> RobotCommand:
        c = np.asarray(commands, dtype=np.float64).reshape(-1)
        linear = angular = None
        if self.twist_index:
            axes = [c[self.twist_index[k]] if k in self.twist_index else 0.0 for k in TWIST_AXES]
            linear, angular = np.array(axes[:3]), np.array(axes[3:])
        joints = c[self.joint_index] if self.joint_index else None
        gripper = float(c[self.gripper_index]) if self.gripper_index is not None else None
        terminate = self.terminate_index is not None and c[self.terminate_index] >= TERMINATE_THRESHOLD
        return RobotCommand(linear, angular, self.joint_names, joints, gripper, bool(terminate))

    # ----- message fields -> (dimension indices, command values), for the recorder ---------------
    def from_twist(self, linear, angular) -> tuple[list[int], list[float]]:
        fields = dict(zip(TWIST_AXES, [*map(float, linear), *map(float, angular)]))
        idx = [i for k, i in self.twist_index.items()]
        return idx, [fields[self.embodiment.actions[i].command] for i in idx]

    def from_joints(self, names, values) -> tuple[list[int], list[float]]:
        """A joint command message (names may be empty = the embodiment's order); joints it lacks are
        left alone. Raises ValueError when the lengths disagree."""
        names, values = list(names), [float(v) for v in values]
        if not names:
            if len(values) != len(self.joint_names):
                raise ValueError(f"{len(values)} joint commands for {len(self.joint_names)} joints {list(self.joint_names)}")
            names = list(self.joint_names)
        if len(names) != len(values):
            raise ValueError(f"{len(names)} joint names for {len(values)} values")
        given = dict(zip(names, values))
        idx = [i for i, j in zip(self.joint_index, self.joint_names) if j in given]
        return idx, [given[self.embodiment.actions[i].joint] for i in idx]

    def from_gripper(self, value: float) -> tuple[list[int], list[float]]:
        return ([self.gripper_index], [float(value)]) if self.gripper_index is not None else ([], [])

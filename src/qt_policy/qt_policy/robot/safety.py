"""Limits between the policy's command and the robot, from the embodiment file (all in command units).

Per dimension, applied every control step in this order:

* velocity commands (twist, joint_velocity): |command| <= max_velocity, and a change of at most
  max_step from the previous step's command (an acceleration limit; after a hold the previous
  command is 0, so motion ramps up again);
* position commands (joint_position, gripper): the target moves at most max_velocity / rate and
  at most max_step from the previous target (none before the first step: the first target is sent
  as decoded);
* the workspace box: a linear twist component that points out of the box is zeroed while the end
  effector is at or beyond that face (motion back in, and along the face, is kept).

`SafetyFilter.apply` returns the limited command and the names of the limits that acted, which the
policy node counts on /diagnostics. The hold input and the Q floor are in runtime/policy_runner.py.
"""
from __future__ import annotations

import numpy as np

from .embodiment import Embodiment


class SafetyFilter:
    def __init__(self, embodiment: Embodiment):
        emb = embodiment.validate()
        self.dt = 1.0 / emb.control_rate_hz
        self.is_velocity = np.array([a.is_velocity for a in emb.actions], dtype=bool)
        self.max_velocity = np.array([a.max_velocity or np.inf for a in emb.actions], dtype=np.float64)
        self.max_step = np.array([a.max_step or np.inf for a in emb.actions], dtype=np.float64)
        self.position_step = np.minimum(self.max_velocity * self.dt, self.max_step)
        self.linear_index = [next((i for i, a in enumerate(emb.actions) if a.command == f"twist.linear.{ax}"), None)
                             for ax in "xyz"]
        self.has_box = bool(emb.workspace.pose_topic.strip())
        self.box_min = np.array(emb.workspace.min, dtype=np.float64)
        self.box_max = np.array(emb.workspace.max, dtype=np.float64)
        self.previous: np.ndarray | None = None

    def reset(self) -> None:
        """The robot held (zero velocity): velocity limits ramp from 0; position targets from the next one."""
        self.previous = None

    def apply(self, command, ee_position=None) -> tuple[np.ndarray, list[str]]:
        c = np.array(command, dtype=np.float64).reshape(-1)
        acted = []
        vel = self.is_velocity
        limited = np.clip(c, -self.max_velocity, self.max_velocity)
        if np.any(limited[vel] != c[vel]):
            acted.append("max_velocity")
        c[vel] = limited[vel]
        prev = self.previous
        prev_vel = np.zeros_like(c) if prev is None else prev
        stepped = np.clip(c, prev_vel - self.max_step, prev_vel + self.max_step)
        if np.any(stepped[vel] != c[vel]):
            acted.append("max_step")
        c[vel] = stepped[vel]
        if prev is not None:
            pos = ~vel
            moved = np.clip(c, prev - self.position_step, prev + self.position_step)
            if np.any(moved[pos] != c[pos]):
                acted.append("position_rate")
            c[pos] = moved[pos]
        if self.has_box and ee_position is not None:
            p = np.asarray(ee_position, dtype=np.float64).reshape(3)
            for axis, i in enumerate(self.linear_index):
                if i is None:
                    continue
                if (p[axis] >= self.box_max[axis] and c[i] > 0) or (p[axis] <= self.box_min[axis] and c[i] < 0):
                    c[i] = 0.0
                    if "workspace" not in acted:
                        acted.append("workspace")
        self.previous = c.copy()
        return c, acted

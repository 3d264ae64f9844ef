"""A person taking over while the policy drives (issue 40): the operator's latest commands, and who drives.

The operator's device (a joystick or spacemouse through a teleop node, a gripper button) publishes the
robot's own kinds of command message on operator topics; the policy node is the mux and the robot gets
one command stream. While the operator's commands keep coming (the last one within `release_after_s`)
each control tick sends the operator's command instead of the policy's, through the same action limits
and safety filter; when they stop, the policy drives again. Dimensions the operator does not command
(a twist-only device on an arm with a gripper): velocities 0, positions (gripper, joint positions) held
at what the robot was last sent.
"""
from __future__ import annotations

import numpy as np

from ..robot.commands import CommandMap


class Takeover:
    """The operator's command of the current takeover, in command units by action dimension."""

    def __init__(self, cmap: CommandMap, release_after_s: float):
        if release_after_s < 0:
            raise ValueError(f"release_after_s must be >= 0 (0 = no takeover), got {release_after_s}")
        self.cmap, self.release_after_s = cmap, float(release_after_s)
        self._given: dict[int, float] = {}
        self._last = -np.inf

    def command(self, dims, values, now: float) -> None:
        """An operator message set these dimensions (command units, codec/commands.command_values)."""
        if not self.active(now):
            self._given = {}  # a new takeover starts from the robot's last command
        self._given.update(zip((int(d) for d in dims), (float(v) for v in values)))
        self._last = now

    def release(self) -> None:
        """Hand control back now (a button), not only when the commands stop."""
        self._given, self._last = {}, -np.inf

    def active(self, now: float) -> bool:
        return self.release_after_s > 0 and bool(self._given) and now - self._last <= self.release_after_s

    def action(self, last_sent: np.ndarray | None) -> np.ndarray:
        """The operator's action values: their commands; velocities not commanded 0, positions held."""
        held = self.cmap.to_commands(last_sent if last_sent is not None else np.zeros(self.cmap.dim))
        commands = np.where(self.cmap.is_velocity, 0.0, held)
        for i, v in self._given.items():
            commands[i] = v
        return self.cmap.to_action(commands)

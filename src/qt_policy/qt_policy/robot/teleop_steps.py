"""A teleoperator's commands -> one action per control step, tied to camera frames.

The recorder (teleoperation mode) and the bag import feed this the same events in time order:
commands as they arrive (`command`), camera frames (`frame`), the episode's end (`finish`). Step
frames are chosen by `StepSchedule` (at most control_rate_hz, as the policy node decides); the
action of the step that starts at step frame t_k is what the operator commanded over [t_k, t_k+1)
by the CommandWindow rule (velocity: time-weighted mean; position: latest), inverted to action
values by `CommandMap.to_action` -- the exact inverse of what the policy node sends. So a step is
only complete when the next step frame (or the end) arrives; the episode's last step spans from
its frame to the end. All times are seconds on one clock (the recorder's receive time).

Steps before the operator's first command of the episode are not steps: the robot was waiting for
the operator (and a policy never sees that wait, so it must not learn to wait either). From the
first command on every step counts, pauses included. At the end, a step opened less than half a
control period before it is dropped: the end came with (or just after) that frame -- a success
topic and the frame after the successful step arrive in either order -- so the robot did not act
from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .command_window import CommandWindow
from .commands import CommandMap
from .embodiment import Embodiment
from .steps import StepSchedule


@dataclass(frozen=True)
class TeleopStep:
    frame: Any  # what `frame` was given for the step's observation (the recorder passes the frame's stamp)
    values: np.ndarray  # (d,) float32 action values, within [low, high]
    commands: np.ndarray  # (d,) the commands they were made from (command units)
    start: float
    end: float


class TeleopSteps:
    def __init__(self, embodiment: Embodiment):
        self.map = CommandMap(embodiment)
        self.window = CommandWindow(self.map.is_velocity, self.map.offset, embodiment.command_timeout_s)
        self.schedule = StepSchedule(embodiment.control_rate_hz)
        self._open: tuple[float, Any] | None = None  # (start time, frame) of the step in progress
        self._first_command: float | None = None  # the operator's first command of this episode

    def start(self) -> None:
        """A new episode: the next frame starts its first step (commands already in force stay)."""
        self._open = None
        self._first_command = None
        self.schedule.restart()

    def command(self, t: float, dims, values) -> None:
        self.window.update(t, dims, values)
        if self._first_command is None and dims:
            self._first_command = float(t)

    def command_seen(self, t: float) -> None:
        """A command at t already in the window (a recorder's pre-roll) counts as the operator's first."""
        if self._first_command is None:
            self._first_command = float(t)

    def frame(self, t: float, frame: Any) -> TeleopStep | None:
        """A camera frame at time t; when it is a step frame, it closes the open step (returned) and opens one."""
        self.schedule.note_frame(t)
        if not self.schedule.is_due(t):
            return None
        self.schedule.taken(t)
        done = self._close(t)
        self._open = (float(t), frame)
        return done

    def finish(self, t: float, terminate: bool = False) -> TeleopStep | None:
        """The episode ends at t: its last step (None when no frame opened one). `terminate` sets the
        terminate dimension (if any) to its high value: the operator said the task is done."""
        step = self._close(t) if self._open is not None and t - self._open[0] >= 0.5 * self.schedule.period_s else None
        self._open = None
        if step is not None and terminate and self.map.terminate_index is not None:
            i = self.map.terminate_index
            step.values[i] = self.map.high[i]
        return step

    def _close(self, t: float) -> TeleopStep | None:
        if self._open is None:
            return None
        start, frame = self._open
        if self._first_command is None or self._first_command >= t:
            return None  # the operator has not started yet
        commands = self.window.step(start, max(float(t), start))
        self.window.forget_before(start)
        return TeleopStep(frame, self.map.to_action(commands), commands, start, float(t))

"""Which camera frames are control steps: at most `control_rate_hz` a second, on the frames' clock.

Decisions, recorded steps and imported steps are tied to frames (action t from observation t). A
frame is the next step's when it arrives no earlier than the step's due time minus a slack of half
a camera period (at most a quarter control period): a 30 Hz camera gives every third frame at
10 Hz, a 10 Hz camera every frame. After a step, the next is due one period later, or one period
after the frame when the step came half a period or more late (the schedule restarts). The policy
node (runtime/policy_runner.py), the recorder's teleoperation steps and the bag import use this.
"""
from __future__ import annotations


class StepSchedule:
    def __init__(self, control_rate_hz: float):
        if not control_rate_hz > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {control_rate_hz}")
        self.period_s = 1.0 / float(control_rate_hz)
        self.frame_interval: float | None = None  # the camera's period (running mean of arrival gaps)
        self.next_due: float | None = None
        self._last_frame: float | None = None

    def restart(self) -> None:
        """A new episode: the next frame is a step."""
        self.next_due = None

    def note_frame(self, t: float) -> None:
        """Every frame, in arrival order: keeps the camera-period estimate."""
        if self._last_frame is not None:
            gap = float(t) - self._last_frame
            if 0.0 < gap < 1.0:
                self.frame_interval = gap if self.frame_interval is None else 0.9 * self.frame_interval + 0.1 * gap
        self._last_frame = float(t)

    def is_due(self, t: float) -> bool:
        slack = 0.25 * self.period_s
        if self.frame_interval is not None:
            slack = min(slack, 0.5 * self.frame_interval)
        return self.next_due is None or t >= self.next_due - slack

    def taken(self, t: float) -> None:
        """The frame that arrived at t was used for a step."""
        due = self.next_due
        self.next_due = due + self.period_s if due is not None and t < due + 0.5 * self.period_s else t + self.period_s

"""How commands sent between two control steps become the command of that step.

A teleoperator (a joystick into MoveIt Servo at 50-100 Hz, a leader arm, a gripper button) sends
commands at its own rate; a control step spans [t0, t1) between two step frames. The rule, for
each dimension:

* velocity commands (twist, joint_velocity): the **time-weighted mean** of the command in force
  over [t0, t1) -- what the robot integrates, i.e. the step's displacement / its duration. A
  command stays in force until the next one or `timeout_s` (MoveIt Servo's incoming command
  timeout), after which the robot stops: zero.
* position commands (joint_position, gripper): the **latest** command received before t1 -- the
  target the robot was last told to reach; before the first one, the dimension's offset (action 0).

The simulated arm applies velocity commands by the same rule, so an arm driven by TwistStamped
moves as a real one behind MoveIt Servo would (nodes/sim_arm_node.py).
"""
from __future__ import annotations

import bisect

import numpy as np


class CommandWindow:
    def __init__(self, is_velocity, rest, timeout_s: float):
        self.is_velocity = np.asarray(is_velocity, dtype=bool)
        self.rest = np.asarray(rest, dtype=np.float64)  # value of a position dimension before any command
        self.timeout_s = float(timeout_s)
        self._times: list[list[float]] = [[] for _ in self.is_velocity]
        self._values: list[list[float]] = [[] for _ in self.is_velocity]

    def clear(self) -> None:
        """Forget every command (a new episode: nothing said before it is in force)."""
        for t, v in zip(self._times, self._values):
            t.clear()
            v.clear()

    def update(self, t: float, dims, values) -> None:
        """Commands for dimensions `dims` received at time t (a late, out-of-order one is inserted in place)."""
        for i, v in zip(dims, values):
            times, vals = self._times[i], self._values[i]
            k = bisect.bisect_right(times, t)
            times.insert(k, float(t))
            vals.insert(k, float(v))

    def step(self, t0: float, t1: float) -> np.ndarray:
        """The commands of the step [t0, t1) by the module's rule (t1 <= t0: the values in force at t0)."""
        out = np.empty(len(self.is_velocity), dtype=np.float64)
        for i, velocity in enumerate(self.is_velocity):
            out[i] = self._mean(i, t0, t1) if velocity else self._latest(i, t1)
        return out

    def forget_before(self, t: float) -> None:
        """Drop commands no longer needed for steps starting at t or later (keeps the one in force)."""
        for times, vals in zip(self._times, self._values):
            k = bisect.bisect_right(times, t) - 1
            if k > 0:
                del times[:k], vals[:k]

    def _latest(self, i: int, t1: float) -> float:
        times = self._times[i]
        k = bisect.bisect_left(times, t1) - 1  # received strictly before t1
        return self._values[i][k] if k >= 0 else float(self.rest[i])

    def _in_force(self, i: int, t: float) -> float:
        times = self._times[i]
        k = bisect.bisect_right(times, t) - 1
        if k < 0 or t - times[k] >= self.timeout_s:
            return 0.0
        return self._values[i][k]

    def _mean(self, i: int, t0: float, t1: float) -> float:
        if t1 <= t0:
            return self._in_force(i, t0)
        times, vals = self._times[i], self._values[i]
        # piecewise constant: each command from its time to the next command or its timeout
        k = max(bisect.bisect_right(times, t0) - 1, 0)
        total = 0.0
        for j in range(k, len(times)):
            start = times[j]
            if start >= t1:
                break
            end = min(times[j + 1] if j + 1 < len(times) else np.inf, start + self.timeout_s)
            lo, hi = max(start, t0), min(end, t1)
            if hi > lo:
                total += vals[j] * (hi - lo)
        return total / (t1 - t0)

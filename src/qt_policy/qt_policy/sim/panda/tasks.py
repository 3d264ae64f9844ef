"""The Panda's tasks (robosuite 1.5.2 envs), each with its language instruction.

robosuite's Stack has a red 4 cm cube (cubeA, the one to move) and a green 5 cm cube (cubeB);
success is the red cube resting on the green one, no longer held. Door succeeds once the hinge has
opened 0.3 rad, which the latch allows only after the lever handle is turned down past ~1.1 rad.

max_steps was picked from measurements (research/panda_experts.py, results/panda_experts/): the
scripted expert plus N(0, 0.1) action noise succeeded on 20/20 placement seeds (0..19) of every
task, the slowest success taking 38 steps (lift; mean 32), 95 (door; mean 84) and 120 (stack;
mean 68), so the budgets leave a ~30 % margin over the slowest. Episodes stop at the first success.
"""
from __future__ import annotations

from ..task_spec import SimTask, task_dict


PANDA_TASKS: dict[str, SimTask] = task_dict(
    SimTask("lift", "Lift", "lift the cube", max_steps=50, suite="robosuite"),
    SimTask("door", "Door", "open the door", max_steps=125, suite="robosuite"),
    SimTask("stack", "Stack", "stack the red cube on the green cube", max_steps=160, suite="robosuite"),
)

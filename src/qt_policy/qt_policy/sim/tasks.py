"""Registry of the simulated tasks, each with its language instruction: the Meta-World v3 ones (TASKS) and the Panda's (PANDA_TASKS).

Pairs share one scene (same MJCF, same objects) and differ only in the instruction (and in the
object's start state that makes the instruction meaningful: the drawer starts closed for "open the
drawer" and open for "close the drawer"). That forces the policy to read the instruction.

max_steps was picked from measurements: the scripted expert plus N(0, 0.1) action noise succeeded
in 30/30 seeds on every task, the slowest success taking 96 steps (drawer/window ~80-96,
button ~75, faucet ~68), so 130 steps leaves a >30 % margin. Episodes stop at the first success.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OPPOSITE_TASK", "PANDA_TASKS", "SimTask", "TASKS", "all_tasks", "get_task", "task_for_instruction"]


@dataclass(frozen=True)
class SimTask:
    """One task: `name` (our key), `env_name` (the simulator's env), the instruction, the step budget,
    and the simulator it runs in: "metaworld" (sim/arm.py, the Sawyer) or "robosuite" (sim/panda/,
    the 7-D Panda with two cameras)."""

    name: str
    env_name: str
    instruction: str
    max_steps: int = 130
    suite: str = "metaworld"


def task_dict(*tasks: SimTask) -> dict[str, SimTask]:
    """A registry keyed by task name."""
    return {t.name: t for t in tasks}


TASKS: dict[str, SimTask] = task_dict(
    SimTask("drawer-open", "drawer-open-v3", "open the drawer"),
    SimTask("drawer-close", "drawer-close-v3", "close the drawer"),
    SimTask("window-open", "window-open-v3", "open the window"),
    SimTask("window-close", "window-close-v3", "close the window"),
    SimTask("faucet-open", "faucet-open-v3", "turn the faucet on"),
    SimTask("faucet-close", "faucet-close-v3", "turn the faucet off"),
    SimTask("button-press-topdown", "button-press-topdown-v3", "press the button"),
)

# The Panda's tasks (robosuite 1.5.2 envs, sim/panda/). robosuite's Stack has a red 4 cm cube (cubeA,
# the one to move) and a green 5 cm cube (cubeB); success is the red cube resting on the green one, no
# longer held. Door succeeds once the hinge has opened 0.3 rad, which the latch allows only after the
# lever handle is turned down past ~1.1 rad. max_steps from measurements (research/panda_experts.py,
# results/panda_experts/): the scripted expert plus N(0, 0.1) action noise succeeded on 20/20 placement
# seeds (0..19) of every task, the slowest success taking 38 steps (lift; mean 32), 95 (door; mean 84)
# and 120 (stack; mean 68), so the budgets leave a ~30 % margin over the slowest.
PANDA_TASKS: dict[str, SimTask] = task_dict(
    SimTask("lift", "Lift", "lift the cube", max_steps=50, suite="robosuite"),
    SimTask("door", "Door", "open the door", max_steps=125, suite="robosuite"),
    SimTask("stack", "Stack", "stack the red cube on the green cube", max_steps=160, suite="robosuite"),
)

# Tasks that share a scene and ask for the opposite: used to make "wrong task" failures.
OPPOSITE_TASK: dict[str, str] = {
    "drawer-open": "drawer-close",
    "drawer-close": "drawer-open",
    "window-open": "window-close",
    "window-close": "window-open",
    "faucet-open": "faucet-close",
    "faucet-close": "faucet-open",
}


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def all_tasks() -> dict[str, SimTask]:
    """Every registered task: Meta-World's (TASKS, the default everywhere) and the Panda's."""
    return {**TASKS, **PANDA_TASKS}


def get_task(name: str) -> SimTask:
    """The task registered as `name` (either simulator); KeyError listing the known names otherwise."""
    tasks = all_tasks()
    try:
        return tasks[name]
    except KeyError:
        raise KeyError(f"unknown sim task {name!r}; known: {sorted(tasks)}") from None


def task_for_instruction(text: str, suite: str = "metaworld") -> SimTask:
    """The task of simulator `suite` whose instruction equals `text` up to case and whitespace.

    No fuzzy matching: an unknown instruction raises KeyError listing the known ones, so a typo
    never silently runs another task.
    """
    key = _norm(text)
    tasks = [t for t in all_tasks().values() if t.suite == suite]
    for task in tasks:
        if _norm(task.instruction) == key:
            return task
    known = ", ".join(repr(t.instruction) for t in tasks)
    raise KeyError(f"no sim task for instruction {text!r}; known instructions: {known}")

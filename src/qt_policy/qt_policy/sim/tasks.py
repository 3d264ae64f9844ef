"""Registry of the Meta-World v3 tasks the simulated arm can do, each with its language instruction.

Pairs share one scene (same MJCF, same objects) and differ only in the instruction (and in the
object's start state that makes the instruction meaningful: the drawer starts closed for "open the
drawer" and open for "close the drawer"). That forces the policy to read the instruction.

max_steps was picked from measurements: the scripted expert plus N(0, 0.1) action noise succeeded
in 30/30 seeds on every task, the slowest success taking 96 steps (drawer/window ~80-96,
button ~75, faucet ~68), so 130 steps leaves a >30 % margin. Episodes stop at the first success.
"""
from __future__ import annotations

from .panda.tasks import PANDA_TASKS
from .task_spec import SimTask, task_dict

__all__ = ["OPPOSITE_TASK", "SimTask", "TASKS", "all_tasks", "get_task", "task_for_instruction"]


TASKS: dict[str, SimTask] = task_dict(
    SimTask("drawer-open", "drawer-open-v3", "open the drawer"),
    SimTask("drawer-close", "drawer-close-v3", "close the drawer"),
    SimTask("window-open", "window-open-v3", "open the window"),
    SimTask("window-close", "window-close-v3", "close the window"),
    SimTask("faucet-open", "faucet-open-v3", "turn the faucet on"),
    SimTask("faucet-close", "faucet-close-v3", "turn the faucet off"),
    SimTask("button-press-topdown", "button-press-topdown-v3", "press the button"),
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

"""Which simulated arm runs a task: Meta-World's Sawyer (sim/arm.py) or robosuite's Panda (sim/panda/).

Both have the same interface (reset(task, seed), step(action), observation, close(), action_names,
state_names, clip_action(action)); callers pick one by the task's `suite` and never import either.
"""
from __future__ import annotations

SUITES = ("metaworld", "robosuite")


def make_arm(suite: str, image_size: int = 64):
    """A fresh arm of `suite` rendering image_size x image_size frames (every camera)."""
    if suite == "metaworld":
        from .arm import SimArm

        return SimArm(image_size)
    if suite == "robosuite":
        from .panda.arm import PandaArm

        return PandaArm(image_size)
    raise ValueError(f"unknown simulator suite {suite!r}; known: {SUITES}")


def suite_of(task_names) -> str:
    """The one suite the tasks run in; ValueError when they mix simulators (one arm type per run)."""
    from .tasks import get_task

    suites = sorted({get_task(name).suite for name in task_names})
    if len(suites) != 1:
        raise ValueError(f"the tasks {list(task_names)} run in different simulators {suites}: one at a time")
    return suites[0]


#: the embodiment name each simulated arm's episodes carry (config/embodiments/)
EMBODIMENT_SUITES = {"robosuite_panda": "robosuite"}


def tasks_for_checkpoint(checkpoint) -> list[str]:
    """The tasks a checkpoint's arm runs by default: the Panda's for a model trained on Panda episodes
    (its config carries the robosuite_panda embodiment), else Meta-World's."""
    from ..core.checkpoint_files import read_config
    from .tasks import all_tasks

    try:
        embodiment = read_config(checkpoint).get("embodiment") or {}
    except (FileNotFoundError, ValueError):
        embodiment = {}
    suite = EMBODIMENT_SUITES.get(embodiment.get("name", ""), "metaworld")
    return [name for name, task in all_tasks().items() if task.suite == suite]

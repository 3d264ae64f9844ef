"""What a simulated task is (shared by the Meta-World and the Panda registries, which import it
rather than each other)."""
from __future__ import annotations

from dataclasses import dataclass


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

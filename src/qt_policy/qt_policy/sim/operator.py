"""A scripted person in the loop (issue 40): watches the policy drive and takes over when it gets nowhere.

Per episode: once the policy has gone `patience` steps without success, the scripted expert (with its
small noise, sim/scripted.py) takes over and drives until the episode ends (at its first success, as every
episode does, or at the step limit); every step it drove is flagged, as the policy node's mux flags an
operator's steps. Used by the evaluation harness (`run_task(takeover=...)`) and the flywheel's
`--takeover-after`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import scripted


class ScriptedOperator:
    def __init__(self, task, patience: int, seed: int = 0):
        if patience < 0:
            raise ValueError(f"patience must be >= 0 steps, got {patience}")
        self.task, self.patience, self.seed = task, int(patience), int(seed)
        self.flags: list[list[bool]] = []
        self._experts: list = []

    def reset(self, episodes: int, seeds: list[int] | None = None) -> None:
        """A new batch of episodes (placement seeds seed their experts' noise)."""
        self.flags = [[] for _ in range(episodes)]
        keys = seeds if seeds is not None else list(range(episodes))
        self._experts = [scripted.make_collection_policy("expert", self.task, np.random.default_rng([self.seed, s]))
                         for s in keys]

    def __call__(self, i: int, observation, t: int) -> np.ndarray | None:
        """Episode i's action at step t if the person drives it, else None (the policy's stands)."""
        person = t >= self.patience
        self.flags[i].append(person)
        return self._experts[i].act(observation.raw_obs) if person else None


@dataclass
class ScriptedOperatorConfig:
    """Parameters of the scripted_operator node (nodes/scripted_operator_node.py): the person on the graph."""

    patience: int = 60  # frames of an episode without success before the person takes over
    seed: int = 0  # seeds the expert's small noise
    embodiment: str = "config/embodiments/metaworld_sawyer.yaml"  # the command kinds and scales
    instruction_topic: str = "instruction"  # each instruction is a new episode
    raw_obs_topic: str = "sim/raw_obs"  # the simulator's state with each frame
    success_topic: str = "success"  # ends the episode
    operator_twist_topic: str = "operator/twist"  # the policy node's operator inputs (its mux)
    operator_gripper_topic: str = "operator/gripper"
    settle_s: float = 0.05  # simulator states that arrive sooner after the instruction are of the scene before
    record_path: str = ""  # JSON lines, one per episode: what the person drove ('' = not written)

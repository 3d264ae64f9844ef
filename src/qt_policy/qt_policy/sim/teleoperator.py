"""A scripted teleoperator: the collection policies (sim/scripted.py) acting as a person at the device.

It plans episodes (tasks in turn, each an expert or a failure maker drawn as the offline datasets
draw them, sim/collect.py), and maps each observation of the simulator to the 4-D arm action the
way an operator's hands would (the Panda's 7-D action too, rotation included); the node (nodes/scripted_teleop_node.py) sends it as TwistStamped +
gripper Float64 through the embodiment's mapping, exactly as a joystick into MoveIt Servo would.
Placement seeds count per task from `seed`, as the sim arm node counts them, so the same `seed`
on both gives the policy and the scene of one episode.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..paths import DEFAULT_EMBODIMENT
from .collect import episode_rng, sample_mode, scripted_policies
from .tasks import TASKS, get_task


@dataclass(frozen=True)
class PlannedEpisode:
    index: int
    task: str
    instruction: str
    seed: int  # placement seed (the sim arm's seed + k for the k-th episode of the task)
    kind: str  # expert | held_random | wrong_task | offset_goal | random


class ScriptedTeleoperator:
    def __init__(self, tasks, episodes_per_task: int, expert_fraction: float = 0.5, seed: int = 0):
        if not tasks:
            raise ValueError("no task to teleoperate")
        self.tasks = [get_task(t).name for t in tasks]  # KeyError listing the known ones
        if episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
        if not 0.0 <= expert_fraction <= 1.0:
            raise ValueError(f"expert_fraction must lie in [0, 1], got {expert_fraction}")
        self.plan: list[PlannedEpisode] = []
        mix = np.random.default_rng([int(seed), 7])  # which episodes are demonstrations
        for k in range(episodes_per_task):
            for name in self.tasks:
                mode = sample_mode(mix, expert_fraction)
                placement = int(seed) + k
                scripted = scripted_policies(get_task(name).suite)
                kind = scripted.sample_policy_kind(mode, episode_rng(name, placement, mode), name)
                self.plan.append(PlannedEpisode(len(self.plan), name, get_task(name).instruction, placement, kind))
        self._next = 0
        self.current: PlannedEpisode | None = None
        self._policy = None

    def next_episode(self) -> PlannedEpisode | None:
        """Start the next planned episode (None when all are done)."""
        if self._next >= len(self.plan):
            self.current, self._policy = None, None
            return None
        ep = self.current = self.plan[self._next]
        self._next += 1
        mode = "expert" if ep.kind == "expert" else "noisy"
        rng = episode_rng(ep.task, ep.seed, mode)
        scripted = scripted_policies(get_task(ep.task).suite)
        scripted.sample_policy_kind(mode, rng, ep.task)  # the same draws as collect_episode: kind, then the policy's
        self._policy = scripted.make_collection_policy(ep.kind, get_task(ep.task), rng)
        return ep

    def act(self, raw_obs) -> np.ndarray:
        """The operator's action (the arm's dimensions) in [-1, 1] for this observation of the current episode."""
        if self._policy is None:
            raise RuntimeError("no episode is running")
        return np.clip(np.asarray(self._policy.act(np.asarray(raw_obs, dtype=np.float64)), dtype=np.float32), -1.0, 1.0)


@dataclass
class ScriptedTeleopConfig:
    """Parameters of the scripted_teleop node."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))  # sim task names, taken in turn
    episodes_per_task: int = 2
    expert_fraction: float = 0.5  # share of demonstrations; the rest are failure makers (sim/scripted.py)
    seed: int = 1000  # first placement seed of each task: must equal the sim arm's `seed`
    embodiment: str = DEFAULT_EMBODIMENT  # the command topics and scales
    instruction_topic: str = "instruction"
    raw_obs_topic: str = "sim/raw_obs"
    success_topic: str = "success"
    settle_s: float = 0.05  # simulator states that arrive sooner after the instruction are not acted on
    pause_s: float = 1.0  # between an episode's end and the next instruction (the recorder finalizes)
    wait_for: list[str] = field(default_factory=lambda: ["sim_arm"])  # start once these nodes are up

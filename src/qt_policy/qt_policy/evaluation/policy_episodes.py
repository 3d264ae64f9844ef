"""Record a policy's own greedy episodes on the simulated arm as `EpisodeData`: what the recorder
would write had the same episodes run through the ROS graph (results/ros_loop: the same successes,
step for step), collected in-process, in lockstep, as the evaluation harness runs them."""
from __future__ import annotations

import numpy as np

from ..data.episode import EpisodeData
from ..sim.arm import ACTION_NAMES, STATE_NAMES
from .rollout import BatchPolicy, run_task


def collect_policy_episodes(arms, policy: BatchPolicy, task, seeds: list[int], episode_id=None) -> list[EpisodeData]:
    """len(seeds) greedy episodes of `task` (placement seeds[i] on arms[i]); each ends at its first
    success (reward 1 on that step) or at the task's step limit, as a generated or recorded one does.

    images[t]/states[t] are the observation the action was decided on; actions are as executed.
    episode_id(seed) names each episode (default f"{task}-{seed:07d}-policy").
    """
    steps: list[list[tuple]] = [[] for _ in seeds]

    def keep(i, observation, action):
        steps[i].append((observation.image, observation.state, action))

    success, _lengths, _q, _frames = run_task(arms[:len(seeds)], policy, task, seeds, on_action=keep)
    name = episode_id or (lambda seed: f"{task.name}-{int(seed):07d}-policy")
    episodes = []
    for seed, ok, trace in zip(seeds, success, steps):
        images, states, actions = zip(*trace)
        episodes.append(EpisodeData(
            instruction=task.instruction, images=np.stack(images), actions=np.stack(actions).astype(np.float32),
            success=bool(ok), action_names=list(ACTION_NAMES), states=np.stack(states).astype(np.float32),
            state_names=list(STATE_NAMES), episode_id=name(seed), end_reason="success" if ok else "timeout",
            task=task.name))
    return episodes

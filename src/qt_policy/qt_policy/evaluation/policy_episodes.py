"""Record a policy's own greedy episodes on the simulated arm as `EpisodeData`: what the recorder
would write had the same episodes run through the ROS graph (results/ros_loop: the same successes,
step for step), collected in-process, in lockstep, as the evaluation harness runs them."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..data.episode import EpisodeData
from ..sim.collect import sim_episode
from .rollout import BatchPolicy, run_task


def collect_policy_episodes(arms, policy: BatchPolicy, task, seeds: list[int], episode_id=None,
                            takeover=None, max_steps: int | None = None) -> list[EpisodeData]:
    """len(seeds) greedy episodes of `task` (placement seeds[i] on arms[i]); each ends at its first
    success (reward 1 on that step) or at the step limit (max_steps, default the task's), as a generated
    or recorded one does.

    images[t]/states[t] are the observation the action was decided on; actions are as executed.
    episode_id(seed) names each episode (default f"{task}-{seed:07d}-policy"). With `takeover` (a
    sim/operator.py ScriptedOperator) a person drives some steps; the episodes carry those flags.
    """
    images: list[list] = [[] for _ in seeds]
    states: list[list] = [[] for _ in seeds]
    actions: list[list] = [[] for _ in seeds]

    def keep(i, observation, action):
        cameras = observation.camera_images
        images[i].append(cameras[0] if len(cameras) == 1 else np.stack(cameras))
        states[i].append(observation.state)
        actions[i].append(action)

    if takeover is not None:
        takeover.reset(len(seeds), seeds)
    success, _lengths, _q, _frames = run_task(arms[:len(seeds)], policy, task, seeds, on_action=keep,
                                              takeover=takeover, max_steps=max_steps)
    name = episode_id or (lambda seed: f"{task.name}-{int(seed):07d}-policy")
    episodes = [sim_episode(task, images[i], states[i], actions[i], success[i], arms[i], name(seed))
                for i, seed in enumerate(seeds)]
    if takeover is not None:
        episodes = [dataclasses.replace(ep, interventions=np.array(takeover.flags[i], bool))
                    for i, ep in enumerate(episodes)]
    return episodes

"""Collect one simulated episode with a scripted policy, as an `EpisodeData`.

Episodes are reproducible from (task, seed, mode): the seed draws the object placement (in the
arm) and, through a generator derived from (seed, task, mode), the policy kind and its noise.
Use distinct seeds for distinct episodes of a task; expert and noisy episodes may share a seed.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..data.episode import EpisodeData
from .arm import ACTION_NAMES, STATE_NAMES, SimArm, clip_action
from .scripted import make_collection_policy, sample_policy_kind
from .tasks import get_task

MODES = ("expert", "noisy")
DEFAULT_EXPERT_FRACTION = 0.2


def sample_mode(rng: np.random.Generator, expert_fraction: float = DEFAULT_EXPERT_FRACTION) -> str:
    """ "expert" with probability `expert_fraction`, else "noisy" (the dataset's mix)."""
    return "expert" if rng.random() < expert_fraction else "noisy"


def episode_rng(task_name: str, seed: int, mode: str) -> np.random.Generator:
    """The policy's generator for episode (task, seed, mode); independent of the placement RNG."""
    return np.random.default_rng([int(seed), zlib.crc32(task_name.encode()), MODES.index(mode)])


def collect_episode(arm: SimArm, task_name: str, seed: int, mode: str = "expert", *,
                    policy_kind: str | None = None, max_steps: int | None = None) -> EpisodeData:
    """Run one episode of `task_name` on `arm` with a scripted policy and return it.

    mode: "expert" (scripted expert + small noise) or "noisy" (a failure maker, see
    `scripted.sample_policy_kind`); `policy_kind` overrides the kind drawn for the mode.
    images[t]/states[t] are the observation before action t; actions are as executed (clipped).
    The episode ends at the first success (success=True, end_reason="success": the only reward
    is 1 on that last step) or after `max_steps` (default: the task's) with end_reason="timeout".
    episode_id is f"{task}-{seed:06d}-{kind}", so the policy kind can be read back from it.
    """
    if mode not in MODES:
        raise ValueError(f"unknown collection mode {mode!r}; use one of {MODES}")
    task = get_task(task_name)
    limit = task.max_steps if max_steps is None else int(max_steps)
    rng = episode_rng(task_name, seed, mode)
    kind = policy_kind or sample_policy_kind(mode, rng, task_name)
    policy = make_collection_policy(kind, task, rng)

    obs = arm.reset(task_name, seed)
    images, states, actions = [], [], []
    success = False
    for _ in range(limit):
        action = clip_action(policy.act(obs.raw_obs))
        images.append(obs.image)
        states.append(obs.state)
        actions.append(action)
        obs, success = arm.step(action)
        if success:
            break

    size = arm.image_size
    return EpisodeData(
        instruction=task.instruction,
        images=np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
        actions=np.stack(actions).astype(np.float32) if actions else np.zeros((0, 4), np.float32),
        success=success,
        action_names=list(ACTION_NAMES),
        states=np.stack(states).astype(np.float32) if states else np.zeros((0, 4), np.float32),
        state_names=list(STATE_NAMES),
        episode_id=f"{task_name}-{int(seed):06d}-{kind}",
        end_reason="success" if success else "timeout",
        task=task_name,
    )

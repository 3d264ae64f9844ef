"""Collect one simulated episode with a scripted policy, as an `EpisodeData`.

Episodes are reproducible from (task, seed, mode, attempt): the seed draws the object placement
(in the arm) and, through a generator derived from (seed, task, mode, attempt), the policy kind and
its noise. Several attempts at one placement (attempt 0, 1, ...) see the same scene and act with
their own draws, as a robot retrying a set-up does.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..data.episode import EpisodeData
from .tasks import get_task

MODES = ("expert", "noisy")
DEFAULT_EXPERT_FRACTION = 0.2


def sample_mode(rng: np.random.Generator, expert_fraction: float = DEFAULT_EXPERT_FRACTION) -> str:
    """ "expert" with probability `expert_fraction`, else "noisy" (the dataset's mix)."""
    return "expert" if rng.random() < expert_fraction else "noisy"


def episode_rng(task_name: str, seed: int, mode: str, attempt: int = 0) -> np.random.Generator:
    """The policy's generator for episode (task, seed, mode, attempt); independent of the placement
    RNG. Attempt 0 keeps the generator of datasets made before attempts existed."""
    key = [int(seed), zlib.crc32(task_name.encode()), MODES.index(mode)]
    return np.random.default_rng(key + [int(attempt)] if attempt else key)


def collect_episode(arm, task_name: str, seed: int, mode: str = "expert", *, attempt: int = 0,
                    policy_kind: str | None = None, max_steps: int | None = None) -> EpisodeData:
    """Run one episode of `task_name` on `arm` (sim/arms.py: the task's simulator) with a scripted
    policy and return it.

    mode: "expert" (scripted expert + small noise) or "noisy" (a failure maker, see
    `scripted.sample_policy_kind`); `policy_kind` overrides the kind drawn for the mode.
    images[t]/states[t] are the observation before action t; actions are as executed (clipped).
    The episode ends at the first success (success=True, end_reason="success": the only reward
    is 1 on that last step) or after `max_steps` (default: the task's) with end_reason="timeout".
    episode_id is f"{task}-{seed:06d}-{kind}" (f"{task}-{seed:06d}-a{attempt}-{kind}" for attempts
    after the first), so the policy kind can be read back from its end.
    """
    if mode not in MODES:
        raise ValueError(f"unknown collection mode {mode!r}; use one of {MODES}")
    task = get_task(task_name)
    limit = task.max_steps if max_steps is None else int(max_steps)
    rng = episode_rng(task_name, seed, mode, attempt)
    scripted = scripted_policies(task.suite)
    kind = policy_kind or scripted.sample_policy_kind(mode, rng, task_name)
    policy = scripted.make_collection_policy(kind, task, rng)

    obs = arm.reset(task_name, seed)
    images, states, actions = [], [], []
    success = False
    for _ in range(limit):
        action = arm.clip_action(policy.act(obs.raw_obs))
        cameras = obs.camera_images
        images.append(cameras[0] if len(cameras) == 1 else np.stack(cameras))
        states.append(obs.state)
        actions.append(action)
        obs, success = arm.step(action)
        if success:
            break

    return sim_episode(task, images, states, actions, success, arm,
                       episode_id=f"{task_name}-{int(seed):06d}-{f'a{attempt}-' if attempt else ''}{kind}")


def scripted_policies(suite: str):
    """The module of a simulator's scripted collection policies (make_collection_policy, sample_policy_kind)."""
    if suite == "robosuite":
        from .panda import scripted
    else:
        from . import scripted
    return scripted


def sim_episode(task, images: list, states: list, actions: list, success: bool, arm,
                episode_id: str) -> EpisodeData:
    """The steps of one episode on the simulated arm (observation before each action, the action as
    executed) as `EpisodeData`: the scripted collectors and the policy's own episodes alike."""
    size = arm.image_size
    return EpisodeData(
        instruction=task.instruction,
        images=np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
        actions=np.stack(actions).astype(np.float32) if actions else np.zeros((0, len(arm.action_names)), np.float32),
        success=bool(success),
        action_names=list(arm.action_names),
        states=np.stack(states).astype(np.float32) if states else np.zeros((0, len(arm.state_names)), np.float32),
        state_names=list(arm.state_names),
        episode_id=episode_id,
        end_reason="success" if success else "timeout",
        task=task.name,
        embodiment=arm_embodiment(arm),
    )


def arm_embodiment(arm) -> dict | None:
    """The embodiment an arm's episodes are stored with (its `embodiment_file`), or None (the
    Meta-World arm: its data predates embodiment files, and models/ defaults to it)."""
    path = getattr(arm, "embodiment_file", None)
    if not path:
        return None
    from ..paths import resolve_data_path
    from ..robot.embodiment import load_embodiment

    return load_embodiment(resolve_data_path(path)).to_dict()

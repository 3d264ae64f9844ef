"""A small synthetic episode whose every value can be checked after a round trip (bags, cache, LeRobot)."""
import numpy as np

from qt_policy.data.episode import EpisodeData

ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
STATE_NAMES = ["j0", "j1", "j2"]


def make_episode(T=7, size=16, success=True, states=True, episode_id="ep_0001"):
    rng = np.random.default_rng(0)
    images = np.empty((T, size, size, 3), np.uint8)
    for t in range(T):  # distinct values per step and per channel
        images[t] = (rng.integers(0, 200, (size, size, 3)) + t) % 256
        images[t, 0, 0] = (t, 100 + t, 200 + t)
    return EpisodeData(
        instruction="pick up the red block", images=images,
        actions=rng.uniform(-1, 1, (T, 4)).astype(np.float32), success=success, action_names=list(ACTION_NAMES),
        states=rng.normal(size=(T, 3)).astype(np.float32) if states else None,
        state_names=list(STATE_NAMES) if states else [], episode_id=episode_id, end_reason="success_topic",
        task="pick-place")

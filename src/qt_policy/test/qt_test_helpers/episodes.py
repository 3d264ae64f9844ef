"""A small synthetic episode whose every value can be checked after a round trip (bags, shards, LeRobot)."""
import numpy as np

from qt_policy.data.episode import EpisodeData

ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
STATE_NAMES = ["j0", "j1", "j2"]


def make_episode(T=7, size=16, success=True, states=True, episode_id="ep_0001", seed=0, instruction="pick up the red block"):
    rng = np.random.default_rng(seed)
    images = np.empty((T, size, size, 3), np.uint8)
    for t in range(T):  # distinct values per step and per channel
        images[t] = (rng.integers(0, 200, (size, size, 3)) + t) % 256
        images[t, 0, 0] = (t, 100 + t, 200 + t)
    return EpisodeData(
        instruction=instruction, images=images,
        actions=rng.uniform(-1, 1, (T, 4)).astype(np.float32), success=success, action_names=list(ACTION_NAMES),
        states=rng.normal(size=(T, 3)).astype(np.float32) if states else None,
        state_names=list(STATE_NAMES) if states else [], episode_id=episode_id, end_reason="success_topic",
        task="pick-place")


def write_drawer_bags(out):
    """Six bags of random drawer episodes (two successes, lengths 5..10, 16x16 frames, 4-D state)."""
    from qt_policy.data.bag_writer import write_episode_bag

    rng = np.random.default_rng(0)
    for k in range(6):
        t = 5 + k
        write_episode_bag(out, EpisodeData(
            instruction="open the drawer" if k % 2 else "close the drawer",
            images=rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8),
            actions=rng.uniform(-1, 1, (t, 4)).astype(np.float32), success=k < 2,
            action_names=["dx", "dy", "dz", "gripper"], states=rng.normal(size=(t, 4)).astype(np.float32),
            state_names=["x", "y", "z", "g"], episode_id=f"ep{k}", task="drawer"), name=f"ep{k}")
    return out

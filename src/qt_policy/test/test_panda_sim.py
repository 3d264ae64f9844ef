"""The robosuite Panda (sim/panda/): a second arm with 7-D end-effector control and two cameras."""
import numpy as np
import pytest

from qt_policy.sim.panda.arm import ACTION_NAMES, STATE_NAMES, PandaArm, clip_action
from qt_policy.sim.tasks import PANDA_TASKS


@pytest.fixture(scope="module")
def arm():
    with PandaArm(image_size=64) as a:
        yield a


def test_the_panda_arm_is_7d_with_two_cameras_and_reproducible(arm):
    assert ACTION_NAMES == ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"] and len(STATE_NAMES) == 8
    first = arm.reset("lift", 5)
    assert len(first.camera_images) == 2 and first.image is first.camera_images[0]
    scene, wrist = first.camera_images
    assert scene.shape == wrist.shape == (64, 64, 3) and scene.dtype == np.uint8
    assert np.abs(scene.astype(int) - wrist).mean() > 10  # two different views
    assert first.state.shape == (8,) and first.state.dtype == np.float32
    again = arm.reset("lift", 5)
    for a, b in zip(first.camera_images + (first.state, first.raw_obs), again.camera_images + (again.state, again.raw_obs)):
        np.testing.assert_array_equal(a, b)
    other = arm.reset("lift", 6)
    assert not np.array_equal(other.raw_obs, first.raw_obs)  # another placement


def test_an_episode_is_the_same_on_every_arm(arm):
    """(task, seed, actions) decide an episode, whichever arm runs it: the harness runs a batch of arms,
    the generator one per worker, the ROS sim arm its own. Each builds its env; robosuite draws Lift's
    cube size when it does (from OS entropy unless seeded): a fresh arm must build the same scene."""
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 7)).astype(np.float32)

    def episode(a):
        obs = [a.reset("lift", 2)] + [a.step(x)[0] for x in actions]
        return np.stack([o.raw_obs for o in obs]), np.stack([o.camera_images[0] for o in obs])

    raw, frames = episode(arm)
    with PandaArm(image_size=64) as fresh:
        raw_fresh, frames_fresh = episode(fresh)
    np.testing.assert_array_equal(raw, raw_fresh)
    np.testing.assert_array_equal(frames, frames_fresh)


def test_a_rotation_action_turns_the_hand(arm):
    arm.reset("lift", 1)
    before = arm.observation.state.copy()
    for _ in range(8):
        obs, _ = arm.step([0, 0, 0, 0, 0, 1.0, 0])  # +yaw only
    turned = obs.state[3:6] - before[3:6]
    # (robosuite's OSC re-anchors its target at each step's pose: the hand drifts a few cm while turning)
    assert abs(turned[2]) > 0.3 and np.abs(turned[:2]).max() < 0.1, (before, obs.state)
    assert np.abs(obs.state[:3] - before[:3]).max() < 0.1


def test_clip_action_refuses_wrong_length_and_non_finite():
    np.testing.assert_array_equal(clip_action([2, -3, 0.5, 0, 0, 0, 9]), np.float32([1, -1, 0.5, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match="7 entries"):
        clip_action([0, 0, 0, 0])
    with pytest.raises(ValueError, match="finite"):
        clip_action([0, 0, 0, np.nan, 0, 0, 0])


@pytest.mark.parametrize("task", ["lift", "door"])
def test_the_scripted_expert_succeeds_and_uses_rotation(arm, task):
    """One noisy-expert episode per task on a data seed (evaluation seeds are never used here)."""
    from qt_policy.sim.collect import collect_episode

    ep = collect_episode(arm, task, 2, "expert")
    assert ep.success and len(ep) <= PANDA_TASKS[task].max_steps
    assert ep.images.shape == (len(ep), 2, 64, 64, 3) and ep.actions.shape == (len(ep), 7)
    assert ep.embodiment["name"] == "robosuite_panda" and ep.state_names == STATE_NAMES
    if task == "door":  # the handle must turn: the hand rolls well beyond what noise does
        assert np.ptp(ep.states[:, 3:6], axis=0).max() > 0.8, np.ptp(ep.states[:, 3:6], axis=0)

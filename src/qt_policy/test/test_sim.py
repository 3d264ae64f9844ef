"""Simulated arm (Meta-World v3): task registry, reproducible resets, rendering, scripted collection."""
import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

pytestmark = pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")

from qt_policy.sim.arm import ACTION_NAMES, STATE_NAMES, SimArm, clip_action  # noqa: E402
from qt_policy.sim.collect import collect_episode, sample_mode  # noqa: E402
from qt_policy.sim.scripted import (  # noqa: E402
    FAILURE_KINDS,
    POLICY_KINDS,
    make_collection_policy,
    sample_policy_kind,
)
from qt_policy.sim.tasks import OPPOSITE_TASK, TASKS, task_for_instruction  # noqa: E402


@pytest.fixture(scope="module")
def arm():
    with SimArm(image_size=64) as a:
        yield a


@pytest.fixture(scope="module")
def expert_episode(arm):
    return collect_episode(arm, "drawer-close", 3, "expert")


def test_registry_names_and_instructions():
    import metaworld.env_dict
    from metaworld.policies import ENV_POLICY_MAP

    assert len(TASKS) >= 6
    for name, task in TASKS.items():
        assert task.name == name
        assert task.env_name in metaworld.env_dict.ALL_V3_ENVIRONMENTS
        assert task.env_name in ENV_POLICY_MAP
        assert 120 <= task.max_steps <= 150
    instructions = [t.instruction for t in TASKS.values()]
    assert len(set(instructions)) == len(instructions)
    assert task_for_instruction("  Open   the DRAWER ").name == "drawer-open"
    assert task_for_instruction("turn the faucet on").name == "faucet-open"
    with pytest.raises(KeyError, match="close the drawer"):
        task_for_instruction("open the pod bay doors")
    for a, b in OPPOSITE_TASK.items():
        assert OPPOSITE_TASK[b] == a


def test_paired_tasks_share_scene(arm):
    env_open, _ = arm._env("drawer-open")
    env_close, _ = arm._env("drawer-close")
    assert env_open.model_name == env_close.model_name  # same MJCF scene
    assert TASKS["drawer-open"].instruction != TASKS["drawer-close"].instruction


def test_reset_reproducible_from_seed(arm):
    first = arm.reset("drawer-open", 3)
    image, state, raw = first.image.copy(), first.state.copy(), first.raw_obs.copy()
    assert first.step == 0 and not first.success
    for _ in range(5):
        arm.step(np.array([1.0, 0.0, -1.0, 1.0]))
    arm.reset("window-open", 3)  # another task in between must not leak into the next reset
    again = arm.reset("drawer-open", 3)
    np.testing.assert_array_equal(again.image, image)
    np.testing.assert_array_equal(again.state, state)
    np.testing.assert_array_equal(again.raw_obs, raw)
    other = arm.reset("drawer-open", 4)
    assert not np.allclose(other.raw_obs[4:7], raw[4:7])  # object placed elsewhere
    assert not np.array_equal(other.image, image)


def test_observation_image_and_state(arm):
    obs = arm.reset("button-press-topdown", 0)
    assert obs.image.shape == (64, 64, 3) and obs.image.dtype == np.uint8
    assert obs.image.std() > 20  # not blank
    assert obs.image[:4].mean() + 20 < obs.image[-4:].mean()  # right side up: dark sky above table
    assert obs.state.shape == (4,) and obs.state.dtype == np.float32
    np.testing.assert_allclose(obs.state, obs.raw_obs[:4].astype(np.float32))
    assert obs.raw_obs.shape == (39,)
    assert np.any(obs.raw_obs[-3:] != 0)  # fully observable: the goal is in the obs
    assert arm.observation is obs
    assert len(ACTION_NAMES) == 4 and len(STATE_NAMES) == 4


def test_step_clips_actions(arm):
    np.testing.assert_array_equal(clip_action([3, -2, 0.5, -7]), np.float32([1, -1, 0.5, -1]))
    with pytest.raises(ValueError):
        clip_action([np.nan, 0, 0, 0])
    with pytest.raises(ValueError):
        clip_action([0, 0, 0])
    arm.reset("faucet-open", 1)
    big, _ = arm.step(np.array([5.0, -5.0, 5.0, 9.0]))
    big_state = big.state.copy()
    arm.reset("faucet-open", 1)
    unit, success = arm.step(np.array([1.0, -1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(big_state, unit.state)
    assert unit.step == 1 and isinstance(success, bool)


@pytest.mark.parametrize("task_name", ["faucet-open", "button-press-topdown"])
def test_expert_succeeds(arm, task_name):
    ep = collect_episode(arm, task_name, 11, "expert")
    assert ep.success and ep.end_reason == "success"
    assert len(ep) <= TASKS[task_name].max_steps


def test_episode_invariants_success(arm, expert_episode):
    ep = expert_episode
    assert ep.success and ep.end_reason == "success"
    assert ep.instruction == "close the drawer" and ep.task == "drawer-close"
    assert ep.episode_id == "drawer-close-000003-expert"
    assert ep.action_names == ACTION_NAMES and ep.state_names == STATE_NAMES
    r = ep.rewards
    assert r[-1] == 1.0 and r.sum() == 1.0
    assert ep.images.shape == (len(ep), 64, 64, 3) and ep.images.dtype == np.uint8
    assert ep.actions.dtype == np.float32 and np.all(np.abs(ep.actions) <= 1.0)
    assert ep.states.shape == (len(ep), 4) and ep.states.dtype == np.float32
    # images[0]/states[0] are the reset observation, i.e. the one seen before action 0
    first = arm.reset("drawer-close", 3)
    np.testing.assert_array_equal(ep.images[0], first.image)
    np.testing.assert_array_equal(ep.states[0], first.state)
    # states[1] is what action 0 led to
    after, _ = arm.step(ep.actions[0])
    np.testing.assert_array_equal(ep.states[1], after.state)


def test_episode_timeout_and_reproducible(arm):
    a = collect_episode(arm, "drawer-open", 5, "noisy", policy_kind="random", max_steps=12)
    b = collect_episode(arm, "drawer-open", 5, "noisy", policy_kind="random", max_steps=12)
    assert len(a) == 12 and not a.success and a.end_reason == "timeout"
    assert a.rewards.sum() == 0.0
    assert a.episode_id == "drawer-open-000005-random"
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.images, b.images)


def test_collection_policies(arm):
    task = TASKS["window-open"]
    obs = arm.reset(task.name, 0)
    for kind in POLICY_KINDS:
        policy = make_collection_policy(kind, task, np.random.default_rng(0))
        assert policy.kind == kind
        for _ in range(3):
            act = policy.act(obs.raw_obs)
            assert act.shape == (4,) and np.all(np.abs(act) <= 1.0)
    with pytest.raises(ValueError):
        make_collection_policy("telepathy", task, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    assert sample_policy_kind("expert", rng) == "expert"
    kinds = {sample_policy_kind("noisy", rng, "drawer-open") for _ in range(200)}
    assert kinds == set(FAILURE_KINDS)
    modes = [sample_mode(rng, 0.2) for _ in range(1000)]
    assert 0.15 < modes.count("expert") / 1000 < 0.25
    with pytest.raises(ValueError):
        sample_policy_kind("lazy", rng)


def test_attempts_share_the_placement_and_draw_their_own_actions(arm):
    first = collect_episode(arm, "drawer-open", 5, "noisy", policy_kind="random", max_steps=6)
    again = collect_episode(arm, "drawer-open", 5, "noisy", policy_kind="random", max_steps=6, attempt=2)
    np.testing.assert_array_equal(first.images[0], again.images[0])  # same scene at the start
    np.testing.assert_array_equal(first.states[0], again.states[0])
    assert not np.array_equal(first.actions, again.actions)  # their own draws
    assert again.episode_id == "drawer-open-000005-a2-random" and first.episode_id == "drawer-open-000005-random"
    repeat = collect_episode(arm, "drawer-open", 5, "noisy", policy_kind="random", max_steps=6, attempt=2)
    np.testing.assert_array_equal(again.actions, repeat.actions)  # reproducible per attempt


def test_the_slow_demonstrator_moves_at_a_fraction_of_the_expert_and_hesitates():
    from qt_policy.sim.scripted import SlowExpert

    class Expert:
        def act(self, raw_obs):
            return np.array([1.0, -1.0, 0.5, 0.7], np.float32)

    slow = SlowExpert(Expert(), np.random.default_rng(0), speed=0.4, p_pause=0.05, pause=4)
    acts = np.stack([slow.act(None) for _ in range(2000)])
    paused = np.all(acts[:, :3] == 0.0, axis=1)
    np.testing.assert_allclose(acts[~paused, :3], np.tile([0.4, -0.4, 0.2], ((~paused).sum(), 1)), rtol=1e-6)
    assert np.all(acts[:, 3] == np.float32(0.7))  # the gripper as the expert sets it, paused or not
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, paused.astype(int), 0])))[::2]
    assert set(runs[:-1]) <= {4, 8, 12}  # stops of `pause` steps (back to back when drawn again at once)
    assert 0.12 < paused.mean() < 0.25  # ~ p x pause / (1 + p x (pause - 1)) = 0.17


def test_slow_demonstrations_succeed_later_than_the_expert(arm):
    fast = collect_episode(arm, "drawer-open", 0, "expert", policy_kind="expert", max_steps=400)
    slow = collect_episode(arm, "drawer-open", 0, "expert", policy_kind="slow_expert", max_steps=400)
    assert fast.success and slow.success and len(slow) >= 2 * len(fast)
    assert slow.episode_id.endswith("slow_expert")


def test_the_beyond_demos_prechecks_say_which_requirement_fails():
    from qt_policy.research.beyond_demos_precheck import verdict

    def runs(slow_ok, slow_len, interrupted_ok):
        return {"fast": {"success": [True] * 10, "length": [80] * 10},
                "slow": {"success": slow_ok, "length": [slow_len] * 10},
                "interrupted": {"success": interrupted_ok, "length": [200] * 10}}
    good = verdict(runs([True] * 10, 200, [False] * 10))
    assert good["all_hold"] and good["slow_over_fast_median_length"] == 2.5
    assert verdict(runs([True] * 8 + [False] * 2, 200, [False] * 10))["checks"] == {
        "demonstrations succeed >= 90%": False, "their median length >= 2x the fast expert's": True,
        "interrupted episodes succeed <= 5%": True}
    assert not verdict(runs([True] * 10, 150, [False] * 10))["checks"]["their median length >= 2x the fast expert's"]
    assert not verdict(runs([True] * 10, 200, [True] + [False] * 9))["checks"]["interrupted episodes succeed <= 5%"]

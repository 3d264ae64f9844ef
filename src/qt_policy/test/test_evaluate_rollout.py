"""run_task, the evaluation's lockstep rollout loop, with fake arms and a fake policy (no simulator)."""
from types import SimpleNamespace

import numpy as np
import pytest

from qt_policy.evaluation import run_task


class CountingArm:
    """Succeeds on its `succeed_at`-th step (never if None); an observation is (seed, step)."""

    def __init__(self, succeed_at):
        self.succeed_at = succeed_at

    def reset(self, task_name, seed):
        self.seed, self.t = seed, 0
        return (seed, 0)

    def step(self, action):
        self.t += 1
        return (self.seed, self.t), self.t == self.succeed_at


class ConstantPolicy:
    def reset(self, batch, instruction):
        pass

    def act(self, observations, active):
        n = len(active)
        return SimpleNamespace(values=np.zeros((n, 4), np.float32), q_value=np.full((n,), 0.5, np.float32))


TASK = SimpleNamespace(name="fake", instruction="do it", max_steps=6)


def test_on_step_sees_each_observation_before_its_action_and_changes_nothing():
    seeds = [10, 11, 12]
    plain = run_task([CountingArm(3), CountingArm(None), CountingArm(1)], ConstantPolicy(), TASK, seeds)
    seen = []
    traced = run_task([CountingArm(3), CountingArm(None), CountingArm(1)], ConstantPolicy(), TASK, seeds,
                      on_step=lambda i, obs: seen.append((i, obs)))
    assert plain[:3] == traced[:3]
    success, lengths, q_trace, _ = traced
    assert success == [True, False, True] and lengths == [3, 6, 1]
    for i, seed in enumerate(seeds):
        # one call per action taken, with the observation the action was chosen from (steps 0..len-1)
        assert [obs for j, obs in seen if j == i] == [(seed, t) for t in range(lengths[i])]
        assert len(q_trace[i]) == lengths[i]


class RecordingArm(CountingArm):
    def step(self, action):
        self.actions.append([float(a) for a in action])
        return super().step(action)


class RampPolicy(ConstantPolicy):
    """dx = 0.1 * (step + 1), gripper = -step: the lag must blend dx and leave the gripper alone."""

    def reset(self, batch, instruction):
        self.t = 0

    def act(self, observations, active):
        self.t += 1
        values = np.zeros((len(active), 4), np.float32)  # numpy, as the backends' PolicyOutput
        values[:, 0], values[:, 3] = 0.1 * self.t, -(self.t - 1.0)
        return SimpleNamespace(values=values, q_value=np.full((len(active),), 0.5, np.float32))


def test_command_lag_blends_the_velocity_dimensions_with_the_previous_step():
    arm = RecordingArm(None)
    arm.actions = []
    run_task([arm], RampPolicy(), TASK, [1], command_lag=0.25)
    dx = [a[0] for a in arm.actions]
    expected = [0.75 * 0.1] + [0.75 * 0.1 * (t + 1) + 0.25 * 0.1 * t for t in range(1, 6)]
    assert dx == [pytest.approx(e) for e in expected]
    assert [a[3] for a in arm.actions] == [-float(t) for t in range(6)]  # the gripper: the new command


def test_evaluate_through_ros_writes_the_harness_format(tmp_path, monkeypatch):
    """tools.evaluate --through-ros: sim arm, policy node and recorder as processes (the launch file),
    one episode of the shipped model; the JSON has the harness's fields and the episode's bag. --max-steps
    reaches the sim arm: the episode ends at 8 steps (the shipped model needs more to close the drawer)."""
    import json

    from qt_policy.tools import evaluate
    from qt_test_helpers.nodes import lane_domain_id

    monkeypatch.setenv("ROS_DOMAIN_ID", str(lane_domain_id(5)))  # a graph of its own
    out = tmp_path / "ros.json"
    rc = evaluate.main(["--checkpoint", "models/qt_metaworld", "--through-ros", "--tasks", "drawer-close",
                        "--episodes", "1", "--seed-start", "2000000", "--ros-out", str(tmp_path / "ros"),
                        "--out", str(out), "--max-steps", "8", "--success-within", "8"])
    assert rc == 0
    res = json.loads(out.read_text())
    task = res["tasks"]["drawer-close"]
    assert res["path"] == "ros" and task["episodes"] == 1 and task["seeds"] == [2000000] and res["max_steps"] == 8
    assert task["per_episode"] == [False] and task["lengths"] == [8] and task["mean_length"] == 8
    assert res["success_at_k"]["overall"]["successes"] == 0
    assert len(list((tmp_path / "ros" / "bags").iterdir())) == 1


def test_a_step_budget_other_than_the_tasks():
    """--max-steps: slow demonstrations need more steps than the task's budget (issue 37)."""
    success, lengths, q_trace, _ = run_task([CountingArm(9), CountingArm(None)], ConstantPolicy(), TASK, [1, 2],
                                            max_steps=12)
    assert success == [True, False] and lengths == [9, 12] and len(q_trace[1]) == 12
    assert run_task([CountingArm(9)], ConstantPolicy(), TASK, [1])[:2] == ([False], [6])  # the task's 6


def test_tasks_spread_over_processes_give_the_serial_result(tmp_path):
    from qt_policy.evaluation.parallel import evaluate_in_processes
    from qt_policy.evaluation.rollout import evaluate
    from qt_test_helpers.models import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    tasks = ["drawer-close", "button-press-topdown"]
    kw = dict(checkpoint=ckpt, episodes=2, seed_start=1_000_000, batch=2, max_steps=15)
    serial = evaluate(tasks=tasks, progress=False, **kw)
    spread = evaluate_in_processes(kw, tasks, workers=2, progress=False)
    assert list(spread["tasks"]) == tasks and spread["workers"] == 2
    for t in tasks:
        assert spread["tasks"][t] == serial["tasks"][t]  # successes, lengths, per-episode outcomes, intervals
    assert spread["mean_success"] == serial["mean_success"] and spread["overall"] == serial["overall"]

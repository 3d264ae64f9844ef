"""The scripted person in the loop (sim/operator.py): takes over after `patience` steps without success,
drives the episode to its end with the scripted expert, and the collected episodes say which steps it drove."""
import numpy as np
import pytest
import torch

from qt_policy.core.text import shared_encoder
from qt_policy.evaluation.policy_episodes import collect_policy_episodes
from qt_policy.evaluation.rollout import BatchPolicy
from qt_policy.inference import load_policy
from qt_policy.sim.arms import make_arm
from qt_policy.sim.operator import ScriptedOperator
from qt_policy.sim.tasks import get_task
from qt_test_helpers.models import tiny_checkpoint


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    torch.manual_seed(0)
    return BatchPolicy(load_policy([tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")], "torch"),
                       shared_encoder())


def test_a_person_rescues_what_the_untrained_policy_cannot(policy):
    task = get_task("drawer-close")
    arms = [make_arm(task.suite, 64) for _ in range(2)]
    try:
        alone = collect_policy_episodes(arms, policy, task, [3_000_000, 3_000_001])
        person = ScriptedOperator(task, patience=10, seed=0)
        helped = collect_policy_episodes(arms, policy, task, [3_000_000, 3_000_001], takeover=person)
    finally:
        for arm in arms:
            arm.close()
    assert not any(ep.success for ep in alone) and all(ep.interventions is None for ep in alone)
    for ep in helped:  # the expert finishes within the step limit; every step from the 11th on is the person's
        assert ep.success and ep.interventions.tolist() == [False] * 10 + [True] * (len(ep) - 10)
        assert 0.0 < ep.operator_share < 1.0
    np.testing.assert_array_equal(helped[0].actions[:10], alone[0].actions[:10])  # the policy's own, until then


def test_patience_must_not_be_negative():
    with pytest.raises(ValueError):
        ScriptedOperator(get_task("drawer-close"), patience=-1)


def test_the_precheck_counts_the_persons_share(tmp_path):
    from qt_policy.research.takeover_precheck import measure

    ckpt = tiny_checkpoint(tmp_path / "tiny")
    alone = measure(ckpt, ["drawer-close"], -1, [3_000_000, 3_000_001], batch=2)
    helped = measure(ckpt, ["drawer-close"], 10, [3_000_000, 3_000_001], batch=2)
    assert (alone["success"], alone["operator_share"], alone["person_acted"], alone["rescued"]) == (0.0, 0.0, 0.0, None)
    assert helped["success"] == 1.0 and helped["person_acted"] == 1.0 and helped["rescued"] == 1.0
    assert helped["operator_share"] == pytest.approx((helped["steps"] - 2 * 10) / helped["steps"])

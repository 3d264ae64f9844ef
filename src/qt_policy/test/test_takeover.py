"""An operator takes over while the policy drives (runtime/takeover.py through PolicyRunner): their command
reaches the robot within the tick, under the same envelope and hold input, and control returns to the
policy when their commands stop."""
from pathlib import Path

import numpy as np
import pytest
import torch

from qt_policy.core.checkpoint import save_checkpoint
from qt_policy.core.config import ModelConfig
from qt_policy.core.discretizer import make_discretizer
from qt_policy.core.model import QTransformer
from qt_policy.runtime.decision import Action
from qt_policy.runtime.takeover import Takeover
from qt_test_helpers.runner import SMALL, frame, make_runner


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small", QTransformer(ModelConfig(**SMALL)))


def driving(checkpoint, **overrides):
    r = make_runner(checkpoint, **overrides)
    r.set_instruction("open the drawer", 0.0)
    return r


def twist(r, linear):
    return r.commands.from_twist(linear, (0.0, 0.0, 0.0))  # the Sawyer: 0.1 m/s per unit of action


def test_the_operator_drives_within_the_tick_and_hands_back(checkpoint):
    r = driving(checkpoint)
    r.add_image(frame(1), 0.1)
    policy = r.act(0.1)
    assert isinstance(policy, Action) and policy.source == "policy"
    r.operator_command(*twist(r, (0.05, -0.02, 0.0)), now=0.15)
    r.add_image(frame(2), 0.2)
    a = r.act(0.2)
    assert a.source == "operator" and a.limited == ()
    # dx, dy, dz from the operator; the gripper (a position) held where the policy left it
    np.testing.assert_allclose(a.values, [0.5, -0.2, 0.0, policy.values[3]], atol=1e-6)
    np.testing.assert_allclose(a.command.linear, [0.05, -0.02, 0.0], atol=1e-7)
    assert a.bins.tolist() == r._bins.to_bins(a.values[None])[0].tolist()  # recorded as any action is
    assert 0.0 <= a.q_value <= 1.0  # the policy's own estimate, kept for the record
    r.add_image(frame(3), 0.9)  # no operator command for 0.75 s > takeover_release_s (0.5)
    assert r.act(0.9).source == "policy"


def test_the_hold_input_and_the_envelope_apply_to_the_operator(checkpoint):
    r = driving(checkpoint, action_low=[-1.0] * 4, action_high=[0.2, 1.0, 1.0, 1.0])
    r.add_image(frame(1), 0.1)
    r.operator_command(*twist(r, (0.08, 0.0, 0.0)), now=0.1)  # 0.8 units, above the envelope's 0.2
    a = r.act(0.1)
    assert a.source == "operator" and a.values[0] == pytest.approx(0.2)
    cfg = r.policy.cfg  # recorded in the model's bins (its action range), not the node's narrower envelope
    model_bins = make_discretizer(cfg.action_low, cfg.action_high, cfg.num_bins).to_bins(a.values[None])[0]
    assert a.bins.tolist() == model_bins.tolist() and a.bins[0] < cfg.num_bins - 1
    r.set_enabled(False)
    r.operator_command(*twist(r, (0.05, 0.0, 0.0)), now=0.15)
    r.add_image(frame(2), 0.2)
    assert r.act(0.2).kind == "disabled"


def test_the_operator_takes_over_a_policy_held_by_its_q_floor(checkpoint):
    r = driving(checkpoint, q_floor=0.999)
    r.add_image(frame(1), 0.1)
    assert r.act(0.1).kind == "q_floor"
    r.operator_command(*r.commands.from_gripper(1.0), now=0.15)
    r.add_image(frame(2), 0.2)
    a = r.act(0.2)
    assert a.source == "operator" and a.values.tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])


def test_no_takeover_when_it_is_off(checkpoint):
    r = driving(checkpoint, takeover_release_s=0.0)
    r.add_image(frame(1), 0.1)
    r.operator_command(*twist(r, (0.05, 0.0, 0.0)), now=0.1)
    assert r.act(0.1).source == "policy"


def test_a_new_takeover_starts_from_the_robots_last_command(checkpoint):
    r = make_runner(checkpoint)
    t = Takeover(r.commands, release_after_s=0.5)
    t.command(*twist(r, (0.05, 0.0, 0.0)), now=0.0)
    assert t.active(0.4) and not t.active(0.6)
    t.command(*r.commands.from_gripper(-1.0), now=1.0)  # a later takeover: the old twist is forgotten
    np.testing.assert_allclose(t.action(np.array([0.3, 0.3, 0.3, 0.7], np.float32)), [0, 0, 0, -1.0])
    t.release()
    assert not t.active(1.0)
    with pytest.raises(ValueError):
        Takeover(r.commands, release_after_s=-1)


def test_a_takeover_ends_with_its_episode(checkpoint):
    """A new instruction is a new episode: the previous episode's person does not drive its first ticks
    (through the ROS graph the person's last command was within takeover_release_s of the next episode)."""
    r = driving(checkpoint)
    r.add_image(frame(1), 0.1)
    r.operator_command(*twist(r, (0.05, 0.0, 0.0)), now=0.1)
    assert r.act(0.1).source == "operator"
    r.set_instruction("open the drawer", 0.2)
    r.add_image(frame(2), 0.3)
    assert r.act(0.3).source == "policy"  # within 0.5 s of the person's command, but another episode
    r.operator_command(*twist(r, (0.05, 0.0, 0.0)), now=0.35)  # the person takes the new episode over
    r.add_image(frame(3), 0.4)
    assert r.act(0.4).source == "operator"


def test_the_operator_topics_are_in_the_shipped_parameters():
    import yaml
    root = Path(__file__).resolve().parents[3]
    params = yaml.safe_load((root / "config" / "policy.yaml").read_text())["/**"]["ros__parameters"]
    assert params["takeover_release_s"] > 0 and params["operator_twist_topic"] == "operator/twist"

"""PolicyRunner without ROS: holds on missing/stale input, recovers, clips to limits, is deterministic."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from qt_policy.core.checkpoint import save_checkpoint
from qt_policy.core.config import ModelConfig
from qt_policy.core.model import QTransformer
from qt_policy.runtime.decision import Action, Hold
from qt_policy.runtime.parameters import from_params_file
from qt_policy.runtime.policy_config import PolicyNodeConfig
from qt_policy.runtime.policy_runner import PolicyRunner
from qt_test_helpers.runner import SMALL, frame, make_runner

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'small'
    save_checkpoint(path, QTransformer(ModelConfig(**SMALL)))
    return path


def test_holds_until_instruction_and_image(checkpoint):
    r = make_runner(checkpoint)
    assert r.act(0.0) == Hold('no_instruction', 'no instruction')
    r.set_instruction('Open the  drawer', 0.0)
    assert r.instruction == 'open the drawer'
    assert r.act(0.1) == Hold('no_image', 'no camera image yet')
    r.add_image(frame(), 0.1, stamp='s1')
    a = r.act(0.2)
    assert isinstance(a, Action)
    assert a.image_stamp == 's1' and a.instruction == 'open the drawer'
    assert a.values.shape == (4,) and a.bins.shape == (4,) and 0.0 <= a.q_value <= 1.0
    assert a.latency_ms > 0.0 and a.names == ('dx', 'dy', 'dz', 'gripper')
    r.set_instruction('', 0.3)  # an empty instruction stops the robot
    assert r.act(0.3).kind == 'no_instruction'


def test_stale_camera_holds_and_fresh_image_recovers(checkpoint):
    r = make_runner(checkpoint, stale_timeout_s=0.5)
    r.set_instruction('push the button', 0.0)
    r.add_image(frame(1), 10.0)
    assert isinstance(r.act(10.4), Action)
    hold = r.act(10.83)
    assert hold.kind == 'camera_stale'
    assert hold.reason == 'camera stale (0.83 s > 0.5 s)'
    r.set_instruction('push the button', 10.9)  # the same instruction again: a new episode, still stale
    assert r.act(11.0).kind == 'camera_stale'
    r.add_image(frame(2), 11.0)
    assert isinstance(r.act(11.1), Action) and len(r._history) == 1  # its history started again


def test_actions_within_limits_even_with_narrow_limits(checkpoint):
    low, high = [-0.05, -0.2, 0.0, -1.0], [0.05, 0.2, 0.01, -0.5]
    r = make_runner(checkpoint, action_low=low, action_high=high)
    r.set_instruction('pick up the block', 0.0)
    for i in range(1, 13):
        r.add_image(frame(i), i * 0.1)
        a = r.act(i * 0.1 + 0.01)
        assert isinstance(a, Action)
        assert np.all(a.values >= np.array(low, np.float32)) and np.all(a.values <= np.array(high, np.float32))


def test_same_input_same_action(checkpoint):
    actions = []
    for _ in range(2):
        r = make_runner(checkpoint)
        r.set_instruction('open the drawer', 0.0)
        for i in range(1, 4):
            r.add_image(frame(i), i * 0.1)
            actions.append(r.act(i * 0.1 + 0.05))
    first, second = actions[:3], actions[3:]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.bins, b.bins)
        assert a.q_value == b.q_value


def test_frame_history_pads_with_the_oldest_frame(checkpoint):
    """First decision: history [f0, f0]; the model sees the same input as with two identical frames."""
    r = make_runner(checkpoint)
    r.set_instruction('open the drawer', 0.0)
    r.add_image(frame(5), 0.1)
    a1 = r.act(0.15)
    assert r.act(0.2).kind == 'no_new_frame'  # a frame makes one decision, never two
    r.add_image(frame(5), 0.2)  # the same picture again: history [f5, f5] explicitly
    a2 = r.act(0.25)
    np.testing.assert_array_equal(a1.bins, a2.bins)
    assert a1.q_value == a2.q_value and len(r._history) == 2


def test_a_new_instruction_is_a_new_episode(checkpoint):
    """The history starts again, and frames from before the settle time are not used."""
    r = make_runner(checkpoint, instruction_settle_s=0.05)
    r.set_instruction('open the drawer', 0.0)
    for i in range(1, 4):
        r.add_image(frame(i), i * 0.1)
        assert isinstance(r.act(i * 0.1), Action)
    r.set_instruction('close the drawer', 0.5)
    r.add_image(frame(9), 0.52)  # in flight from the old scene
    assert r.act(0.53).kind == 'settling'
    r.add_image(frame(7), 0.6)
    first = r.act(0.6)
    fresh = make_runner(checkpoint)  # the same episode start in a runner that saw nothing before
    fresh.set_instruction('close the drawer', 0.0)
    fresh.add_image(frame(7), 0.1)
    expected = fresh.act(0.1)
    np.testing.assert_array_equal(first.bins, expected.bins)
    assert first.q_value == expected.q_value


def test_frames_taken_before_the_instruction_was_sent_are_not_used(checkpoint):
    """A paused simulator's frame (stamped at its last render) arriving after the settle time is not decided
    on: the recorder would not record that action. The first decision pads the history with a frame of
    the new scene, as training does, whatever arrived before it."""
    from types import SimpleNamespace

    def header(t):
        return SimpleNamespace(stamp=SimpleNamespace(sec=int(t), nanosec=int(round((t % 1) * 1e9))))

    r = make_runner(checkpoint, instruction_settle_s=0.05)
    r.set_instruction('open the drawer', 100.4, sent_s=100.3)
    r.add_image(frame(9), 100.5, stamp=header(100.0), stamp_s=100.0)  # the old scene, arriving late
    hold = r.act(100.5)
    assert (hold.kind, hold.reason) == ('settling', 'waiting for a frame taken after the instruction was sent')
    r.add_image(frame(7), 100.6, stamp=header(100.55), stamp_s=100.55)
    first = r.act(100.6)
    fresh = make_runner(checkpoint)
    fresh.set_instruction('open the drawer', 0.0)
    fresh.add_image(frame(7), 0.1)
    expected = fresh.act(0.1)
    np.testing.assert_array_equal(first.bins, expected.bins)
    assert first.q_value == expected.q_value
    # a sender's clock ahead of ours never holds the robot longer than the settle rule does
    ahead = make_runner(checkpoint, instruction_settle_s=0.05)
    ahead.set_instruction('open the drawer', 100.4, sent_s=130.0)
    ahead.add_image(frame(7), 100.5, stamp=header(100.45), stamp_s=100.45)
    assert isinstance(ahead.act(100.5), Action)


@pytest.mark.parametrize('camera_hz, every', [(10.0, 1), (30.0, 3), (60.0, 6)])
def test_decisions_follow_the_frames_at_the_control_rate(checkpoint, camera_hz, every):
    r = make_runner(checkpoint)
    r.set_instruction('open the drawer', 0.0)
    used = []
    for k in range(int(3 * camera_hz)):  # 3 s of camera with +-2 ms jitter
        t = 1.0 + k / camera_hz + (0.002 if k % 2 else -0.002)
        r.add_image(frame(k % 7), t)
        if r.on_frame(t):
            assert isinstance(r.act(t), Action)
            used.append(k)
    assert used == list(range(0, int(3 * camera_hz), every))


def test_a_15hz_camera_still_gives_10_decisions_a_second(checkpoint):
    r = make_runner(checkpoint)
    r.set_instruction('open the drawer', 0.0)
    times = []
    for k in range(45):
        t = 1.0 + k / 15.0
        r.add_image(frame(k % 7), t)
        if r.on_frame(t) and isinstance(r.act(t), Action):
            times.append(t)
    assert len(times) == 30 and max(np.diff(times)) < 0.14


def test_stale_check_uses_the_capture_stamp_when_it_is_on_our_clock(checkpoint):
    r = make_runner(checkpoint, stale_timeout_s=0.5)
    r.set_instruction('open the drawer', 0.0)
    r.add_image(frame(1), 1.0, stamp_s=0.3)  # arrived now, taken 0.7 s ago
    assert r.act(1.0).kind == 'camera_stale'
    r.add_image(frame(2), 1.1, stamp_s=1.05)
    assert isinstance(r.act(1.1), Action)


def test_state_model_needs_fresh_state(tmp_path):
    cfg = ModelConfig(**{**SMALL, 'state_dim': 4})
    save_checkpoint(tmp_path / 's', QTransformer(cfg))
    r = make_runner(tmp_path / 's')
    r.set_instruction('open the drawer', 0.0)
    r.add_image(frame(), 0.1)
    assert r.act(0.1).kind == 'no_state'
    with pytest.raises(ValueError, match='robot state has 3 values'):
        r.set_state([0.0, 0.0, 0.0], 0.1)
    r.set_state([0.1, 0.2, 0.3, 0.0], 0.1)
    assert isinstance(r.act(0.2), Action)
    r.add_image(frame(), 0.9)
    assert r.act(1.0).kind == 'state_stale'


def test_commands_follow_the_embodiment(checkpoint):
    """The sim arm's embodiment: dx, dy, dz -> twist.linear at 0.1 m/s per unit, gripper -> Float64."""
    r = make_runner(checkpoint)
    cmd = r.commands.group(r.commands.to_commands([1.0, -1.0, 0.5, 0.7]))
    np.testing.assert_allclose(cmd.linear, [0.1, -0.1, 0.05])
    np.testing.assert_allclose(cmd.angular, [0.0, 0.0, 0.0])
    assert cmd.gripper == pytest.approx(0.7) and cmd.joints is None and not cmd.terminate


def test_hold_input_q_floor_and_terminate(checkpoint, tmp_path):
    """disabled -> Hold at once; the Q floor holds below it; a terminate dimension ends the episode."""
    r = make_runner(checkpoint)
    r.set_instruction('open the drawer', 0.0)
    r.add_image(frame(1), 0.1)
    r.set_enabled(False)
    assert r.check(0.1).kind == 'disabled' and r.act(0.1).kind == 'disabled'
    r.set_enabled(True)
    a = r.act(0.1)
    assert isinstance(a, Action)
    floor = make_runner(checkpoint, q_floor=min(0.999, a.q_value + 1e-3))
    floor.set_instruction('open the drawer', 0.0)
    floor.add_image(frame(1), 0.1)
    held = floor.act(0.1)
    assert held.kind == 'q_floor' and floor.last_q == pytest.approx(a.q_value, abs=1e-6)

    import yaml
    emb = yaml.safe_load((REPO_ROOT / 'config/embodiments/metaworld_sawyer.yaml').read_text())
    emb['actions'][2] = {'name': 'dz', 'command': 'terminate', 'low': 0.0, 'high': 1.0}  # always >= 0.5 when high
    (tmp_path / 'term.yaml').write_text(yaml.safe_dump(emb))
    names = ['dx', 'dy', 'dz', 'gripper']
    r = make_runner(checkpoint, embodiment=str(tmp_path / 'term.yaml'), action_low=[-1.0, -1.0, 0.9, -1.0],
                    action_high=[1.0, 1.0, 1.0, 1.0])
    assert list(r.names) == names
    r.set_instruction('open the drawer', 0.0)
    r.add_image(frame(1), 0.1)
    a = r.act(0.1)
    assert a.terminate and a.command.terminate
    r.add_image(frame(2), 0.2)
    assert r.act(0.2).kind == 'terminated'
    r.set_instruction('open the drawer', 0.3)  # the next instruction is a new episode
    assert r.check(0.3) is None


def test_a_model_only_drives_the_robot_it_was_trained_for(tmp_path):
    """A checkpoint carrying an embodiment refuses another robot's file, naming the difference."""
    import yaml

    from qt_policy.robot.embodiment import load_embodiment

    emb = load_embodiment(REPO_ROOT / 'config/embodiments/metaworld_sawyer.yaml')
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / 'm', QTransformer(ModelConfig(**{**SMALL, 'state_dim': 4})),
                           {'embodiment': emb.to_dict()})
    assert make_runner(path).embodiment.name == 'metaworld_sawyer'
    with pytest.raises(ValueError, match=r"trained for embodiment 'metaworld_sawyer'.*action dimensions"):
        make_runner(path, embodiment=str(REPO_ROOT / 'config/embodiments/panda_moveit_servo.yaml'))
    other = emb.to_dict()
    other['actions'][0]['scale'] = 0.2
    other['twist']['topic'] = 'my_servo/delta_twist_cmds'  # topics are the deployment's own
    (tmp_path / 'o.yaml').write_text(yaml.safe_dump(other))
    with pytest.raises(ValueError, match=r"dimension 'dx': scale 0.1 \(model\) vs 0.2 \(robot\)"):
        make_runner(path, embodiment=str(tmp_path / 'o.yaml'))
    other['actions'][0]['scale'] = 0.1
    (tmp_path / 'o.yaml').write_text(yaml.safe_dump(other))
    assert make_runner(path, embodiment=str(tmp_path / 'o.yaml')).embodiment.twist.topic == 'my_servo/delta_twist_cmds'
    # a checkpoint without one is checked against its own layout
    legacy = save_checkpoint(tmp_path / 'm_legacy', QTransformer(ModelConfig(**{**SMALL, 'state_dim': 3})))
    with pytest.raises(ValueError, match='carries no embodiment and does not fit'):
        make_runner(legacy)


def test_bad_configuration_is_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="'checkpoint' is empty"):
        make_runner('')
    with pytest.raises(FileNotFoundError, match='not found'):
        make_runner(tmp_path / 'missing')
    with pytest.raises(ValueError, match='action_low has 2 entries'):
        make_runner(checkpoint, action_low=[-1.0, -1.0], action_high=[1.0, 1.0])
    with pytest.raises(ValueError, match="'q_floor' must lie in"):
        make_runner(checkpoint, q_floor=1.5)
    r = make_runner(checkpoint)
    with pytest.raises(ValueError, match='encoder gave 3 values'):
        PolicyRunner(r.model, lambda t: np.zeros(3), r.embodiment).set_instruction('x', 0.0)


def test_policy_yaml_matches_the_dataclass():
    """config/policy.yaml names exactly the PolicyNodeConfig fields, with the dataclass defaults."""
    import yaml

    path = REPO_ROOT / 'config' / 'policy.yaml'
    raw = yaml.safe_load(path.read_text())['/**']['ros__parameters']
    assert set(raw) == {f.name for f in dataclasses.fields(PolicyNodeConfig)}
    cfg = from_params_file(path, "qt_policy", PolicyNodeConfig)
    default = PolicyNodeConfig(checkpoint='models/qt_metaworld')
    assert dataclasses.asdict(cfg) == dataclasses.asdict(default)


def test_runner_takes_an_ensemble_checkpoint(checkpoint, tmp_path):
    """An ensemble folder is a drop-in `checkpoint`: one model listed twice acts exactly like the model."""
    from qt_policy.core.checkpoint import save_ensemble
    from qt_policy.core.ensemble import QEnsemble

    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / 'other', QTransformer(ModelConfig(**SMALL)))
    twice = save_ensemble(tmp_path / 'twice', [checkpoint, checkpoint])
    mixed = save_ensemble(tmp_path / 'mixed', [checkpoint, other])
    out = {}
    for name, path in (('single', checkpoint), ('twice', twice), ('mixed', mixed)):
        r = make_runner(path)
        r.set_instruction('open the drawer', 0.0)
        r.add_image(frame(3), 0.1)
        out[name] = (r, r.act(0.15))
    single, same = out['single'][1], out['twice'][1]
    np.testing.assert_array_equal(single.bins, same.bins)
    np.testing.assert_allclose(single.values, same.values)
    assert abs(single.q_value - same.q_value) < 1e-6
    runner, action = out['mixed']
    assert isinstance(runner.model, QEnsemble) and len(runner.model.members) == 2
    assert isinstance(action, Action) and 0.0 <= action.q_value <= 1.0



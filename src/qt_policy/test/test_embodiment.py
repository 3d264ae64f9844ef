"""The robot layer without ROS: embodiment files, action <-> command mapping, the command window,
teleoperated steps, and the safety limits."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from qt_policy.robot.command_window import CommandWindow
from qt_policy.robot.commands import CommandMap
from qt_policy.robot.embodiment import Embodiment, load_embodiment
from qt_policy.robot.safety import SafetyFilter
from qt_policy.robot.teleop_steps import TeleopSteps

REPO_ROOT = Path(__file__).resolve().parents[3]
FILES = sorted((REPO_ROOT / 'config' / 'embodiments').glob('*.yaml'))


def test_the_shipped_embodiment_files_load_and_round_trip():
    assert {f.stem for f in FILES} >= {'metaworld_sawyer', 'panda_moveit_servo', 'ur_ros2_control'}
    for f in FILES:
        emb = load_embodiment(f)
        assert Embodiment.from_dict(emb.to_dict()) == emb
    panda = load_embodiment(REPO_ROOT / 'config/embodiments/panda_moveit_servo.yaml')
    assert [a.kind for a in panda.actions] == ['twist'] * 6 + ['gripper', 'terminate'] and panda.cameras[0].compressed
    ur = load_embodiment(REPO_ROOT / 'config/embodiments/ur_ros2_control.yaml')
    assert ur.joints.type == 'float64_multi_array' and len(ur.joint_names) == 6 and ur.state.dim == 12


def test_bad_embodiment_files_are_clear_errors(tmp_path):
    base = yaml.safe_load((REPO_ROOT / 'config/embodiments/metaworld_sawyer.yaml').read_text())
    cases = [
        ({'actions': [{'name': 'dx', 'command': 'twist.linear.q'}]}, "unknown command 'twist.linear.q'"),
        ({'actions': [{'name': 'a', 'command': 'gripper'}, {'name': 'a', 'command': 'terminate'}]}, 'names repeat'),
        ({'actions': [{'name': 'a', 'command': 'gripper', 'scale': 0.0}]}, 'scale must not be 0'),
        ({'actions': [{'name': 'a', 'command': 'joint_position.j1'}, {'name': 'b', 'command': 'joint_velocity.j2'}]},
         'mix joint_position and joint_velocity'),
        ({'state': {'topic': 'joint_states', 'joints': []}}, 'state.joints is empty'),
        ({'cameras': [{'name': 'a'}, {'name': 'b'}]}, 'camera names and topics must differ'),
        ({'twist': {'topic': 'x', 'frame': 'y'}}, r"embodiment.twist: unknown keys \['frame'\]"),
    ]
    for change, message in cases:
        (tmp_path / 'e.yaml').write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(ValueError, match=message):
            load_embodiment(tmp_path / 'e.yaml')


def test_commands_invert_exactly_and_group_by_message():
    emb = load_embodiment(REPO_ROOT / 'config/embodiments/panda_moveit_servo.yaml')
    cmap = CommandMap(emb)
    rng = np.random.default_rng(0)
    for _ in range(100):
        v = rng.uniform(cmap.low, cmap.high).astype(np.float32)
        np.testing.assert_allclose(cmap.to_action(cmap.to_commands(v)), v, atol=1e-6)
    c = cmap.to_commands([1, 0, -1, 0.5, 0, -0.5, -1, 1])
    g = cmap.group(c)
    np.testing.assert_allclose(g.linear, [0.1, 0.0, -0.1])
    np.testing.assert_allclose(g.angular, [0.25, 0.0, -0.25])
    assert g.gripper == pytest.approx(0.0) and g.terminate  # -1 -> closed (0 m); terminate 1 >= 0.5
    assert not cmap.group(cmap.to_commands([0] * 7 + [0.4])).terminate
    # the recorder's direction: message fields -> dimensions
    dims, values = cmap.from_twist((0.05, 0, 0), (0, 0, 0.3))
    assert dims == [0, 1, 2, 3, 4, 5]
    command = cmap.to_commands([0] * 8)
    command[dims] = values
    np.testing.assert_allclose(cmap.to_action(command)[:6], [0.5, 0, 0, 0, 0, 0.6])


def test_joint_commands_by_name_in_any_order():
    ur = CommandMap(load_embodiment(REPO_ROOT / 'config/embodiments/ur_ros2_control.yaml'))
    names = list(ur.joint_names)
    dims, values = ur.from_joints(names[::-1], list(range(6))[::-1])
    assert [ur.embodiment.actions[i].joint for i in dims] == names and values == [0, 1, 2, 3, 4, 5]
    assert ur.from_joints([], [0.1] * 6)[1] == [0.1] * 6  # Float64MultiArray: the embodiment's order
    with pytest.raises(ValueError, match='6 joints'):
        ur.from_joints([], [0.1] * 5)
    emb = load_embodiment(REPO_ROOT / 'config/embodiments/ur_ros2_control.yaml')
    state = emb.state.extract(['wrist_3_joint', 'elbow_joint', 'shoulder_pan_joint', 'shoulder_lift_joint',
                               'wrist_1_joint', 'wrist_2_joint'],
                              position=[6, 3, 1, 2, 4, 5], velocity=[60, 30, 10, 20, 40, 50])
    assert state == [1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60]
    with pytest.raises(ValueError, match=r"lacks joints \['wrist_3_joint'\]"):
        emb.state.extract(names[:5], position=[0] * 5, velocity=[0] * 5)


def test_command_window_mean_for_velocity_latest_for_position():
    w = CommandWindow([True, False], rest=[0.0, -1.0], timeout_s=0.2)
    assert list(w.step(0.0, 0.1)) == [0.0, -1.0]  # nothing yet: no motion; the position's rest value
    w.update(0.00, [0, 1], [1.0, 0.5])
    w.update(0.05, [0, 1], [3.0, 0.7])
    np.testing.assert_allclose(w.step(0.0, 0.1), [2.0, 0.7])  # half of 1 and half of 3; the latest target
    np.testing.assert_allclose(w.step(0.0, 0.05), [1.0, 0.5])  # a command at t1 belongs to the next step
    # a command is in force until its timeout: 3.0 from 0.05 to 0.25, then 0 (the robot stops)
    np.testing.assert_allclose(w.step(0.1, 0.5)[0], 3.0 * 0.15 / 0.4)
    w.update(0.02, [0], [2.0])  # a late one, inserted in time order
    np.testing.assert_allclose(w.step(0.0, 0.1)[0], (1.0 * 0.02 + 2.0 * 0.03 + 3.0 * 0.05) / 0.1)
    w.forget_before(0.1)
    np.testing.assert_allclose(w.step(0.1, 0.2), [3.0, 0.7])


def test_teleop_steps_with_a_30hz_camera_and_a_100hz_joystick():
    """10 Hz control from a 30 Hz camera: every third frame is a step; each step's action is the mean
    twist over it, inverted by the embodiment's scale; nothing is recorded before the first command."""
    emb = load_embodiment(REPO_ROOT / 'config/embodiments/metaworld_sawyer.yaml')
    steps = TeleopSteps(emb)
    steps.start()
    events = [(k / 30.0, 'frame', k) for k in range(30)]
    # the operator starts at 0.15 s: vx = 0.01 * i m/s at 100 Hz (a ramp); the gripper closes at 0.5 s
    events += [(0.15 + i / 100.0, 'twist', i) for i in range(70)] + [(0.5, 'gripper', 1.0)]
    out = []
    for t, kind, x in sorted(events, key=lambda e: (e[0], e[1] != 'twist')):
        if kind == 'frame':
            s = steps.frame(t, x)
            if s is not None:
                out.append(s)
        elif kind == 'twist':
            steps.command(t, *steps.map.from_twist((0.01 * x, 0.0, 0.0), (0.0, 0.0, 0.0)))
        else:
            steps.command(t, *steps.map.from_gripper(x))
    last = steps.finish(1.0, terminate=True)
    frames = [s.frame for s in out] + [last.frame]
    assert frames == [3, 6, 9, 12, 15, 18, 21, 24, 27]  # the step at frame 0 had no command: not a step
    for s in out[1:]:  # a full step of the ramp: mean vx over [t0, t1) = 0.01 * (mean index), / 0.1 m/s per unit
        t0, t1 = s.start, s.end
        idx = [i for i in range(70) if t0 <= 0.15 + i / 100 < t1]
        held = (0.15 + idx[0] / 100 - t0) * 0.01 * (idx[0] - 1)  # the command in force from before t0
        expected = (held + sum(0.01 * i * 0.01 for i in idx)) / (t1 - t0) / 0.1
        assert s.values[0] == pytest.approx(min(expected, 1.0), abs=1e-5)
    assert out[0].values[0] == pytest.approx(sum(0.01 * i * 0.01 for i in range(5)) / 0.1 / 0.1, abs=1e-5)  # from 0.15 s
    assert [s.values[3] for s in out] == [0.0] * 4 + [1.0] * 4  # gripper: latest; closes in the step with 0.5 s
    # the end 40 ms after a step frame (the success topic and that frame raced): not a step
    steps.start()
    steps.command(2.0, *steps.map.from_twist((0.1, 0, 0), (0, 0, 0)))
    assert steps.frame(2.01, 'a') is None and steps.frame(2.11, 'b').frame == 'a'
    assert steps.finish(2.15) is None


def test_safety_limits(tmp_path):
    emb = load_embodiment(REPO_ROOT / 'config/embodiments/panda_moveit_servo.yaml')
    safe = SafetyFilter(emb)
    cmap = CommandMap(emb)
    full = cmap.to_commands([1, 1, 1, 1, 1, 1, 1, 0])  # 0.1 m/s, 0.5 rad/s, open gripper 0.08 m
    c, acted = safe.apply(full)
    # slew from rest: at most max_step (0.05 m/s, 0.2 rad/s) per tick; the first gripper target is sent as is
    np.testing.assert_allclose(c[:6], [0.05] * 3 + [0.2] * 3)
    assert c[6] == pytest.approx(0.08) and 'max_step' in acted
    c, _ = safe.apply(full)
    np.testing.assert_allclose(c[:6], [0.1] * 3 + [0.4] * 3)
    c, acted = safe.apply(full)
    np.testing.assert_allclose(c[:6], [0.1] * 3 + [0.5] * 3)  # 0.5 rad/s < max_velocity 0.6
    closed = cmap.to_commands([1, 1, 1, 1, 1, 1, -1, 0])
    c, acted = safe.apply(closed)
    assert c[6] == pytest.approx(0.08 - 0.1 / 10.0) and 'position_rate' in acted  # 0.1 m/s at 10 Hz
    # the workspace box: at the +x face motion further out is zeroed, back in is kept
    c, acted = safe.apply(full, ee_position=[0.75, 0.0, 0.3])
    assert c[0] == 0.0 and c[1] > 0 and 'workspace' in acted
    c, _ = safe.apply(cmap.to_commands([-1, 1, 1, 1, 1, 1, 1, 0]), ee_position=[0.75, 0.0, 0.3])
    assert c[0] < 0
    safe.reset()  # after a hold: ramp from zero again
    c, _ = safe.apply(full)
    np.testing.assert_allclose(c[:3], [0.05] * 3)

"""Plain `ros2 bag record` bags (MCAP and sqlite3, any topic names, mixed rates) -> episode bags -> training data."""
from pathlib import Path

import numpy as np
import pytest

from qt_policy.data import bag_format as bf
from qt_policy.data.bag_io import read_episode_bag
from qt_policy.robot.embodiment import load_embodiment
from qt_policy.tools.import_bags import BagImportError, import_bag, main, topic_map

REPO_ROOT = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000 * 10**9  # log times (the recorder's clock)
CLOCK_OFFSET = -1_699_999_000 * 10**9  # the devices stamp with another clock (e.g. sim time)


def write_plain_bag(path: Path, storage: str, seconds: float = 1.0, compressed: bool = False):
    """A 30 Hz camera (each frame's pixels = its index), a 100 Hz JointState (names shuffled, with one
    extra joint), 10 Hz TwistStamped commands (vx = 0.01 * k m/s) and 10 Hz gripper commands."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = bf.get_episode_typestore()
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    events = []
    for k in range(int(seconds * 30)):
        events.append((T0 + k * 33_333_333, '/cam/color', bf.COMPRESSED_IMAGE_TYPE if compressed else bf.IMAGE_TYPE, k))
    for k in range(int(seconds * 100)):
        events.append((T0 + k * 10_000_000 + 1_000_000, '/joint_states', bf.JOINT_STATE_TYPE, k))
    for k in range(int(seconds * 10)):
        events.append((T0 + 120_000_000 + k * 100_000_000, '/servo/cmd', bf.TWIST_STAMPED_TYPE, k))
        events.append((T0 + 120_000_000 + k * 100_000_000, '/gripper/command', bf.FLOAT64_TYPE, k))
    events.sort(key=lambda e: e[0])
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for topic, msgtype in {(e[1], e[2]) for e in events}:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
        for t, topic, msgtype, k in events:
            stamp = t + CLOCK_OFFSET
            if msgtype == bf.IMAGE_TYPE:
                msg = bf.make_image_msg(np.full((24, 32, 3), k, np.uint8), stamp, typestore=ts)
            elif msgtype == bf.COMPRESSED_IMAGE_TYPE:
                msg = bf.make_compressed_image_msg(np.full((24, 32, 3), k, np.uint8), stamp, 'png', typestore=ts)
            elif msgtype == bf.JOINT_STATE_TYPE:
                names = ['hand_z', 'extra', 'gripper_opening', 'hand_x', 'hand_y']
                values = {'hand_x': k, 'hand_y': -k, 'hand_z': 0.5 * k, 'gripper_opening': 1.0, 'extra': 99.0}
                msg = bf.make_joint_state_msg([values[n] for n in names], names, stamp, typestore=ts)
            elif msgtype == bf.TWIST_STAMPED_TYPE:
                msg = ts.types[msgtype](header=bf.make_header(stamp, 'base_link', ts), twist=ts.types[
                    'geometry_msgs/msg/Twist'](linear=ts.types['geometry_msgs/msg/Vector3'](x=0.01 * k, y=0.0, z=0.0),
                                               angular=ts.types['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)))
            else:
                msg = ts.types[msgtype](data=1.0 if k >= 5 else -1.0)
            writer.write(conns[topic], t, ts.serialize_cdr(msg, msgtype))
    return path


@pytest.mark.parametrize('storage, compressed', [('mcap', False), ('sqlite3', False), ('mcap', True)])
def test_plain_bag_imports_by_the_alignment_rule(tmp_path, storage, compressed):
    emb = load_embodiment(REPO_ROOT / 'config/embodiments/metaworld_sawyer.yaml')
    bag = write_plain_bag(tmp_path / 'raw', storage, compressed=compressed)
    topics = topic_map(emb, overrides={'camera': '/cam/color', 'state': '/joint_states', 'twist': '/servo/cmd'})
    end = import_bag(bag, emb, tmp_path / 'out', topics, instruction='open the drawer', success=True)
    ep = read_episode_bag(end.bag_path)
    assert (ep.instruction, ep.success, ep.end_reason, ep.embodiment['name']) == (
        'open the drawer', True, 'imported', 'metaworld_sawyer')
    # steps: every third 30 Hz frame from the operator's first command (0.12 s) on
    frame_index = ep.images[:, 0, 0, 0].astype(int).tolist()
    assert frame_index == list(range(3, 30, 3)), frame_index
    assert len(ep) == end.num_steps == 9
    for t, k in enumerate(frame_index):
        frame_ns = k * 33_333_333
        latest_state = (frame_ns - 1_000_000) // 10_000_000  # the latest 100 Hz state logged at or before the frame
        np.testing.assert_allclose(ep.states[t], [latest_state, -latest_state, 0.5 * latest_state, 1.0])
        # the mean vx over [frame k, next step frame) of the 10 Hz commands (each in force 0.1 s), / 0.1 m/s per unit
        last_log = 120_000_000 + 9 * 100_000_000  # the import ends the episode at the last message
        start, stop = frame_ns, (k + 3) * 33_333_333 if t + 1 < len(ep) else last_log + 1
        grid = np.arange(start, stop, 100_000)
        cmd = np.where(grid >= 120_000_000, 0.01 * ((grid - 120_000_000) // 100_000_000), 0.0)
        assert ep.actions[t, 0] == pytest.approx(cmd.mean() / 0.1, abs=2e-3)
        grip = [c for c in range(10) if 120_000_000 + c * 100_000_000 < stop]
        assert ep.actions[t, 3] == (1.0 if grip and grip[-1] >= 5 else -1.0)
    np.testing.assert_array_equal(ep.actions[:, 1:3], 0.0)


def test_missing_topics_and_labels_are_clear_errors(tmp_path):
    emb = load_embodiment(REPO_ROOT / 'config/embodiments/metaworld_sawyer.yaml')
    bag = write_plain_bag(tmp_path / 'raw', 'mcap', seconds=0.5)
    with pytest.raises(BagImportError, match=r"no topic /camera/image_raw \(camera\).*the bag has \['/cam/color'"):
        import_bag(bag, emb, tmp_path / 'out', topic_map(emb), 'x', True)
    topics = topic_map(emb, overrides={'camera': '/cam/color', 'state': '/joint_states', 'twist': '/servo/cmd'})
    with pytest.raises(BagImportError, match='no success label'):
        import_bag(bag, emb, tmp_path / 'out', topics, 'x', None)
    (bag / 'qt_episode.yaml').write_text('instruction: close the drawer\nsuccess: false\n')  # a sidecar labels it
    end = import_bag(bag, emb, tmp_path / 'out', topics)
    assert (end.instruction, end.success) == ('close the drawer', False)
    rc = main([str(bag), '--embodiment', str(REPO_ROOT / 'config/embodiments/metaworld_sawyer.yaml'),
               '--out', str(tmp_path / 'cli'), '--topic', 'camera=/cam/color'])
    assert rc == 1  # /robot_state and /servo_node/delta_twist_cmds are not in the bag: an error, no crash

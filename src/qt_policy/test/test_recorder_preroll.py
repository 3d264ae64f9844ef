"""An instruction heard late is still recorded from when it was sent (the recorder's pre-roll).

Over DDS the arm and the policy can hear an instruction before the recorder does. Two recorders are fed
the same message stream; one hears the instruction when it is sent, the other 0.5 s later. Their bags
must be the same episode: the same steps, frames, states and actions, for the policy's QActions and for
a teleoperator's commands, and nothing of the previous episode.
"""
import numpy as np
import pytest

from qt_policy.data import bag_format as bf
from qt_policy.data.bag_io import read_episode_bag
from qt_policy.paths import DEFAULT_EMBODIMENT, resolve_data_path
from qt_policy.robot.embodiment import load_embodiment
from qt_policy.runtime.episode_recorder import EpisodeRecorder

NAMES = ["dx", "dy", "dz", "gripper"]
T0 = 1_700_000_000 * 10**9
MS = 1_000_000
TS = bf.get_episode_typestore()


def image(stamp, value):
    return TS.serialize_cdr(bf.make_image_msg(np.full((8, 8, 3), value % 256, np.uint8), stamp, typestore=TS),
                            bf.IMAGE_TYPE)


def state(stamp, value):
    return TS.serialize_cdr(bf.make_joint_state_msg(np.full(4, float(value)), ["hand_x", "hand_y", "hand_z", "gripper_opening"], stamp,
                                                    typestore=TS),
                            bf.JOINT_STATE_TYPE)


def action(stamp, value, instruction=""):
    return TS.serialize_cdr(bf.make_qaction_msg(np.full(4, value), stamp, NAMES, instruction=instruction,
                                                typestore=TS), bf.QACTION_TYPE)


def twist(x):
    msg = TS.types["geometry_msgs/msg/TwistStamped"](
        header=bf.make_header(0, typestore=TS),
        twist=TS.types["geometry_msgs/msg/Twist"](
            linear=TS.types["geometry_msgs/msg/Vector3"](x=x, y=0.0, z=0.0),
            angular=TS.types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)))
    return TS.serialize_cdr(msg, bf.TWIST_STAMPED_TYPE)


class Clock:
    def __init__(self, ns):
        self.ns = ns

    def __call__(self):
        return self.ns


def recorders(tmp_path, **kw):
    return [EpisodeRecorder(tmp_path / name, wall_clock_ns=Clock(T0), **kw) for name in ("on_time", "late")]


def scene_stream(start_ns, steps, first_value, instruction, teleop=False):
    """(log_ns, callable(recorder)) events of an episode: a frame + state every 100 ms, then the action
    decided from it 20 ms later (or a teleoperator's twist), all arriving 1 ms after their stamp."""
    events = []
    for k in range(steps):
        s = start_ns + k * 100 * MS
        v = first_value + k
        events.append((s + MS, lambda r, s=s, v=v: r.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(s, v), s + MS)))
        events.append((s + MS, lambda r, s=s, v=v: r.record(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE, state(s, v), s + MS)))
        if teleop:
            events.append((s + 20 * MS, lambda r, s=s, v=v: r.command("twist", bf.TWIST_STAMPED_TYPE,
                                                                       twist(0.001 * (v % 7)), s + 20 * MS)))
        else:
            events.append((s + 20 * MS, lambda r, s=s, v=v: r.record(bf.ACTION_TOPIC, bf.QACTION_TYPE,
                                                                      action(s, (v % 10) / 10, instruction),
                                                                      s + 20 * MS)))
    return events


def run(recs, events, starts):
    """Feed every recorder the same events; recorder i starts (instruction, sent_ns) at starts[i]'s log time."""
    ends = [[] for _ in recs]
    for i, rec in enumerate(recs):
        pending = sorted(starts[i], key=lambda x: x[0])
        for log_ns, feed in sorted(events, key=lambda e: e[0]):
            while pending and pending[0][0] <= log_ns:
                heard, text, sent = pending.pop(0)
                out = rec.start(text, heard / 1e9, heard, sent_ns=sent)
                assert out.started
            end = feed(rec)
            if end is not None:
                ends[i].append(end)
        for heard, text, sent in pending:
            rec.start(text, heard / 1e9, heard, sent_ns=sent)
        ends[i].append(rec.end(True, "service", "test", log_time_ns=max(e[0] for e in events) + 50 * MS))
    return ends


def steps_of(path):
    ep = read_episode_bag(path)
    return ep, [int(img[0, 0, 0]) for img in ep.images]


def test_an_instruction_heard_half_a_second_late_records_the_same_episode(tmp_path):
    on_time, late = recorders(tmp_path)
    sent = T0 + 10_000 * MS
    # the previous scene: a paused arm republishes its last render, stamped when it was rendered
    old = [(sent - 300 * MS + k * 100 * MS, lambda r, k=k: r.record(
        bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(sent - 2_000 * MS, 200), sent - 300 * MS + k * 100 * MS))
        for k in range(3)]
    old += [(sent - 250 * MS, lambda r: r.record(bf.ACTION_TOPIC, bf.QACTION_TYPE,
                                                 action(sent - 2_000 * MS, 0.9, "old"), sent - 250 * MS))]
    events = old + scene_stream(sent + 5 * MS, 12, 0, "open the drawer")
    (end_a,), (end_b,) = run([on_time, late], events,
                             [[(sent + MS, "open the drawer", sent)], [(sent + 500 * MS, "open the drawer", sent)]])
    ep_a, frames_a = steps_of(end_a.bag_path)
    ep_b, frames_b = steps_of(end_b.bag_path)
    assert end_a.num_steps == end_b.num_steps == 12
    assert frames_a == frames_b == list(range(12))  # the first frame is the episode's first, none of the old scene
    np.testing.assert_array_equal(ep_a.actions, ep_b.actions)
    np.testing.assert_array_equal(ep_a.states, ep_b.states)
    assert ep_b.instruction == "open the drawer"
    # without the pre-roll the late recorder loses the first half second, as before
    (no_preroll,) = [EpisodeRecorder(tmp_path / "none", wall_clock_ns=Clock(T0), preroll_s=0.0)]
    (end_c,), = run([no_preroll], events, [[(sent + 500 * MS, "open the drawer", sent)]])
    assert end_c.num_steps == 7


def test_teleoperated_steps_are_the_same_when_heard_late(tmp_path):
    emb = load_embodiment(resolve_data_path(DEFAULT_EMBODIMENT))
    on_time, late = recorders(tmp_path, embodiment=emb, teleop=True)
    sent = T0 + 10_000 * MS
    events = scene_stream(sent + 5 * MS, 10, 0, "", teleop=True)
    (end_a,), (end_b,) = run([on_time, late], events,
                             [[(sent + MS, "open the drawer", sent)], [(sent + 500 * MS, "open the drawer", sent)]])
    ep_a, frames_a = steps_of(end_a.bag_path)
    ep_b, frames_b = steps_of(end_b.bag_path)
    assert end_a.num_steps == end_b.num_steps >= 9
    assert frames_a == frames_b
    np.testing.assert_array_equal(ep_a.actions, ep_b.actions)
    assert np.abs(ep_a.actions[:, 0]).max() > 0  # the twists made the actions


def test_the_next_episode_takes_nothing_of_the_previous_one(tmp_path):
    (rec,) = [EpisodeRecorder(tmp_path / "bags", wall_clock_ns=Clock(T0))]
    first = T0 + 10_000 * MS
    events = scene_stream(first + 5 * MS, 5, 0, "open the drawer")
    second = first + 800 * MS  # sent 300 ms after the first episode's last frame; heard 400 ms late
    events += scene_stream(second + 5 * MS, 6, 100, "close the drawer")
    ends = []
    rec.start("open the drawer", first / 1e9, first + MS, sent_ns=first)
    for log_ns, feed in sorted(events, key=lambda e: e[0]):
        if log_ns > first + 600 * MS and not ends:  # the first episode ends by the success topic
            ends.append(rec.success_signal(True))
        if log_ns > second + 400 * MS and rec.instruction != "close the drawer":
            assert rec.start("close the drawer", log_ns / 1e9, log_ns, sent_ns=second).replayed > 0
        feed(rec)
    ends.append(rec.end(True, "service"))
    ep_1, frames_1 = steps_of(ends[0].bag_path)
    ep_2, frames_2 = steps_of(ends[1].bag_path)
    assert frames_1 == [0, 1, 2, 3, 4] and frames_2 == [100, 101, 102, 103, 104, 105]
    assert ends[1].num_steps == 6


@pytest.mark.parametrize("sent_offset_ms, expected_start_offset_ms", [
    (-100_000, -2_000),  # a sender's clock far behind: at most preroll_s back
    (+5_000, 0),  # a sender's clock ahead: from when it was heard
    (-300, -300),
])
def test_the_start_is_clamped_to_the_preroll(tmp_path, sent_offset_ms, expected_start_offset_ms):
    (rec,) = [EpisodeRecorder(tmp_path / "bags", wall_clock_ns=Clock(T0), preroll_s=2.0)]
    heard = T0 + 10_000 * MS
    for k in range(31):  # a frame every 100 ms until it is heard
        s = heard - 3_000 * MS + k * 100 * MS
        rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(s, k), s + MS)
    rec.start("open the drawer", heard / 1e9, heard, sent_ns=heard + sent_offset_ms * MS)
    s = heard + 50 * MS
    rec.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, action(heard - 1_000 * MS, 0.1), s)
    end = rec.end(True, "service")
    from rosbags.highlevel import AnyReader
    from pathlib import Path
    with AnyReader([Path(end.bag_path)]) as reader:
        stamps = [bf.cdr_header_stamp_ns(raw) for conn, _, raw in reader.messages()
                  if conn.topic == bf.IMAGE_TOPIC]
    start = heard + expected_start_offset_ms * MS
    assert stamps and min(stamps) >= start and min(stamps) - start < 100 * MS

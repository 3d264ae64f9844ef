"""Episode bags (rosbag2 / MCAP): round trip, third-party readers, partial bags, alignment, encodings, shards."""
import math

import numpy as np
import pytest

from qt_policy.codec.images import image_msg_to_rgb
from qt_policy.data import bag_format as bf
from qt_policy.data.bag_io import (
    IncompleteEpisodeBagError,
    find_partial_bags,
    list_episode_bags,
    read_episode_bag,
)
from qt_policy.data.bag_writer import EpisodeBagWriter, write_episode_bag
from qt_policy.data.episode import EpisodeData
from qt_test_helpers.episodes import ACTION_NAMES, make_episode


@pytest.fixture(scope="module")
def ts():
    return bf.get_episode_typestore()


@pytest.fixture()
def episode_bag(tmp_path):
    ep = make_episode()
    path = write_episode_bag(tmp_path / "bags", ep, start_time_ns=1_700_000_000_000_000_000, dt_ns=50_000_000)
    return ep, path


def assert_episode_equal(a: EpisodeData, b: EpisodeData):
    assert b.images.dtype == np.uint8 and b.actions.dtype == np.float32
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.actions, b.actions)
    if a.states is None:
        assert b.states is None
    else:
        assert b.states.dtype == np.float32
        np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert (b.instruction, b.success, b.action_names, b.state_names) == \
        (a.instruction, a.success, a.action_names, a.state_names)


# (a) -------------------------------------------------------------------------------------------------
def test_roundtrip(episode_bag):
    ep, path = episode_bag
    assert path.name == "ep_0001" and (path / "metadata.yaml").is_file() and (path / "ep_0001_0.mcap").is_file()
    assert not path.with_name("ep_0001.partial").exists()
    back = read_episode_bag(path)
    assert_episode_equal(ep, back)
    assert back.rewards.tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert (back.episode_id, back.end_reason, back.task) == ("ep_0001", "success_topic", "pick-place")


def test_roundtrip_failure_without_states(tmp_path):
    ep = make_episode(T=3, success=False, states=False, episode_id="")
    path = write_episode_bag(tmp_path, ep, start_time_ns=0, name="fail_0")
    back = read_episode_bag(path)
    assert_episode_equal(ep, back)
    assert back.rewards.tolist() == [0, 0, 0]


# (b) -------------------------------------------------------------------------------------------------
def test_third_party_readers(episode_bag):
    ep, path = episode_bag
    from rosbags.highlevel import AnyReader

    expected = {bf.IMAGE_TOPIC: 7, bf.INSTRUCTION_TOPIC: 1, bf.STATE_TOPIC: 7, bf.ACTION_TOPIC: 7, bf.RESULT_TOPIC: 1}
    with AnyReader([path]) as reader:  # types come from the definitions stored in the bag
        assert {c.topic: c.msgcount for c in reader.connections} == expected
        assert {c.topic: c.msgtype for c in reader.connections} == {k: bf.TOPIC_TYPES[k] for k in expected}
        acts = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                if c.topic == bf.ACTION_TOPIC]
    np.testing.assert_array_equal(acts[3].values, ep.actions[3])
    assert list(acts[3].dimension_names) == ACTION_NAMES and len(acts[3].bins) == 0 and math.isnan(acts[3].q_value)

    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    mcaps = list(path.glob("*.mcap"))
    assert len(mcaps) == 1
    with open(mcaps[0], "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        counts = {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}
        assert counts == expected
        decoded = [(ch.topic, msg) for _, ch, _, msg in reader.iter_decoded_messages()]
    assert decoded[0][0] == bf.INSTRUCTION_TOPIC and decoded[0][1].data == ep.instruction
    assert decoded[-1][0] == bf.RESULT_TOPIC and decoded[-1][1].success and decoded[-1][1].num_steps == 7
    m_acts = [m for topic, m in decoded if topic == bf.ACTION_TOPIC]
    np.testing.assert_array_equal(np.asarray(m_acts[3].values, np.float32), ep.actions[3])
    img = next(m for topic, m in decoded if topic == bf.IMAGE_TOPIC)
    assert (img.encoding, img.height, img.width) == ("rgb8", 16, 16)
    np.testing.assert_array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(16, 16, 3), ep.images[0])


# (c) -------------------------------------------------------------------------------------------------
def test_unfinalized_writer_leaves_partial(tmp_path, ts):
    w = EpisodeBagWriter(ts)
    partial = w.open(tmp_path, "ep_crash")
    assert partial == tmp_path / "ep_crash.partial"
    w.write(bf.INSTRUCTION_TOPIC, bf.STRING_TYPE, bf.make_string_msg("x", ts), 1)
    w.write(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, bf.make_image_msg(np.zeros((4, 4, 3), np.uint8), 2, typestore=ts), 2)
    w.write(bf.ACTION_TOPIC, bf.QACTION_TYPE, bf.make_qaction_msg(np.zeros(4), 2, typestore=ts), 3)
    assert w.abort() == partial
    assert [p.name for p in tmp_path.iterdir()] == ["ep_crash.partial"]
    assert list_episode_bags(tmp_path) == [] and find_partial_bags(tmp_path) == [partial]
    with pytest.raises(IncompleteEpisodeBagError, match="unfinished"):
        read_episode_bag(partial)
    # the same bag renamed by hand still lacks /episode_result
    renamed = partial.rename(tmp_path / "ep_crash")
    assert list_episode_bags(tmp_path) == [renamed]
    with pytest.raises(IncompleteEpisodeBagError, match="episode_result"):
        read_episode_bag(renamed)
    # a writer left open (process crash) never produces a folder without .partial
    w2 = EpisodeBagWriter(ts)
    w2.open(tmp_path, "ep_open")
    w2.write(bf.INSTRUCTION_TOPIC, bf.STRING_TYPE, bf.make_string_msg("y", ts), 1)
    assert (tmp_path / "ep_open.partial").is_dir() and not (tmp_path / "ep_open").exists()
    with pytest.raises(IncompleteEpisodeBagError):
        read_episode_bag(tmp_path / "ep_open.partial")
    w2.abort()
    with pytest.raises(FileExistsError):
        EpisodeBagWriter(ts).open(tmp_path, "ep_open")


# (d) -------------------------------------------------------------------------------------------------
def test_alignment_and_raw_writes(tmp_path, ts):
    frames = {s: np.full((4, 5, 3), s + 1, np.uint8) for s in (0, 10, 20)}
    w = EpisodeBagWriter(ts)
    w.open(tmp_path, "ep_align")
    w.write(bf.INSTRUCTION_TOPIC, bf.STRING_TYPE, bf.make_string_msg("align", ts), 0)
    for s, img in frames.items():  # raw CDR, as a raw rclpy subscription delivers it
        raw = bytes(ts.serialize_cdr(bf.make_image_msg(img, s, typestore=ts), bf.IMAGE_TYPE))
        w.write_raw(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, raw, s + 1)
        w.write(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE, bf.make_joint_state_msg([s], ["j"], s, typestore=ts), s + 1)
    w.write(bf.ACTION_TOPIC, bf.QACTION_TYPE, bf.make_qaction_msg([0.5], 5, ["a"], bins=[3], q_value=0.7, typestore=ts), 22)
    w.write(bf.ACTION_TOPIC, bf.QACTION_TYPE, bf.make_qaction_msg([-0.5], 20, ["a"], typestore=ts), 23)
    path = w.finalize(success=False, episode_id="align", end_reason="timeout")
    ep = read_episode_bag(path)
    np.testing.assert_array_equal(ep.images, np.stack([frames[0], frames[20]]))
    np.testing.assert_array_equal(ep.states[:, 0], [0, 20])
    np.testing.assert_array_equal(ep.actions[:, 0], [0.5, -0.5])
    assert (ep.instruction, ep.success, ep.end_reason) == ("align", False, "timeout")
    assert ep.rewards.tolist() == [0, 0]


def test_action_before_first_image_uses_first_image(tmp_path, ts):
    w = EpisodeBagWriter(ts)
    w.open(tmp_path, "ep_early")
    w.write(bf.ACTION_TOPIC, bf.QACTION_TYPE, bf.make_qaction_msg([1.0], 3, typestore=ts), 4)
    for s in (10, 20):
        w.write(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, bf.make_image_msg(np.full((2, 2, 3), s, np.uint8), s, typestore=ts), s)
    path = w.finalize(success=True)
    ep = read_episode_bag(path)
    assert ep.images[0, 0, 0, 0] == 10 and ep.rewards.tolist() == [1]


# (e) -------------------------------------------------------------------------------------------------
def _raw_image_msg(ts, rgb, encoding, pad):
    h, w, _ = rgb.shape
    pix = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "rgba8": np.concatenate([rgb, np.full((h, w, 1), 9, np.uint8)], 2),
           "bgra8": np.concatenate([rgb[:, :, ::-1], np.full((h, w, 1), 9, np.uint8)], 2),
           "mono8": rgb[:, :, :1]}[encoding]
    c = pix.shape[2]
    rows = np.full((h, w * c + pad), 77, np.uint8)
    rows[:, : w * c] = pix.reshape(h, w * c)
    return ts.types[bf.IMAGE_TYPE](header=bf.make_header(0, typestore=ts), height=h, width=w, encoding=encoding,
                                   is_bigendian=0, step=w * c + pad, data=rows.reshape(-1))


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("pad", [0, 3])
def test_image_encodings_and_padding(ts, encoding, pad):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    if encoding == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
    msg = ts.deserialize_cdr(ts.serialize_cdr(_raw_image_msg(ts, rgb, encoding, pad), bf.IMAGE_TYPE), bf.IMAGE_TYPE)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


def test_bgr8_padded_through_bag(tmp_path, ts):
    rgb = np.random.default_rng(2).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    w = EpisodeBagWriter(ts)
    w.open(tmp_path, "ep_bgr")
    w.write(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, _raw_image_msg(ts, rgb, "bgr8", 4), 1)
    w.write(bf.ACTION_TOPIC, bf.QACTION_TYPE, bf.make_qaction_msg([0.0], 0, typestore=ts), 2)
    ep = read_episode_bag(w.finalize(success=True))
    np.testing.assert_array_equal(ep.images[0], rgb)


# (f) -------------------------------------------------------------------------------------------------


# interop with the built qt_msgs (skipped when the workspace is not built/sourced) ---------------------
def test_type_hashes_match_rosidl(ts):
    import json

    try:
        msg_dir = bf.find_qt_msgs_dir()
    except FileNotFoundError:
        pytest.skip("qt_msgs not found")
    for name in ("QAction", "EpisodeResult"):
        desc = msg_dir / f"{name}.json"  # written by rosidl_generator_type_description at build time
        if not desc.is_file():
            pytest.skip("qt_msgs is not installed (no type description JSON)")
        hashes = {h["type_name"]: h["hash_string"] for h in json.loads(desc.read_text())["type_hashes"]}
        assert ts.hash_rihs01(f"qt_msgs/msg/{name}") == hashes[f"qt_msgs/msg/{name}"]


def test_rclpy_raw_bytes(tmp_path, ts):
    try:
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import Image

        from qt_msgs.msg import QAction

        serialize_message(QAction())
    except Exception as err:
        pytest.skip(f"rclpy/qt_msgs unavailable: {err}")
    img = Image(height=2, width=3, encoding="bgr8", step=9, data=bytes(range(18)))
    img.header.stamp.sec = 1
    act = QAction(dimension_names=["a", "b"], values=[0.25, -1.0], bins=[1, 2], q_value=0.5, terminate=True)
    act.header.stamp.sec = 1
    w = EpisodeBagWriter(ts)
    w.open(tmp_path, "ep_rclpy")
    w.write_raw(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, serialize_message(img), 1_000_000_001)
    w.write_raw(bf.ACTION_TOPIC, bf.QACTION_TYPE, serialize_message(act), 1_000_000_002)
    ep = read_episode_bag(w.finalize(success=True))
    np.testing.assert_array_equal(ep.images[0], np.arange(18, dtype=np.uint8).reshape(2, 3, 3)[:, :, ::-1])
    np.testing.assert_array_equal(ep.actions, [[0.25, -1.0]])
    assert ep.action_names == ["a", "b"]


def test_two_cameras_round_trip_through_bag_shards_and_sampler(tmp_path):
    """A scene + wrist episode: each camera on its own topic, read back frame for frame, stored as
    (T, K, H, W, 3), sampled as (B, F, K, H, W, 3), and the model shaped for two cameras."""
    from qt_policy.core.config import LossConfig
    from qt_policy.data.convert import convert_bags
    from qt_policy.data.shard_format import load_manifest
    from qt_policy.data.dataset import TransitionSampler
    from qt_policy.training.data_shape import model_config_for

    one = make_episode(T=6, size=16)
    wrist = 255 - one.images
    ep = EpisodeData(instruction=one.instruction, images=np.stack([one.images, wrist], axis=1), actions=one.actions,
                     success=True, action_names=one.action_names, states=one.states, state_names=one.state_names,
                     episode_id="two_cams", end_reason="success", task="pick-place")
    assert ep.num_cameras == 2 and np.array_equal(ep.camera(1), wrist)
    path = write_episode_bag(tmp_path / "bags", ep, start_time_ns=1_700_000_000_000_000_000, dt_ns=50_000_000)
    meta = (path / "metadata.yaml").read_text()
    assert "/camera/image_raw" in meta and "/camera_1/image_raw" in meta
    back = read_episode_bag(path)
    np.testing.assert_array_equal(back.images, ep.images)

    manifest = convert_bags(tmp_path / "bags", tmp_path / "shards", image_size=8, progress=False)
    assert [layout["cameras"] for layout in manifest["layouts"].values()] == [2]
    cfg = model_config_for(load_manifest(tmp_path / "shards"), {"frames": 2})
    assert (cfg.cameras, cfg.image_size) == (2, 8)
    sampler = TransitionSampler(tmp_path / "shards", cfg, LossConfig(), lambda text: np.ones(cfg.text_dim, np.float32))
    obs = sampler.observation(np.array([0, 0]), np.array([0, 3]))
    assert tuple(obs.images.shape) == (2, 2, 2, 8, 8, 3)
    from qt_policy.data.observation import prepare_frame
    np.testing.assert_array_equal(obs.images[1, 1, 1].numpy(), prepare_frame(wrist[3], 8))  # step 3, wrist
    np.testing.assert_array_equal(obs.images[1, 0, 0].numpy(), prepare_frame(one.images[2], 8))  # step 2, scene


def test_cameras_of_different_sizes_need_an_image_size(tmp_path):
    """A real robot's wrist camera is often smaller than its scene camera: the bag keeps both as
    recorded, and reading them for training brings each to the model's square input."""
    from qt_policy.data.bag_io import EpisodeBagError
    from qt_policy.data.observation import prepare_frame

    ep = make_episode(T=3, size=16)
    path = write_episode_bag(tmp_path / "bags", ep, start_time_ns=1_700_000_000_000_000_000)
    ts = bf.get_episode_typestore()
    with EpisodeBagWriter(typestore=ts) as w:  # the same episode with a 12x20 second camera
        w.open(tmp_path / "bags2", "mixed")
        from rosbags.highlevel import AnyReader
        with AnyReader([path], default_typestore=ts) as reader:
            for conn, log_ns, raw in reader.messages():
                if conn.topic == bf.RESULT_TOPIC:
                    continue
                w.write_raw(conn.topic, conn.msgtype, raw, log_ns)
                if conn.topic == bf.IMAGE_TOPIC:
                    stamp = bf.cdr_header_stamp_ns(raw)
                    small = np.full((12, 20, 3), stamp % 200, np.uint8)
                    w.write(bf.image_topic(1), bf.IMAGE_TYPE, bf.make_image_msg(small, stamp, typestore=ts), log_ns)
        mixed = w.finalize(success=True, num_steps=3)
    with pytest.raises(EpisodeBagError, match="cameras of different sizes"):
        read_episode_bag(mixed)
    both = read_episode_bag(mixed, image_size=8)
    assert both.images.shape == (3, 2, 8, 8, 3)
    np.testing.assert_array_equal(both.images[:, 0], np.stack([prepare_frame(im, 8) for im in ep.images]))

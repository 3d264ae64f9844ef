"""The data says who drove: QAction's source and intervention flag in the bag, EpisodeData's interventions,
EpisodeResult's operator share (the recorder counts them); bags recorded before the fields existed read
as they always did (every step the policy's)."""
import dataclasses

import numpy as np
import pytest

from qt_policy.data import bag_format as bf
from qt_policy.data.bag_io import read_episode_bag
from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.data.episode import EpisodeData
from qt_test_helpers.episodes import make_episode
from qt_test_helpers.recording import NAMES, image, make_recorder, state


def with_interventions(ep: EpisodeData, flags) -> EpisodeData:
    return dataclasses.replace(ep, interventions=np.asarray(flags, bool))


def test_interventions_round_trip_through_a_bag(tmp_path):
    ep = with_interventions(make_episode(T=6), [0, 0, 1, 1, 1, 0])
    bag = write_episode_bag(tmp_path, ep)
    back = read_episode_bag(bag)
    assert back.interventions.tolist() == [False, False, True, True, True, False]
    assert back.operator_share == pytest.approx(0.5)
    from rosbags.highlevel import AnyReader
    ts = bf.get_episode_typestore()
    with AnyReader([bag], default_typestore=ts) as reader:
        conns = [c for c in reader.connections if c.topic in (bf.ACTION_TOPIC, bf.RESULT_TOPIC)]
        msgs = [(c.topic, reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages(connections=conns)]
    assert [m.source for t, m in msgs if t == bf.ACTION_TOPIC] == ["policy"] * 2 + ["operator"] * 3 + ["policy"]
    (result,) = [m for t, m in msgs if t == bf.RESULT_TOPIC]
    assert result.operator_share == pytest.approx(0.5)
    with pytest.raises(ValueError, match="intervention flags"):
        with_interventions(make_episode(T=3), [1, 0])


def legacy_typestore():
    """The qt_msgs of bags recorded before QAction.source/intervention and EpisodeResult.operator_share."""
    from rosbags.typesys import get_types_from_msg

    ts = bf._ros2_store()
    for name in (bf.QACTION_TYPE, bf.EPISODE_RESULT_TYPE):
        ts.register(get_types_from_msg(bf.LEGACY_DEFINITIONS[name], name))
    return ts


def test_a_bag_recorded_with_the_earlier_messages_still_reads(tmp_path):
    ep = make_episode(T=5)
    old = legacy_typestore()
    raw = old.serialize_cdr(old.types[bf.QACTION_TYPE](
        header=bf.make_header(1, "", old), instruction="x", dimension_names=["a"], values=np.zeros(1, np.float32),
        bins=np.zeros(1, np.uint16), q_value=0.5, terminate=True), bf.QACTION_TYPE)
    with pytest.raises(Exception):
        bf.get_episode_typestore().deserialize_cdr(raw, bf.QACTION_TYPE)  # today's layout does not fit it
    assert bf.deserialize(bf.get_episode_typestore(), raw, bf.QACTION_TYPE).terminate
    bag = write_episode_bag(tmp_path, ep, typestore=_without_new_fields(old))
    back = read_episode_bag(bag)
    np.testing.assert_array_equal(back.actions, ep.actions)
    assert back.success and not back.interventions.any() and back.operator_share == 0.0


def _without_new_fields(old):
    """make_qaction_msg / make_episode_result_msg build today's fields: a store that drops the new ones."""
    class Store:
        types = {**old.types}
        fieldnames = {bf.QACTION_TYPE: ("source", "intervention"), bf.EPISODE_RESULT_TYPE: ("operator_share",)}

        def __getattr__(self, name):
            return getattr(old, name)

    for name, extra in Store.fieldnames.items():
        cls = old.types[name]
        Store.types[name] = lambda cls=cls, extra=extra, **kw: cls(**{k: v for k, v in kw.items() if k not in extra})
    return Store()


def test_the_recorder_reports_the_operators_share(tmp_path):
    ts = bf.get_episode_typestore()
    rec, clock, _ = make_recorder(tmp_path)
    rec.start("open the drawer", now=0.0)
    for t, person in enumerate([False, True, True, False]):
        s = clock.ns
        rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(ts, s, t), s + 1000)
        rec.record(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE, state(ts, s), s + 1000)
        msg = bf.make_qaction_msg(np.full(4, 0.1), s, NAMES, typestore=ts, source="operator" if person else "policy",
                                  intervention=person)
        rec.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, ts.serialize_cdr(msg, bf.QACTION_TYPE), s + 2000)
        clock.ns += 100_000_000
    end = rec.end(True, "service")
    assert end.operator_share == pytest.approx(0.5)
    back = read_episode_bag(end.bag_path)
    assert back.interventions.tolist() == [False, True, True, False] and back.operator_share == pytest.approx(0.5)


def test_interventions_reach_the_shards_and_the_lerobot_export(tmp_path):
    from qt_policy.data.convert import convert_bags
    from qt_policy.data.lerobot import export_bags, read_lerobot_episodes
    from qt_policy.data.shard_reader import read_all

    flags = [0, 1, 1, 0, 0, 0, 1]
    write_episode_bag(tmp_path / "bags", with_interventions(make_episode(T=7), flags), start_time_ns=10**18)
    write_episode_bag(tmp_path / "bags", make_episode(T=4, episode_id="plain", seed=1), start_time_ns=2 * 10**18)
    manifest = convert_bags(tmp_path / "bags", tmp_path / "shards", progress=False)
    first, second = read_all(tmp_path / "shards", manifest)
    assert first["interventions"].tolist() == [bool(f) for f in flags] and first["meta"]["operator_steps"] == 3
    assert "interventions" not in second and second["meta"]["operator_steps"] == 0
    export_bags(tmp_path / "bags", tmp_path / "lerobot", progress=False)
    back = {ep.episode_id: ep for _, ep in read_lerobot_episodes(tmp_path / "lerobot")}
    assert back["lerobot_000000"].interventions.tolist() == [bool(f) for f in flags]
    assert not back["lerobot_000001"].interventions.any()


def test_hg_dagger_draws_the_successes_and_only_the_steps_a_person_drove_in_failures(tmp_path):
    from qt_policy.core.config import LossConfig
    from qt_policy.data.convert import convert_bags
    from qt_policy.data.dataset import TransitionSampler
    from qt_policy.data.shard_format import load_manifest
    from qt_policy.training import model_config_for
    from qt_policy.training.fit import _episode_filter

    episodes = [make_episode(T=5, episode_id="won", seed=1),  # every step trains
                with_interventions(make_episode(T=6, success=False, episode_id="saved", seed=2), [0, 0, 1, 1, 0, 0]),
                make_episode(T=7, success=False, episode_id="lost", seed=3)]  # no person: nothing trains
    for i, ep in enumerate(episodes):
        write_episode_bag(tmp_path / "bags", ep, start_time_ns=10**18 + i * 10**10)
    convert_bags(tmp_path / "bags", tmp_path / "shards", progress=False)
    cfg = model_config_for(load_manifest(tmp_path / "shards"), {"num_bins": 16})
    keep = _episode_filter(False, None, "interventions")
    sampler = TransitionSampler(tmp_path / "shards", cfg, LossConfig(), lambda t: np.zeros(384, np.float32), keep,
                                failure_steps="interventions")
    assert sampler.num_episodes == 2 and sampler.num_steps == 5 + 2
    assert sorted(e.meta["id"] for e in sampler.episodes) == ["saved", "won"]  # "lost" has nothing to train
    drawn = {(e.meta["id"], e.draw_step(np.random.default_rng(s))) for e in sampler.episodes for s in range(200)}
    assert drawn == {("won", t) for t in range(5)} | {("saved", 2), ("saved", 3)}
    batch = sampler.sample(400, np.random.default_rng(0), 0.0)
    assert (batch.mc_return > 0).float().mean().item() == pytest.approx(5 / 7, abs=0.07)  # uniform over the 7


def test_hg_dagger_trains_from_the_command_line(tmp_path):
    from qt_policy.core.checkpoint import read_config
    from qt_policy.tools.train import main as train_main

    write_episode_bag(tmp_path / "bags", make_episode(T=5, episode_id="won", seed=1), start_time_ns=10**18)
    write_episode_bag(tmp_path / "bags", with_interventions(make_episode(T=6, success=False, episode_id="saved",
                                                                         seed=2), [0, 1, 1, 0, 0, 0]), start_time_ns=2 * 10**18)
    tiny = ["--conv-channels", "4", "8", "--tokens-per-frame", "2", "--d-model", "16", "--num-layers", "1",
            "--num-heads", "2", "--num-bins", "16", "--batch-size", "8", "--no-progress", "--threads", "1"]
    assert train_main(["--data", str(tmp_path / "bags"), "--out", str(tmp_path / "run"), "--algo", "bc",
                       "--failure-steps", "interventions", "--success-batch-fraction", "0", "--steps", "2", *tiny]) == 0
    cfg = read_config(tmp_path / "run" / "checkpoint")
    assert cfg["train"]["failure_steps"] == "interventions" and cfg["data"]["steps"] == 5 + 2

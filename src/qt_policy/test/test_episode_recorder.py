"""EpisodeRecorder without ROS: episodes from raw CDR bytes, every end rule, disk space, crash safety."""
import collections
import shutil
from pathlib import Path

import numpy as np
import pytest

from qt_policy.data import bag_format as bf
from qt_policy.data.bag_io import (
    IncompleteEpisodeBagError,
    find_partial_bags,
    list_episode_bags,
    read_episode_bag,
)
from qt_policy.data.bag_writer import EpisodeBagWriter
from qt_policy.paths import repo_root
from qt_policy.runtime.episode_recorder import RecordError
from qt_policy.runtime.parameters import from_params_file
from qt_policy.runtime.recorder_config import END_REASONS, RecorderNodeConfig
from qt_test_helpers.recording import NAMES, T0, action, image, make_recorder, state


@pytest.fixture(scope="module")
def ts():
    return bf.get_episode_typestore()












def run_steps(rec, ts, clock, n, first_stamp=None):
    """n control steps: image + state (stamp s), then an action stamped s; clock advances 100 ms each."""
    for t in range(n):
        s = clock.ns
        rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(ts, s, t), s + 1000)
        rec.record(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE, state(ts, s), s + 1000)
        rec.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, action(ts, s, t / 10), s + 2000)
        clock.ns += 100_000_000


def test_start_record_end_success(tmp_path, ts):
    rec, clock, _ = make_recorder(tmp_path)
    # nothing open: dropped
    assert rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(ts, T0), T0) is None
    out = rec.start("open  the drawer", now=0.0)
    assert out.started and out.ended is None and rec.is_recording
    assert out.episode_id.startswith("episode_20231114T221320Z_")
    # a frame before the first action is kept (the first action was decided from it)
    rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(ts, clock.ns - 50_000_000, 200), clock.ns)
    run_steps(rec, ts, clock, 5)
    assert rec.num_steps == 5
    end = rec.end(True, "service", "operator")
    assert not rec.is_recording and rec.end(True, "service") is None
    assert (end.success, end.reward, end.num_steps, end.end_reason, end.instruction) == (
        True, 1.0, 5, "service", "open the drawer")
    assert end.bag_path.endswith(out.episode_id)
    assert list_episode_bags(tmp_path / "bags") == [tmp_path / "bags" / out.episode_id]
    ep = read_episode_bag(end.bag_path)
    assert ep.success and len(ep) == 5 and ep.instruction == "open the drawer" and ep.end_reason == "service"
    assert ep.episode_id == out.episode_id and ep.action_names == NAMES
    assert [int(img[0, 0, 0]) for img in ep.images] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(ep.actions[:, 0], np.arange(5) / 10, rtol=1e-6)
    assert ep.states.shape == (5, 4)
    with pytest.raises(ValueError):
        rec.end(True, "because")


def test_preempt_timeout_terminate_and_shutdown(tmp_path, ts):
    rec, clock, _ = make_recorder(tmp_path, episode_timeout_s=3.0)
    first = rec.start("open the drawer", now=0.0)
    run_steps(rec, ts, clock, 3)
    second = rec.start("close the drawer", now=1.0)  # preempts the first
    assert second.started and second.ended is not None
    assert (second.ended.success, second.ended.end_reason, second.ended.num_steps) == (False, "preempted", 3)
    assert second.ended.episode_id == first.episode_id and second.episode_id != first.episode_id
    run_steps(rec, ts, clock, 2)
    assert rec.check(now=3.9) is None  # 2.9 s into the second episode
    end = rec.check(now=4.0)
    assert (end.success, end.end_reason, end.num_steps, end.instruction) == (False, "timeout", 2, "close the drawer")

    third = rec.start("press the button", now=5.0)
    run_steps(rec, ts, clock, 2)
    s = clock.ns
    end = rec.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, action(ts, s, terminate=True), s)
    assert (end.success, end.end_reason, end.num_steps) == (False, "terminate", 3)
    assert not rec.is_recording

    fourth = rec.start("open the window", now=6.0)
    run_steps(rec, ts, clock, 1)
    assert rec.start("", now=6.5).ended.end_reason == "preempted"  # empty instruction: stop, start nothing
    assert not rec.is_recording
    fifth = rec.start("open the window", now=7.0)
    run_steps(rec, ts, clock, 4)
    end = rec.shutdown()  # data recorded so far becomes a complete, labelled bag
    assert (end.success, end.end_reason, end.num_steps) == (False, "shutdown", 4)
    assert rec.shutdown() is None

    bags = list_episode_bags(tmp_path / "bags")
    ids = [o.episode_id for o in (first, second, third, fourth, fifth)]
    assert [b.name for b in bags] == sorted(ids)  # the UTC + counter names sort in start order
    reasons = collections.Counter(read_episode_bag(b).end_reason for b in bags)
    assert reasons == {"preempted": 2, "timeout": 1, "terminate": 1, "shutdown": 1}
    assert set(reasons) <= set(END_REASONS)
    assert find_partial_bags(tmp_path / "bags") == []


def test_success_topic_ends_only_after_the_first_action(tmp_path, ts):
    rec, clock, _ = make_recorder(tmp_path)
    assert rec.success_signal(True) is None  # idle
    rec.start("open the drawer", now=0.0)
    s = clock.ns
    rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(ts, s), s)
    assert rec.success_signal(False) is None and rec.is_recording  # late message about the previous episode
    run_steps(rec, ts, clock, 2)
    end = rec.success_signal(True)
    assert (end.success, end.end_reason, end.num_steps) == (True, "success_topic", 2)
    assert read_episode_bag(end.bag_path).success


def test_actions_from_frames_before_the_start_are_not_recorded(tmp_path, ts):
    rec, clock, _ = make_recorder(tmp_path)
    rec.start("open the drawer", now=0.0)
    old = clock.ns - 30_000_000  # decided from a frame of the previous scene
    rec.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, action(ts, old), clock.ns)
    assert rec.num_steps == 0
    run_steps(rec, ts, clock, 2)
    end = rec.end(False, "service")
    assert end.num_steps == 2 and "1 action(s)" in end.detail
    rec2, clock2, _ = make_recorder(tmp_path / "keep", drop_actions_before_start=False)
    rec2.start("open the drawer", now=0.0)
    rec2.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, action(ts, clock2.ns - 30_000_000), clock2.ns)
    assert rec2.num_steps == 1


def test_disk_space_refusal_and_low_disk_end(tmp_path, ts, monkeypatch):
    rec, clock, logs = make_recorder(tmp_path, min_free_disk_mb=100, disk_check_period_s=1.0)
    free = {"mb": 150.0}
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, int(free["mb"] * 1024 * 1024)))

    out = rec.start("open the drawer", now=0.0)  # 150 MB < 2 x 100: warn, still record
    assert out.started
    assert [lvl for lvl, _ in logs] == ["warn"] and "low disk" in logs[0][1]
    run_steps(rec, ts, clock, 2)
    free["mb"] = 50.0
    assert rec.check(now=0.5) is None  # next disk check only after disk_check_period_s
    end = rec.check(now=1.0)
    assert (end.success, end.end_reason, end.num_steps) == (False, "disk_full", 2) and "low disk" in end.detail
    assert read_episode_bag(end.bag_path).end_reason == "disk_full"  # finalized cleanly

    refused = rec.start("close the drawer", now=2.0)
    assert not refused.started and "min_free_disk_mb" in refused.message and not rec.is_recording
    r = refused.refused  # an instruction that is not recorded still gets its result
    assert (r.end_reason, r.success, r.num_steps, r.bag_path, r.instruction) == ("refused", False, 0, "",
                                                                                "close the drawer")
    assert "min_free_disk_mb" in r.detail and rec.refused == 1
    assert rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, image(ts, clock.ns), clock.ns) is None
    free["mb"] = 5000.0
    assert rec.start("close the drawer", now=3.0).started
    rec.shutdown()
    assert len(list_episode_bags(tmp_path / "bags")) == 2


def test_malformed_input_is_an_error_not_a_crash(tmp_path, ts):
    rec, clock, _ = make_recorder(tmp_path)
    with pytest.raises(RecordError, match="malformed frame"):  # between episodes too (the pre-roll reads stamps)
        rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, b"\x00\x01", clock.ns)
    rec.start("open the drawer", now=0.0)
    with pytest.raises(RecordError, match="malformed"):
        rec.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, b"\x00\x01\x00\x00garbage", clock.ns)
    run_steps(rec, ts, clock, 1)  # the episode is still open and usable
    assert rec.end(True, "success_topic").num_steps == 1


def test_crash_leaves_only_a_partial_that_listing_ignores(tmp_path, ts):
    rec, clock, _ = make_recorder(tmp_path)
    out = rec.start("open the drawer", now=0.0)
    run_steps(rec, ts, clock, 3)
    # a crash: the process dies without finalize (simulated by aborting the underlying writer)
    rec._writer.abort()
    bags = tmp_path / "bags"
    assert list_episode_bags(bags) == []
    assert [p.name for p in find_partial_bags(bags)] == [out.episode_id + bf.PARTIAL_SUFFIX]
    with pytest.raises(IncompleteEpisodeBagError):
        read_episode_bag(find_partial_bags(bags)[0])
    # a new recorder in the same folder never reuses the name of the crashed episode
    rec2, _, _ = make_recorder(tmp_path)
    assert rec2.start("open the drawer", now=0.0).episode_id != out.episode_id


def test_finalize_failure_keeps_partial(tmp_path, ts, monkeypatch):
    rec, clock, _ = make_recorder(tmp_path)
    out = rec.start("open the drawer", now=0.0)
    run_steps(rec, ts, clock, 2)

    def broken(self, *a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EpisodeBagWriter, "finalize", broken)
    end = rec.end(True, "service")
    assert end.bag_path == "" and "No space left" in end.detail and not rec.is_recording
    assert (end.end_reason, end.success, end.num_steps) == ("disk_full", True, 2)
    assert "2 of 2 steps are readable" in end.detail
    assert [p.name for p in find_partial_bags(tmp_path / "bags")] == [out.episode_id + bf.PARTIAL_SUFFIX]
    assert rec.unfinished == [out.episode_id]
    monkeypatch.undo()  # space comes back: the unfinished bag becomes a bag, label kept (nothing was lost)
    (got,) = rec.salvage_pending(now=100.0)
    assert (got.episode_id, got.end_reason, got.success, got.num_steps) == (out.episode_id, "disk_full", True, 2)
    ep = read_episode_bag(got.bag_path)
    assert (ep.success, ep.end_reason, len(ep)) == (True, "disk_full", 2)
    assert find_partial_bags(tmp_path / "bags") == [] and rec.unfinished == []


def test_recorder_yaml_names_exactly_the_config_fields():
    root = repo_root()
    assert root is not None
    cfg = from_params_file(root / "config" / "recorder.yaml", "qt_recorder", RecorderNodeConfig)
    assert cfg.validate() == cfg


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_raw_frames_stored_compressed_train_the_same(tmp_path, ts, fmt):
    """image_format jpeg/png: the bag holds CompressedImage (smaller), and reading it gives the frames back
    (png exactly, jpeg within its error); the steps and labels are untouched."""
    rng = np.random.default_rng(0)
    smooth = np.clip(np.linspace(0, 255, 64)[None, :, None] + rng.normal(0, 2, (48, 64, 3)), 0, 255).astype(np.uint8)
    raw = ts.serialize_cdr(bf.make_image_msg(smooth, T0 + 1, typestore=ts), bf.IMAGE_TYPE)
    sizes = {}
    for name in ("as_received", fmt):
        rec, clock, _ = make_recorder(tmp_path / name, image_format=name)
        rec.start("open the drawer", 0.0, T0)
        for k in range(3):
            rec.record(bf.IMAGE_TOPIC, bf.IMAGE_TYPE, raw, T0 + 10 + k)
            rec.record(bf.ACTION_TOPIC, bf.QACTION_TYPE, action(ts, T0 + 1 + k), T0 + 20 + k)
        end = rec.end(True, "service")
        ep = read_episode_bag(end.bag_path)
        assert (len(ep), ep.success) == (3, True)
        if name == "as_received":
            np.testing.assert_array_equal(ep.images[0], smooth)
        else:
            err = np.abs(ep.images[0].astype(int) - smooth.astype(int))
            assert err.max() == 0 if fmt == "png" else (err.mean() < 3 and err.max() <= 40), (err.mean(), err.max())
        sizes[name] = sum(f.stat().st_size for f in Path(end.bag_path).glob("*.mcap"))
    assert sizes[fmt] < sizes["as_received"]

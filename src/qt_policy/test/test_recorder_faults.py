"""Faults the recorder must live through, without ROS: ENOSPC at any write, a real full file system,
a writer killed mid-episode, a salvage cut short, a disk that stalls. Each is checked by reading the
bags back with two readers (rosbags via read_episode_bag, and the mcap library) and comparing the
message counts with what was sent. The node-level twins (separate processes, SIGKILL) are in
test_recorder_node_faults.py.
"""
import errno
import subprocess
import threading
import uuid

import numpy as np
import pytest

from qt_policy.data import bag_format as bf
from qt_policy.data import bag_writer
from qt_policy.data.background_file import BackgroundFile
from qt_policy.data.bag_io import find_partial_bags, list_episode_bags, read_episode_bag
from qt_policy.data.bag_salvage import SALVAGING_SUFFIX, PartialBagScan, find_unfinished
from qt_test_helpers.recording import action, image, make_recorder, mcap_counts, mount_tmpfs, state

STEP_S = 0.1  # 10 Hz control
FLUSH_S = 1.0
STEPS_PER_FLUSH = int(round(FLUSH_S / STEP_S))
# the most a fault may cost: one flush period, plus the control step during which the fault surfaced
MAX_LOST_STEPS = STEPS_PER_FLUSH + 1


@pytest.fixture(scope="module")
def ts():
    return bf.get_episode_typestore()


@pytest.fixture
def flush_clock(monkeypatch):
    """The writer's flush clock, driven by the test (seconds)."""
    now = {"t": 0.0}
    monkeypatch.setattr(bag_writer, "_monotonic", lambda: now["t"])
    return now




def big_image(ts, stamp, t):
    return ts.serialize_cdr(bf.make_image_msg(np.full((64, 64, 3), t % 256, np.uint8), stamp, typestore=ts),
                            bf.IMAGE_TYPE)


def drive(rec, ts, clock, flush_clock, steps, make_image=big_image, wait_writer=True):
    """Steps at 10 Hz (image, state, action stamped alike); returns (actions handed over, the end if a
    write ended the episode). `wait_writer`: let the worker write what it was handed, as the 100 ms of
    a real control step would."""
    for t in range(steps):
        s = clock.ns
        for topic, msgtype, raw in ((bf.IMAGE_TOPIC, bf.IMAGE_TYPE, make_image(ts, s, t)),
                                    (bf.STATE_TOPIC, bf.JOINT_STATE_TYPE, state(ts, s)),
                                    (bf.ACTION_TOPIC, bf.QACTION_TYPE, action(ts, s, t / 100))):
            end = rec.record(topic, msgtype, raw, s + 1000)
            if end is not None:
                return t, end
        clock.ns += int(STEP_S * 1e9)
        flush_clock["steps"] = flush_clock.get("steps", 0) + 1
        flush_clock["t"] = flush_clock["steps"] * STEP_S  # no drift from adding 0.1 again and again
        if wait_writer and rec.is_recording:
            rec._writer._writer.storage.bio.drain(5.0)
    return steps, None


class FailingFile:
    """A file that takes `budget` bytes, then fails as a full disk does (a partial write, then ENOSPC)."""

    def __init__(self, raw, budget):
        self.raw, self.budget = raw, budget

    def write(self, data):
        room = self.budget - self.raw.tell()
        if room < len(data):
            self.raw.write(bytes(data[:max(room, 0)]))
            self.raw.flush()
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return self.raw.write(data)

    def __getattr__(self, name):
        return getattr(self.raw, name)


@pytest.mark.parametrize("budget_kb", [3, 40, 150, 333, 610, 1250])
def test_enospc_at_any_write_loses_at_most_the_flush_window(tmp_path, ts, monkeypatch, flush_clock, budget_kb):
    rec, clock, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S, min_free_disk_mb=0)
    real_init = BackgroundFile.__init__
    monkeypatch.setattr(BackgroundFile, "__init__",
                        lambda self, raw, **kw: real_init(self, FailingFile(raw, budget_kb * 1024), **kw))
    out = rec.start("open the drawer", now=0.0)
    handed, end = drive(rec, ts, clock, flush_clock, 200)
    assert end is not None, "the injected full disk was never hit"
    assert (end.end_reason, end.bag_path, end.success) == ("disk_full", "", False)
    assert not rec.is_recording and rec.unfinished == [out.episode_id]
    # what the result claims is what a reader gets out of the unfinished bag
    partial = tmp_path / "bags" / (out.episode_id + bf.PARTIAL_SUFFIX)
    readable = PartialBagScan(partial).count().get(bf.ACTION_TOPIC, 0)
    assert end.num_steps == readable and f"{readable} of {handed} steps are readable" in end.detail
    assert handed - readable <= MAX_LOST_STEPS, (handed, readable)

    monkeypatch.setattr(BackgroundFile, "__init__", real_init)  # space is back
    got = rec.salvage_pending(now=100.0)
    if readable == 0:  # the disk filled before the first complete chunk: nothing to train on, removed
        assert got[0].bag_path == "" and find_unfinished(tmp_path / "bags") == []
    else:
        (g,) = got
        assert (g.end_reason, g.success, g.num_steps) == ("disk_full", False, readable)
        ep = read_episode_bag(g.bag_path)
        assert len(ep) == readable and ep.end_reason == "disk_full"
        np.testing.assert_allclose(ep.actions[:, 0], np.arange(readable) / 100, atol=1e-6)  # a prefix, in order
        counts = mcap_counts(g.bag_path)
        assert counts[bf.ACTION_TOPIC] == readable and counts[bf.RESULT_TOPIC] == 1
        assert counts[bf.IMAGE_TOPIC] >= readable
    assert find_unfinished(tmp_path / "bags") == []
    # the next episode records as if nothing had happened
    assert rec.start("close the drawer", now=300.0).started
    drive(rec, ts, clock, flush_clock, 5)
    final = rec.end(True, "service")
    assert final.bag_path and read_episode_bag(final.bag_path).success and final.num_steps == 5


def test_writer_killed_mid_episode_is_salvaged_on_start(tmp_path, ts, flush_clock):
    """A kill: the process is gone, nothing is closed. The next recorder makes a bag of what is on disk."""
    rec, clock, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S)
    out = rec.start("open the drawer", now=0.0)
    drive(rec, ts, clock, flush_clock, 25)
    bio = rec._writer._writer.storage.bio
    bio.drain(5.0)
    bio._stop(5.0)  # the worker ends; what it wrote is all the disk has (SIGKILL: memory is gone)
    bags = tmp_path / "bags"
    assert [p.name for p in find_partial_bags(bags)] == [out.episode_id + bf.PARTIAL_SUFFIX]

    rec2, _, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S)
    (got,) = rec2.salvage_pending(now=0.0, scan=True)
    assert (got.episode_id, got.end_reason, got.success) == (out.episode_id, "interrupted", False)
    assert 25 - MAX_LOST_STEPS <= got.num_steps <= 25
    ep = read_episode_bag(got.bag_path)
    assert len(ep) == got.num_steps and ep.instruction == "open the drawer"
    assert mcap_counts(got.bag_path)[bf.ACTION_TOPIC] == got.num_steps
    assert find_unfinished(bags) == [] and [p.name for p in list_episode_bags(bags)] == [out.episode_id]


def test_salvage_cut_short_is_redone_and_empty_folders_are_removed(tmp_path, ts, flush_clock):
    rec, clock, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S)
    bags = tmp_path / "bags"
    out = rec.start("open the drawer", now=0.0)
    drive(rec, ts, clock, flush_clock, 12)
    rec._writer._writer.storage.bio.drain(5.0)
    rec._writer.abort()
    rec._writer = None
    # a salvage that died after the rename, half way through writing the new bag
    (bags / (out.episode_id + bf.PARTIAL_SUFFIX)).rename(bags / (out.episode_id + SALVAGING_SUFFIX))
    (bags / (out.episode_id + bf.PARTIAL_SUFFIX)).mkdir()
    (bags / (out.episode_id + bf.PARTIAL_SUFFIX) / "junk_0.mcap").write_bytes(b"\x89MCAP0\r\n\x01")
    # and a recorder killed right after the instruction: nothing to train on
    empty = rec.start("close the drawer", now=1.0)
    rec._writer.abort()
    rec._writer = None

    rec2, _, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S)
    got = {g.episode_id: g for g in rec2.salvage_pending(now=0.0, scan=True)}
    assert got[out.episode_id].num_steps == 12 and read_episode_bag(got[out.episode_id].bag_path).success is False
    assert got[empty.episode_id].bag_path == "" and "no action" in got[empty.episode_id].detail
    assert find_unfinished(bags) == [] and [p.name for p in list_episode_bags(bags)] == [out.episode_id]


def test_a_stalled_disk_does_not_block_recording(tmp_path, ts, monkeypatch, flush_clock):
    """The worker is stuck in write(); the caller records on (memory is bounded by the queue)."""
    release = threading.Event()

    class StuckFile:
        def __init__(self, raw):
            self.raw = raw

        def write(self, data):
            release.wait()
            return self.raw.write(data)

        def __getattr__(self, name):
            return getattr(self.raw, name)

    real_init = BackgroundFile.__init__
    monkeypatch.setattr(BackgroundFile, "__init__", lambda self, raw, **kw: real_init(self, StuckFile(raw), **kw))
    rec, clock, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S)
    rec.start("open the drawer", now=0.0)
    handed, end = drive(rec, ts, clock, flush_clock, 40, wait_writer=False)  # four chunks handed to a stuck disk
    assert (handed, end) == (40, None) and rec.is_recording
    release.set()
    final = rec.end(True, "service")
    assert final.num_steps == 40 and len(read_episode_bag(final.bag_path)) == 40


def test_background_file_bounds_its_queue_and_reports_the_workers_error(tmp_path):
    release = threading.Event()

    class Slow:
        def __init__(self):
            self.data = bytearray()

        def tell(self):
            return 0

        def write(self, b):
            release.wait()
            self.data += b

        def flush(self):
            pass

        def close(self):
            pass

    raw = Slow()
    f = BackgroundFile(raw, max_pending_bytes=10, write_timeout_s=0.2)
    f.write(b"0123456789ab")
    assert f.tell() == 12
    f.flush()  # 12 bytes queued (over the bound of 10: the next flush must wait)
    f.write(b"x")
    with pytest.raises(TimeoutError, match="disk too slow"):
        f.flush()
    with pytest.raises(TimeoutError):
        f.write(b"y")  # the file accepts nothing after an error
    release.set()
    f.abort()
    assert bytes(raw.data) == b"0123456789ab"

    class Full:
        def tell(self):
            return 0

        def write(self, b):
            raise OSError(errno.ENOSPC, "full")

        def flush(self):
            pass

        def close(self):
            pass

    g = BackgroundFile(Full())
    g.write(b"abc")
    g.flush()
    g.drain(5.0)
    assert isinstance(g.error, OSError) and g.error.errno == errno.ENOSPC
    with pytest.raises(OSError, match="full"):
        g.write(b"d")
    with pytest.raises(OSError):
        g.close()




def test_real_small_file_system_fills_and_empties(tmp_path, ts, flush_clock):
    """A real 1 MiB tmpfs: the kernel's ENOSPC, then space comes back, without a new recorder."""
    mnt = tmp_path / "small"
    mount_tmpfs(mnt, 1024)
    try:
        rec, clock, _ = make_recorder(mnt, flush_period_s=FLUSH_S, min_free_disk_mb=0)
        filler = mnt / f"filler_{uuid.uuid4().hex}"
        filler.write_bytes(b"\0" * (600 * 1024))
        out = rec.start("open the drawer", now=0.0)
        handed, end = drive(rec, ts, clock, flush_clock, 200)
        assert end is not None and end.end_reason == "disk_full" and end.bag_path == ""
        assert handed - end.num_steps <= MAX_LOST_STEPS
        assert rec.salvage_pending(now=10.0) == []  # still full: the folder waits
        assert rec.unfinished == [out.episode_id]
        filler.unlink()
        (got,) = rec.salvage_pending(now=20.0)
        assert got.num_steps == end.num_steps and len(read_episode_bag(got.bag_path)) == end.num_steps
        assert mcap_counts(got.bag_path)[bf.ACTION_TOPIC] == end.num_steps
        assert rec.start("close the drawer", now=30.0).started
        drive(rec, ts, clock, flush_clock, 5)
        assert rec.end(True, "service").num_steps == 5
        assert find_unfinished(rec.output_dir) == [] and len(list_episode_bags(rec.output_dir)) == 2
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_steps_logged_before_the_window_all_survive(tmp_path, ts, flush_clock):
    """The window is time, not luck: after a kill, every step older than flush_period_s is on disk."""
    rec, clock, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S)
    out = rec.start("open the drawer", now=0.0)
    drive(rec, ts, clock, flush_clock, 37, make_image=image)
    partial = tmp_path / "bags" / (out.episode_id + bf.PARTIAL_SUFFIX)
    on_disk = PartialBagScan(partial).count()[bf.ACTION_TOPIC]
    assert 37 - STEPS_PER_FLUSH <= on_disk < 37  # the open chunk is still in memory
    flush_clock["t"] += FLUSH_S + STEP_S  # no message for a period: the node's timer sends the open chunk out
    rec.check(now=0.0)
    rec._writer._writer.storage.bio.drain(5.0)
    assert PartialBagScan(partial).count()[bf.ACTION_TOPIC] == 37


def test_salvage_cli_on_a_copied_folder(tmp_path, ts, flush_clock, capsys):
    from qt_policy.tools import salvage

    rec, clock, _ = make_recorder(tmp_path, flush_period_s=FLUSH_S)
    out = rec.start("open the drawer", now=0.0)
    drive(rec, ts, clock, flush_clock, 15, make_image=image)
    rec._writer._writer.storage.bio.drain(5.0)
    rec._writer._writer.storage.bio._stop(5.0)  # killed
    bags = tmp_path / "bags"
    assert salvage.main([str(bags), "--dry-run"]) == 0
    assert find_unfinished(bags) == [out.episode_id] and "steps readable" in capsys.readouterr().out
    assert salvage.main([str(bags)]) == 0
    assert "end_reason=interrupted" in capsys.readouterr().out
    (bag,) = list_episode_bags(bags)
    assert 15 - MAX_LOST_STEPS <= len(read_episode_bag(bag)) <= 15 and find_unfinished(bags) == []

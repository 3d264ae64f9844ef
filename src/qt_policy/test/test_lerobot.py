"""LeRobotDataset v3.0: export of episode bags, checked by readers that are not ours (lerobot-doctor,
and pyarrow + PyAV against the documented layout); import of a dataset LeRobot's own writer made;
the round trip bag -> LeRobot -> training shards."""
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from qt_policy.data.bag_io import read_episode_bag
from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.data.convert import convert_bags
from qt_policy.data.shard_format import load_manifest
from qt_policy.data.shard_reader import read_all
from qt_policy.data.lerobot import (
    LeRobotFormatError,
    export_bags,
    read_lerobot_episodes,
    return_to_go,
)
from qt_test_helpers.recording import doctor, smooth_episode

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lerobot_v3_reference"
GAMMA = 0.98
# AV1 at crf 30 (LeRobot's default), yuv420p, on these smooth frames: per pixel (0-255) at most 8 and
# 1.1 on average were seen; the bounds leave a little room for another SVT-AV1 build
CODEC_MAX_ERROR, CODEC_MEAN_ERROR = 12, 2.0




@pytest.fixture
def bags(tmp_path):
    out = tmp_path / "bags"
    for e, (T, ok) in enumerate([(12, True), (15, False), (9, True)]):
        write_episode_bag(out, smooth_episode(e, T, ok), start_time_ns=10**18 + e * 10**10)
    return out




def test_export_passes_the_independent_checker_and_reads_back_without_us(tmp_path, bags):
    out = tmp_path / "lerobot"
    summary = export_bags(bags, out, fps=10, gamma=GAMMA, progress=False)
    assert (summary["exported"], summary["total_episodes"], summary["total_frames"]) == (3, 3, 36)
    r = doctor(out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]

    # pyarrow + PyAV against the layout, none of our code
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["total_episodes"] == 3
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    episodes = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    tasks = pq.read_table(out / "meta" / "tasks.parquet").to_pydict()
    assert sorted(tasks["__index_level_0__"]) == ["close the window", "open the drawer"]
    for row, bag in zip(episodes, sorted(bags.iterdir())):
        src = read_episode_bag(bag)
        lo, hi = row["dataset_from_index"], row["dataset_to_index"]
        assert hi - lo == len(src) == row["length"] and row["tasks"] == [src.instruction]
        assert data["episode_index"][lo:hi] == [row["episode_index"]] * len(src)
        assert data["frame_index"][lo:hi] == list(range(len(src))) and data["index"][lo:hi] == list(range(lo, hi))
        np.testing.assert_array_equal(np.array(data["action"][lo:hi], np.float32), src.actions)
        np.testing.assert_array_equal(np.array(data["observation.state"][lo:hi], np.float32), src.states)
        done, succ = data["next.done"][lo:hi], data["next.success"][lo:hi]
        assert done == [False] * (len(src) - 1) + [True] and succ == [False] * (len(src) - 1) + [src.success]
        expected_g = [GAMMA ** (len(src) - 1 - t) if src.success else 0.0 for t in range(len(src))]
        np.testing.assert_allclose(data["return_to_go"][lo:hi], expected_g, rtol=1e-6)
        assert tasks["__index_level_0__"][data["task_index"][lo]] == src.instruction
        video = out / "videos" / "observation.images.camera" / "chunk-000" / (
            f"file-{row['videos/observation.images.camera/file_index']:03d}.mp4")
        with av.open(str(video)) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
            assert c.streams.video[0].codec_context.name in ("libdav1d", "av1")
        assert frames.shape == src.images.shape
        err = np.abs(frames.astype(int) - src.images)
        assert err.max() <= CODEC_MAX_ERROR and err.mean() <= CODEC_MEAN_ERROR, (err.max(), err.mean())
    stats = json.loads((out / "meta" / "stats.json").read_text())
    all_actions = np.array(data["action"])
    np.testing.assert_allclose(stats["action"]["mean"], all_actions.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], all_actions.std(0), atol=1e-6)
    assert stats["action"]["count"] == [36]


def test_export_is_incremental(tmp_path, bags, capsys):
    from qt_policy.tools import lerobot_export

    out = tmp_path / "lerobot"
    assert lerobot_export.main([str(bags), str(out), "--no-progress"]) == 0
    assert "exported 3 new episode(s); 3 episodes, 36 frames" in capsys.readouterr().out
    first = {p: p.read_bytes() for p in out.rglob("*.mp4")}
    assert export_bags(bags, out, progress=False)["exported"] == 0  # nothing new
    write_episode_bag(bags, smooth_episode(3, 7, True), start_time_ns=10**18 + 9 * 10**10)
    summary = export_bags(bags, out, progress=False)
    assert (summary["exported"], summary["total_episodes"], summary["total_frames"]) == (1, 4, 43)
    assert all(p.read_bytes() == b for p, b in first.items())  # earlier files untouched
    assert len(list((out / "data").rglob("*.parquet"))) == 2
    r = doctor(out)
    assert r.returncode == 0, r.stdout[-3000:]


def test_round_trip_bag_lerobot_training_shards(tmp_path, bags):
    out = tmp_path / "lerobot"
    export_bags(bags, out, progress=False)
    size = 32  # the bags' frames are 64 x 48: training data is square, cropped and resized as the node does
    direct = convert_bags(bags, tmp_path / "shards_bags", image_size=size, progress=False)
    via = convert_bags(out, tmp_path / "shards_lerobot", image_size=size, progress=False)
    assert via["converted"] == 3
    assert convert_bags(out, tmp_path / "shards_lerobot", image_size=size, progress=False)["converted"] == 0
    episodes_a, episodes_b = (read_all(tmp_path / name, load_manifest(tmp_path / name))
                              for name in ("shards_bags", "shards_lerobot"))
    assert len(episodes_a) == len(episodes_b) == direct["next_seq"] == 3
    for a, b in zip(episodes_a, episodes_b):
        for name in ("actions", "rewards", "states"):
            np.testing.assert_array_equal(a[name], b[name])
        diff = np.abs(a["images"].astype(int) - b["images"])
        assert diff.max() <= CODEC_MAX_ERROR and diff.mean() <= CODEC_MEAN_ERROR
        assert [a["meta"][k] for k in ("instruction", "success", "length")] == \
            [b["meta"][k] for k in ("instruction", "success", "length")]


def test_import_the_dataset_lerobots_own_writer_made(tmp_path):
    if not REFERENCE.is_dir():
        pytest.skip(f"no reference dataset at {REFERENCE}")
    got = list(read_lerobot_episodes(REFERENCE, camera="wrist"))
    assert [len(ep) for _, ep in got] == [12, 15, 9] and [ep.success for _, ep in got] == [True, False, True]
    assert [ep.instruction for _, ep in got] == ["open the drawer", "close the window", "open the drawer"]
    for e, (_, ep) in enumerate(got):
        t = np.arange(len(ep))
        expected = np.stack([np.sin(0.3 * t + e), np.sin(0.3 * t + e + 1), np.sin(0.3 * t + e + 2),
                             np.where(t % 2, 1.0, -1.0)], 1)
        np.testing.assert_allclose(ep.actions, expected, atol=1e-6)
        np.testing.assert_allclose(ep.states, 0.1 * e + 0.01 * t[:, None] + 0.001 * np.arange(4), atol=1e-6)
        assert ep.images.shape == (len(ep), 48, 64, 3) and ep.action_names == ["dx", "dy", "dz", "gripper"]
        assert np.abs(ep.images[..., 0].astype(int) - (40 * e + 20)).max() <= 3
        assert np.abs(ep.images[..., 1].astype(int) - (10 * t[:, None, None]) % 250).max() <= 3
        assert np.abs(ep.images[..., 2].astype(int) - 200).max() <= 3
    # and as training data, through the shards (a copy: the shared folder is read-only)
    data = tmp_path / "reference"
    shutil.copytree(REFERENCE, data)
    manifest = convert_bags(data, tmp_path / "shards", image_size=32, progress=False)  # two cameras of two sizes
    assert manifest["converted"] == 3
    assert [e["meta"]["length"] for e in read_all(tmp_path / "shards", load_manifest(tmp_path / "shards"))] == [12, 15, 9]
    from qt_policy.core.checkpoint import read_config
    from qt_policy.tools.train import main as train_main

    tiny = ["--steps", "2", "--batch-size", "4", "--frames", "2", "--conv-channels", "8", "16", "--tokens-per-frame",
            "4", "--d-model", "32", "--num-layers", "1", "--num-heads", "2", "--num-bins", "16", "--no-progress",
            "--threads", "1", "--checkpoint-every", "100"]
    assert train_main(["--data", str(data), "--out", str(tmp_path / "run"), "--image-size", "32", *tiny]) == 0
    cfg = read_config(tmp_path / "run" / "checkpoint")  # tools.train --data <lerobot>
    assert cfg["data"]["episodes"] == 3 and cfg["data"]["successes"] == 2 and cfg["model"]["state_dim"] == 4
    assert cfg["model"]["cameras"] == 2 and cfg["model"]["image_size"] == 32


def test_other_versions_are_a_clear_error(tmp_path):
    (tmp_path / "old" / "meta").mkdir(parents=True)
    (tmp_path / "old" / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 10}))
    with pytest.raises(LeRobotFormatError, match="v2.1.*only v3.0.*convert_dataset_v21_to_v30"):
        list(read_lerobot_episodes(tmp_path / "old"))


def test_return_to_go():
    np.testing.assert_allclose(return_to_go(np.array([0, 0, 1.0]), 0.5), [0.25, 0.5, 1.0])
    np.testing.assert_array_equal(return_to_go(np.zeros(4), 0.9), np.zeros(4))

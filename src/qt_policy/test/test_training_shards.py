"""The training shards: conversion by content (a moved folder is not converted twice), in parallel, checked
before writing, safe against kills and concurrent runs; an earlier cache converts; the qt-convert command line."""
import fcntl
import json
import shutil
import threading

import numpy as np
import pytest

from qt_policy.data import convert as convert_mod
from qt_policy.data import shard_jobs
from qt_policy.data.bag_writer import EpisodeBagWriter, write_episode_bag
from qt_policy.data.convert import convert_bags
from qt_policy.data.episode import EpisodeData
from qt_policy.data.shard_format import LOCK_FILE, MANIFEST, load_manifest, summarize_manifest
from qt_policy.data.shard_reader import read_all
from qt_test_helpers.episodes import ACTION_NAMES, make_episode


def write_bags(folder, n, first=0):
    eps = [make_episode(T=3 + i % 4, success=i % 3 == 0, episode_id=f"ep{i:03d}", seed=i) for i in range(first, first + n)]
    for i, ep in enumerate(eps):
        write_episode_bag(folder, ep, start_time_ns=(first + i) * 10**9)
    return eps


def assert_same_episode(got, ep):
    meta = got["meta"]
    assert (meta["id"], meta["length"], meta["instruction"], meta["success"], meta["task"]) == \
        (ep.episode_id, len(ep), ep.instruction, ep.success, ep.task)
    np.testing.assert_array_equal(got["images"], ep.images)
    np.testing.assert_array_equal(got["actions"], ep.actions)
    np.testing.assert_array_equal(got["rewards"], ep.rewards)
    assert got["actions"].dtype == np.float32 and got["rewards"].dtype == np.float32
    if ep.states is None:
        assert "states" not in got
    else:
        np.testing.assert_array_equal(got["states"], ep.states)


def test_convert_incrementally_by_content(tmp_path):
    bags, shards = tmp_path / "bags", tmp_path / "shards"
    eps = [make_episode(T=7, episode_id="ep_a"), make_episode(T=4, success=False, states=False, episode_id="ep_b", seed=1)]
    for i, ep in enumerate(eps):
        write_episode_bag(bags, ep, start_time_ns=i * 10**9)
    w = EpisodeBagWriter()
    w.open(bags, "ep_partial")
    w.abort()

    manifest = convert_bags(bags, shards, progress=False)
    assert manifest["converted"] == 2 and {s["file"].split("/")[0] for s in manifest["shards"]} == {"successes", "failures"}
    got = read_all(shards, load_manifest(shards))
    assert [g["meta"]["seq"] for g in got] == [0, 1]  # conversion order = the bags' order
    for g, ep in zip(got, eps):
        assert_same_episode(g, ep)
    assert {tuple(lay["action_names"]) for lay in manifest["layouts"].values()} == {tuple(ACTION_NAMES)}
    assert manifest["instructions"] == ["pick up the red block"]  # stored once

    stamp = (shards / MANIFEST).stat().st_mtime_ns
    assert convert_bags(bags, shards, progress=False)["converted"] == 0
    assert (shards / MANIFEST).stat().st_mtime_ns == stamp  # nothing new: the manifest is not rewritten
    write_episode_bag(bags, make_episode(T=2, episode_id="ep_c", seed=2), start_time_ns=0)
    again = convert_bags(bags, shards, progress=False)
    assert again["converted"] == 1 and summarize_manifest(again)["episodes"] == 3 and again["next_seq"] == 3

    moved = tmp_path / "moved"  # the data folder copied elsewhere with its shards: nothing is new
    shutil.copytree(bags, moved)
    shutil.copytree(shards, moved / "_shards")
    assert convert_bags(moved, moved / "_shards", progress=False)["converted"] == 0
    write_episode_bag(moved, make_episode(T=3, episode_id="ep_d", seed=3), start_time_ns=5 * 10**9)
    assert convert_bags(moved, moved / "_shards", progress=False)["converted"] == 1

    small = convert_bags(bags, tmp_path / "shards8", image_size=8, progress=False)
    assert small["image_size"] == 8
    assert read_all(tmp_path / "shards8", small)[0]["images"].shape == (7, 8, 8, 3)
    with pytest.raises(ValueError, match="image_size"):
        convert_bags(bags, tmp_path / "shards8", image_size=12, progress=False)


def test_frames_that_are_not_square_are_refused_before_anything_is_written(tmp_path):
    rng = np.random.default_rng(0)
    ep = EpisodeData(instruction="wide", images=rng.integers(0, 255, (3, 12, 20, 3), dtype=np.uint8),
                     actions=np.zeros((3, 4), np.float32), success=True, action_names=list(ACTION_NAMES), episode_id="w")
    write_episode_bag(tmp_path / "bags", ep)
    with pytest.raises(ValueError, match="--image-size"):
        convert_bags(tmp_path / "bags", tmp_path / "shards", progress=False)
    assert not (tmp_path / "shards" / MANIFEST).exists() and not list((tmp_path / "shards").rglob("*.tar*"))
    resized = convert_bags(tmp_path / "bags", tmp_path / "shards", image_size=8, progress=False)
    assert read_all(tmp_path / "shards", resized)[0]["images"].shape == (3, 8, 8, 3)


def test_parallel_conversion_writes_the_same_episodes_as_one_process(tmp_path, monkeypatch):
    eps = write_bags(tmp_path / "bags", 12)
    monkeypatch.setattr(convert_mod, "MIN_EPISODES_PER_WORKER", 1)
    one = convert_bags(tmp_path / "bags", tmp_path / "one", workers=1, progress=False)
    two = convert_bags(tmp_path / "bags", tmp_path / "two", workers=2, progress=False)
    assert {s["file"].split("-")[1] for s in two["shards"]} == {"w0", "w1"}  # each process its own shards
    content = lambda m: {k: v for k, v in summarize_manifest(m).items() if k not in ("shards", "bytes")}  # noqa: E731
    assert content(one) == content(two) and one["layouts"] == two["layouts"]
    for a, b, ep in zip(read_all(tmp_path / "one", one), read_all(tmp_path / "two", two), eps):
        assert a["meta"] == b["meta"]
        assert_same_episode(b, ep)
    small = convert_bags(tmp_path / "bags", tmp_path / "small", shard_mb=0.001, progress=False)
    assert len(small["shards"]) == 12  # a shard is closed at its size: one episode each here


def test_a_killed_conversion_leaves_no_episode_behind(tmp_path, monkeypatch):
    write_bags(tmp_path / "bags", 6)
    real = shard_jobs.read_episode_bag
    calls = []

    def dies_on_the_fourth(path, **kw):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill in the middle
        return real(path, **kw)

    monkeypatch.setattr(shard_jobs, "read_episode_bag", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        convert_bags(tmp_path / "bags", tmp_path / "shards", progress=False)
    assert not (tmp_path / "shards" / MANIFEST).exists() and not list((tmp_path / "shards").rglob("*.tar*"))
    (tmp_path / "shards" / "failures").mkdir(exist_ok=True)
    (tmp_path / "shards" / "failures" / "c0000-w1-0000.tar").write_bytes(b"left by a killed process")
    monkeypatch.setattr(shard_jobs, "read_episode_bag", real)
    manifest = convert_bags(tmp_path / "bags", tmp_path / "shards", progress=False)
    assert manifest["converted"] == 6 and not (tmp_path / "shards" / "failures" / "c0000-w1-0000.tar").exists()


def test_concurrent_conversions_wait_for_each_other(tmp_path):
    """Two trainings started together on one data folder both convert it: the second waits for the first
    (no race on the manifest) and then finds nothing new."""
    bags, shards = tmp_path / "bags", tmp_path / "shards"
    write_bags(bags, 3)
    shards.mkdir()
    results = []
    with open(shards / LOCK_FILE, "w") as held:  # another conversion is running
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: results.append(convert_bags(bags, shards, progress=False)))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and not (shards / MANIFEST).exists()  # waits, writes nothing meanwhile
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert results and results[0]["converted"] == 3
    threads = [threading.Thread(target=lambda: results.append(convert_bags(bags, shards, progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert [r["converted"] for r in results[1:]] == [0, 0] and summarize_manifest(load_manifest(shards))["episodes"] == 3
    assert not list(shards.glob("manifest.json.*"))  # no temporary manifest left behind


def test_a_cache_of_an_earlier_version_is_named_and_converts(tmp_path):
    eps = [make_episode(T=5, episode_id="old_a"), make_episode(T=3, success=False, states=False, episode_id="old_b", seed=4)]
    cache = tmp_path / "_cache"
    entries = []
    for i, ep in enumerate(eps):  # the layout qt_policy wrote before the shards
        folder = cache / "episodes" / ep.episode_id
        folder.mkdir(parents=True)
        np.save(folder / "images.npy", ep.images)
        np.save(folder / "actions.npy", ep.actions)
        np.save(folder / "rewards.npy", ep.rewards)
        if ep.states is not None:
            np.save(folder / "states.npy", ep.states)
        entries.append({"key": ep.episode_id, "id": ep.episode_id, "path": f"episodes/{ep.episode_id}",
                        "length": len(ep), "instruction": ep.instruction, "success": ep.success, "task": ep.task,
                        "end_reason": ep.end_reason, "action_names": ep.action_names, "state_names": ep.state_names,
                        "source": f"/gone/{ep.episode_id}", "fingerprint": f"fp{i}"})
    (cache / "index.json").write_text(json.dumps({"version": 1, "image_size": None, "episodes": entries, "skipped": []}))
    with pytest.raises(ValueError, match="earlier qt_policy"):
        load_manifest(cache)
    manifest = convert_bags(cache, tmp_path / "shards", progress=False)
    assert manifest["converted"] == 2
    for got, ep in zip(read_all(tmp_path / "shards", manifest), eps):
        assert_same_episode(got, ep)
    assert convert_bags(cache, tmp_path / "shards", progress=False)["converted"] == 0


def test_convert_cli(tmp_path, capsys):
    from qt_policy.tools.convert import main

    write_episode_bag(tmp_path / "bags", make_episode(T=3, episode_id="ep_x"), start_time_ns=0)
    assert main([str(tmp_path / "bags"), str(tmp_path / "shards"), "--no-progress", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "episodes: 1" in out and "steps: 3" in out and "pick up the red block" in out and "shards: 1" in out

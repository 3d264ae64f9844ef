"""The training cache: bags converted incrementally (a moved folder is not converted twice), concurrent conversions, and the qt-convert command line."""
import json
import shutil

import numpy as np
import pytest

from qt_policy.data.bag_writer import EpisodeBagWriter, write_episode_bag
from qt_test_helpers.episodes import ACTION_NAMES, make_episode


def test_convert_bags_incremental(tmp_path):
    from qt_policy.data.cache import convert_bags, load_index, open_episode_arrays

    bags, cache = tmp_path / "bags", tmp_path / "cache"
    eps = [make_episode(T=7, episode_id="ep_a"), make_episode(T=4, success=False, states=False, episode_id="ep_b")]
    for i, ep in enumerate(eps):
        write_episode_bag(bags, ep, start_time_ns=i * 10**9)
    w = EpisodeBagWriter()
    w.open(bags, "ep_partial")
    w.abort()

    index = convert_bags(bags, cache, progress=False)
    assert index["converted"] == 2 and load_index(cache)["episodes"] == index["episodes"]
    by_id = {e["id"]: e for e in index["episodes"]}
    assert set(by_id) == {"ep_a", "ep_b"}
    for ep in eps:
        e = by_id[ep.episode_id]
        assert (e["length"], e["instruction"], e["success"], e["task"]) == (len(ep), ep.instruction, ep.success, ep.task)
        assert e["action_names"] == ACTION_NAMES and e["state_names"] == ep.state_names
        arrays = open_episode_arrays(cache, e)
        assert all(isinstance(a, np.memmap) for a in arrays.values())
        np.testing.assert_array_equal(arrays["images"], ep.images)
        np.testing.assert_array_equal(arrays["actions"], ep.actions)
        np.testing.assert_array_equal(arrays["rewards"], ep.rewards)
        assert arrays["rewards"].dtype == np.float32 and arrays["actions"].dtype == np.float32
        if ep.states is None:
            assert "states" not in arrays
        else:
            np.testing.assert_array_equal(arrays["states"], ep.states)

    again = convert_bags(bags, cache, progress=False)
    assert again["converted"] == 0 and len(again["episodes"]) == 2

    write_episode_bag(bags, make_episode(T=2, episode_id="ep_c"), start_time_ns=0)
    assert convert_bags(bags, cache, progress=False)["converted"] == 1

    old = load_index(cache)  # as a cache written before fingerprints: the next conversion adds them
    for e in old["episodes"]:
        del e["fingerprint"]
    (cache / "index.json").write_text(json.dumps(old))
    assert convert_bags(bags, cache, progress=False)["converted"] == 0
    assert all("fingerprint" in e for e in load_index(cache)["episodes"])
    moved = tmp_path / "moved"  # the data folder copied elsewhere with its cache: nothing is new
    shutil.copytree(bags, moved)
    shutil.copytree(cache, moved / "_cache")
    after_move = convert_bags(moved, moved / "_cache", progress=False)
    assert after_move["converted"] == 0 and len(after_move["episodes"]) == 3
    write_episode_bag(moved, make_episode(T=3, episode_id="ep_d"), start_time_ns=5 * 10**9)
    assert convert_bags(moved, moved / "_cache", progress=False)["converted"] == 1

    small = convert_bags(bags, tmp_path / "cache8", image_size=8, progress=False)
    assert small["image_size"] == 8
    arr = open_episode_arrays(tmp_path / "cache8", small["episodes"][0])["images"]
    assert arr.shape == (7, 8, 8, 3) and arr.dtype == np.uint8
    with pytest.raises(ValueError, match="image_size"):
        convert_bags(bags, tmp_path / "cache8", image_size=12, progress=False)


def test_concurrent_conversions_wait_for_each_other_and_idle_ones_write_nothing(tmp_path):
    """Two trainings started together on one data folder both convert it: the second must wait for
    the first (not race on index.json) and then find nothing new."""
    import fcntl
    import threading

    from qt_policy.data.cache import LOCK_FILE, convert_bags, load_index

    bags, cache = tmp_path / "bags", tmp_path / "cache"
    for i in range(3):
        write_episode_bag(bags, make_episode(T=3, episode_id=f"ep{i}"), start_time_ns=i * 10**9)
    cache.mkdir()
    results = []
    with open(cache / LOCK_FILE, "w") as held:  # another conversion is running
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: results.append(convert_bags(bags, cache, progress=False)))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and not (cache / "index.json").exists()  # waits, writes nothing meanwhile
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert results and results[0]["converted"] == 3
    stamp = (cache / "index.json").stat().st_mtime_ns
    threads = [threading.Thread(target=lambda: results.append(convert_bags(bags, cache, progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert [r["converted"] for r in results[1:]] == [0, 0] and len(load_index(cache)["episodes"]) == 3
    assert (cache / "index.json").stat().st_mtime_ns == stamp  # nothing new: index.json untouched
    assert not list(cache.glob("index.json.*"))  # no temporary index left behind


def test_convert_cli(tmp_path, capsys):
    from qt_policy.tools.convert import main

    write_episode_bag(tmp_path / "bags", make_episode(T=3, episode_id="ep_x"), start_time_ns=0)
    assert main([str(tmp_path / "bags"), str(tmp_path / "cache"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "episodes: 1" in out and "steps: 3" in out and "pick up the red block" in out

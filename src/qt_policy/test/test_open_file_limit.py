"""Training under a low open-file limit: the shards stream one file at a time, so 300 shards train under
`ulimit -n 256` (the earlier cache kept four memory maps per episode open and stopped at ~60 episodes)."""
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.data.episode import EpisodeData

EPISODES = 300
LIMIT = 256
TINY = ["--conv-channels", "4", "8", "--tokens-per-frame", "2", "--d-model", "16", "--num-layers", "1",
        "--num-heads", "2", "--num-bins", "16", "--batch-size", "8", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from qt_policy.tools.convert import main as convert_main

    out = tmp_path_factory.mktemp("many_bags")
    rng = np.random.default_rng(0)
    for k in range(EPISODES):
        write_episode_bag(out / "bags", EpisodeData(
            instruction="open the drawer", images=rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8),
            actions=rng.uniform(-1, 1, (3, 4)).astype(np.float32), success=k < 30,
            action_names=["dx", "dy", "dz", "gripper"], states=rng.normal(size=(3, 4)).astype(np.float32),
            state_names=["x", "y", "z", "g"], episode_id=f"ep{k}", task="drawer"), name=f"ep{k}")
    assert convert_main([str(out / "bags"), str(out / "shards"), "--shard-mb", "0.0001", "--no-progress"]) == 0
    return out / "shards"


def run_with_limit(limit, *args):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return subprocess.run([sys.executable, *map(str, args)], preexec_fn=set_limit, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ))


@pytest.mark.parametrize("buffer_mb", ["1536", "0.002"], ids=["held-whole", "streaming"])
def test_300_shards_train_under_ulimit_256(shards, tmp_path, buffer_mb):
    assert len(list(shards.rglob("*.tar"))) == EPISODES
    out = run_with_limit(LIMIT, "-m", "qt_policy.tools.train", "--data", shards, "--out", tmp_path / "run",
                         "--steps", "3", "--buffer-mb", buffer_mb, *TINY)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").exists()


def test_the_limit_is_low_enough_to_matter(shards):
    """Opening every shard at once fails under the same limit: the test above is not idle."""
    code = ("import sys, pathlib\n"
            "files = [open(p, 'rb') for p in sorted(pathlib.Path(sys.argv[1]).rglob('*.tar'))]\n"
            "print('opened', len(files))\n")
    out = run_with_limit(LIMIT, "-c", code, shards)
    assert out.returncode != 0 and "Too many open files" in out.stderr

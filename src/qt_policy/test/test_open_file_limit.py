"""Training under an ordinary open-file limit: the soft limit is raised, or training stops at once
with a message that names the limit and the fix (never `Too many open files` mid-way)."""
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.data.episode import EpisodeData

EPISODES = 80  # 4 memory maps each: 320 open files, more than the soft limit below
LOW = 300
TINY = ["--conv-channels", "4", "8", "--tokens-per-frame", "2", "--d-model", "16", "--num-layers", "1",
        "--num-heads", "2", "--num-bins", "16", "--batch-size", "8", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    out = tmp_path_factory.mktemp("many_bags")
    rng = np.random.default_rng(0)
    for k in range(EPISODES):
        write_episode_bag(out, EpisodeData(
            instruction="open the drawer", images=rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8),
            actions=rng.uniform(-1, 1, (3, 4)).astype(np.float32), success=k < 10,
            action_names=["dx", "dy", "dz", "gripper"], states=rng.normal(size=(3, 4)).astype(np.float32),
            state_names=["x", "y", "z", "g"], episode_id=f"ep{k}", task="drawer"), name=f"ep{k}")
    return out


def run_with_limit(soft, hard, *args):
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return subprocess.run([sys.executable, *args], preexec_fn=limit, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))


def hard_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


@pytest.mark.skipif(hard_limit() != resource.RLIM_INFINITY and hard_limit() < 4 * EPISODES + 512,
                    reason="this machine's hard open-file limit is too low for the test")
def test_training_raises_a_low_soft_limit_and_trains(bags, tmp_path):
    hard = min(hard_limit(), 65536) if hard_limit() != resource.RLIM_INFINITY else 65536
    out = run_with_limit(LOW, hard, "-m", "qt_policy.tools.train", "--data", bags, "--out", tmp_path / "run",
                         "--steps", "2", *TINY)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").exists()


def test_a_low_hard_limit_is_a_clear_error_before_anything_opens(bags, tmp_path):
    out = run_with_limit(LOW, LOW, "-m", "qt_policy.tools.train", "--data", bags, "--out", tmp_path / "run",
                         "--steps", "2", *TINY)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert "Too many open files" not in text and "Traceback" not in text
    assert f"only {LOW} (soft limit) and at most {LOW} (hard limit)" in text and "ulimit -n" in text


def test_the_raise_is_what_makes_the_files_fit():
    """The same memory maps fail at the low limit without the raise: the check above is not idle."""
    code = ("import mmap, os, tempfile, sys\n"
            "from qt_policy.data.file_limit import ensure_open_files\n"
            "d = tempfile.mkdtemp(); maps = []\n"
            "if sys.argv[1] == 'raise': ensure_open_files(400, 'the test')\n"
            "for k in range(400):\n"
            "    p = os.path.join(d, str(k)); open(p, 'wb').write(b'x' * 16)\n"
            "    with open(p, 'rb') as f: maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))\n"
            "print('opened', len(maps))\n")
    hard = min(hard_limit(), 65536) if hard_limit() != resource.RLIM_INFINITY else 65536
    without = run_with_limit(LOW, hard, "-c", code, "plain")
    assert without.returncode != 0 and "Too many open files" in without.stderr
    with_raise = run_with_limit(LOW, hard, "-c", code, "raise")
    assert with_raise.returncode == 0 and "opened 400" in with_raise.stdout, with_raise.stderr[-2000:]

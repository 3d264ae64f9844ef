"""Recorder inputs as raw CDR bytes, a recorder on a fake clock, a second bag reader (mcap), a small
real file system, episodes a video codec keeps well, and LeRobot's own dataset checker."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qt_policy.data import bag_format as bf
from qt_policy.data.episode import EpisodeData
from qt_policy.runtime.episode_recorder import EpisodeRecorder

NAMES = ["dx", "dy", "dz", "gripper"]


T0 = 1_700_000_000 * 10**9  # a fixed wall clock (ns) for the bag names and log times


class Clock:
    def __init__(self):
        self.ns = T0

    def __call__(self):
        return self.ns


def make_recorder(tmp_path, **kw):
    clock = Clock()
    logs = []
    rec = EpisodeRecorder(tmp_path / "bags", log=lambda level, msg: logs.append((level, msg)),
                          wall_clock_ns=clock, **kw)
    return rec, clock, logs


def image(ts, stamp, value=0):
    return ts.serialize_cdr(bf.make_image_msg(np.full((8, 8, 3), value, np.uint8), stamp, typestore=ts), bf.IMAGE_TYPE)


def state(ts, stamp):
    return ts.serialize_cdr(bf.make_joint_state_msg(np.arange(4.0), ["a", "b", "c", "d"], stamp, typestore=ts),
                            bf.JOINT_STATE_TYPE)


def action(ts, stamp, value=0.5, terminate=False):
    return ts.serialize_cdr(bf.make_qaction_msg(np.full(4, value), stamp, NAMES, terminate=terminate, typestore=ts),
                            bf.QACTION_TYPE)


def mcap_counts(bag: str) -> dict[str, int]:
    """Messages per topic, read with the mcap library (the second, independent reader)."""
    from mcap.reader import make_reader

    counts: dict[str, int] = {}
    for mcap_file in sorted(os.listdir(bag)):
        if mcap_file.endswith(".mcap"):
            with open(os.path.join(bag, mcap_file), "rb") as f:
                for _schema, channel, _message in make_reader(f).iter_messages():
                    counts[channel.topic] = counts.get(channel.topic, 0) + 1
    return counts


def mount_tmpfs(path, size_kb):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real small file system needs root and mount (tmpfs); the injected ENOSPC test runs instead")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the injected ENOSPC test runs instead")


def smooth_episode(e: int, T: int, success: bool, shape=(48, 64)) -> EpisodeData:
    """Frames a codec keeps well (smooth gradients that move with t), and exact formulas for the rest."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    images = np.stack([np.stack([xx * 2 + 20 * e, yy * 3 + 5 * t, np.full_like(xx, 128)], -1)  # no edges
                       for t in range(T)]).astype(np.uint8)
    t = np.arange(T, dtype=np.float32)[:, None]
    actions = np.concatenate([np.sin(0.3 * t + e), np.cos(0.3 * t), 0.01 * t, np.where(t % 2, 1.0, -1.0)], 1)
    states = 0.1 * e + 0.01 * t + 0.001 * np.arange(3, dtype=np.float32)[None]
    return EpisodeData(instruction=["open the drawer", "close the window"][e % 2], images=images,
                       actions=actions.astype(np.float32), success=success, action_names=["dx", "dy", "dz", "gripper"],
                       states=states.astype(np.float32), state_names=["x", "y", "z"], episode_id=f"ep{e}",
                       end_reason="success" if success else "timeout")


def doctor(path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lerobot-doctor")
    if not exe.exists():
        pytest.skip("lerobot-doctor is not installed (requirements.txt)")
    return subprocess.run([str(exe), "check", str(path), "--ci", "--fail-on", "fail"], capture_output=True, text=True,
                          timeout=300)

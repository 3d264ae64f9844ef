"""tools.view: an episode as a Rerun recording (checked by rerun's own `rrd verify`) and as a picture,
and the decisions it shows are the policy's (greedy bins = argmax of the logged Q maps)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qt_policy.core.config import ModelConfig
from qt_policy.core.model import QTransformer
from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.evaluation import replay
from qt_policy.tools import view
from qt_test_helpers.recording import smooth_episode


def embed(text):
    return np.full(384, 0.05, np.float32)


def rerun_cli(*args):
    exe = Path(sys.executable).with_name("rerun")
    exe = str(exe) if exe.exists() else shutil.which("rerun")
    if exe is None:
        pytest.skip("the rerun CLI (rerun-sdk) is not installed")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_decisions_shown_are_the_greedy_ones(tmp_path):
    torch.manual_seed(0)
    model = QTransformer(ModelConfig(image_size=32, frames=2, conv_channels=[8, 16], tokens_per_frame=4, d_model=32,
                                     num_layers=1, num_heads=2, state_dim=3, num_bins=16)).eval()
    ep = smooth_episode(0, 10, True)
    bins, q, q_maps = replay.decide_on_episode(model, ep, embed)
    assert bins.shape == (10, 4) and q.shape == (10,) and q_maps.shape == (10, 4, 16)
    np.testing.assert_array_equal(bins, q_maps.argmax(-1))  # greedy: each chosen bin is its row's argmax
    np.testing.assert_allclose(q, q_maps[np.arange(10), 3, bins[:, 3]], rtol=1e-5)

    out = tmp_path / "ep.rrd"
    view.write_rrd(out, ep, bins, q, q_maps)
    r = rerun_cli("rrd", "verify", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    printed = rerun_cli("rrd", "print", str(out)).stdout
    for entity in ("/camera", "/q_map/dx", "/q/greedy", "/action/gripper", "/bins/dz"):
        assert entity in printed, entity
    view.draw_png(tmp_path / "ep.png", ep, bins, q, q_maps, "dx")
    assert (tmp_path / "ep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_view_cli_on_a_bag_uses_the_recorded_bins(tmp_path, capsys):
    import dataclasses
    ep = dataclasses.replace(smooth_episode(1, 6, False), interventions=np.array([0, 0, 1, 1, 0, 0], bool))
    bag = write_episode_bag(tmp_path / "bags", ep)
    assert view.main([str(bag), "--out", str(tmp_path / "b.rrd"), "--png", str(tmp_path / "b.png")]) == 0
    assert "6 steps" in capsys.readouterr().out
    assert rerun_cli("rrd", "verify", str(tmp_path / "b.rrd")).returncode == 0
    assert "/intervention" in rerun_cli("rrd", "print", str(tmp_path / "b.rrd")).stdout  # who drove, per step
    ep, bins, q = replay.load_episode(bag)
    assert len(ep) == 6 and bins is None and np.isnan(q).all()  # scripted actions carry no bins and no Q


def test_two_camera_episode_is_decided_and_shown_with_both_cameras(tmp_path):
    import dataclasses

    torch.manual_seed(0)
    model = QTransformer(ModelConfig(image_size=32, frames=2, conv_channels=[8, 16], tokens_per_frame=4, d_model=32,
                                     num_layers=1, num_heads=2, state_dim=3, num_bins=16, cameras=2)).eval()
    one = smooth_episode(0, 6, True)
    ep = dataclasses.replace(one, images=np.stack([one.images, 255 - one.images], axis=1))
    bins, q, q_maps = replay.decide_on_episode(model, ep, embed)
    np.testing.assert_array_equal(bins, q_maps.argmax(-1))
    swapped = dataclasses.replace(one, images=np.stack([255 - one.images, one.images], axis=1))
    assert not np.allclose(replay.decide_on_episode(model, swapped, embed)[2], q_maps)  # the cameras are told apart
    view.write_rrd(tmp_path / "ep.rrd", ep, bins, q, q_maps)
    printed = rerun_cli("rrd", "print", str(tmp_path / "ep.rrd")).stdout
    assert "/camera_1" in printed

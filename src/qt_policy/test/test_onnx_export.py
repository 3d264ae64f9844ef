"""The exported policy (ONNX Runtime) acts as its checkpoint does, and the runner uses it without torch."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qt_policy.core.checkpoint import save_checkpoint
from qt_policy.core.config import ModelConfig
from qt_policy.core.model import QTransformer
from qt_policy.inference import load_policy
from qt_policy.inference.equivalence import compare, compare_backends, random_observations
from qt_policy.inference.onnx_export import export_policy

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "qt_metaworld"


def fake_encoder(text):
    v = np.random.default_rng(len(text)).standard_normal(384).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory):
    return export_policy(SHIPPED, tmp_path_factory.mktemp("export") / "qt_metaworld_onnx", encoder=fake_encoder)


def test_small_model_with_many_dimensions_exports_exactly(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(action_dim=11, num_bins=256, action_low=[-2.0] * 11, action_high=[3.0] * 11,
                      action_names=[f"a{i}" for i in range(11)], image_size=16, frames=2, conv_channels=[4, 8],
                      tokens_per_frame=2, d_model=32, num_layers=2, num_heads=4, state_dim=5)
    model = QTransformer(cfg)
    with torch.no_grad():
        model.head_weight.mul_(4.0)  # spread Q so that the bins are well separated
    save_checkpoint(tmp_path / "ckpt", model, {"instructions": ["pick it up"]})
    out = export_policy(tmp_path / "ckpt", tmp_path / "export", encoder=fake_encoder)
    report = compare_backends(tmp_path / "ckpt", out, random=500)
    # 11 dimensions of 256 random-weight bins: a near-tie may round either way, and nothing else may differ
    assert report["observations"] == 500 and report["bins_differ"] == report["ties"] <= 2
    assert report["max_q_difference"] < 1e-5
    info = json.loads((out / "export.json").read_text())
    assert info["inputs"] == ["images", "text", "state"] and info["action_dim"] == 11
    table = np.load(out / "text_embeddings.npz")
    assert list(table["instructions"]) == ["pick it up"]
    np.testing.assert_array_equal(table["embeddings"][0], fake_encoder("pick it up"))


def recorded_observations(policy, count=100, batch=25):
    """Observations the simulated arm produced while the shipped policy drove it (the node's pipeline)."""
    from qt_policy.data.observation import FrameHistory, prepare_frame
    from qt_policy.sim.arm import SimArm
    from qt_policy.sim.tasks import TASKS

    cfg, arm, seen = policy.cfg, SimArm(image_size=64), []
    try:
        for k, task in enumerate(list(TASKS.values())[:4]):
            obs, history, text = arm.reset(task.name, 3_000_000 + k), FrameHistory(cfg.frames), fake_encoder(task.instruction)
            for _ in range(count // 4):
                images = history.push(prepare_frame(obs.image, cfg.image_size, cfg.image_crop))[None]
                seen.append((images, text[None], obs.state[None].astype(np.float32)))
                obs, _ = arm.step(policy.act(*seen[-1]).values[0])
    finally:
        arm.close()
    for start in range(0, len(seen), batch):
        part = seen[start:start + batch]
        yield tuple(np.concatenate([p[i] for p in part]) for i in range(3))


def test_a_two_camera_seven_dimension_model_exports_exactly(tmp_path):
    """The Panda's layout: scene + wrist camera (one token set each), 7 action dimensions."""
    torch.manual_seed(1)
    cfg = ModelConfig(action_dim=7, num_bins=32, action_low=[-1.0] * 7, action_high=[1.0] * 7,
                      action_names=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"], image_size=16, frames=2,
                      conv_channels=[4, 8], tokens_per_frame=2, d_model=32, num_layers=2, num_heads=4, state_dim=8,
                      cameras=2)
    model = QTransformer(cfg)
    with torch.no_grad():
        model.head_weight.mul_(4.0)
    save_checkpoint(tmp_path / "ckpt", model, {"instructions": ["open the door"]})
    out = export_policy(tmp_path / "ckpt", tmp_path / "export", encoder=fake_encoder)
    report = compare_backends(tmp_path / "ckpt", out, random=200)
    assert report["observations"] == 200 and report["bins_differ"] == report["ties"] <= 1


def test_the_shipped_policy_exports_exactly_on_random_and_recorded_observations(shipped_export):
    torch_policy = load_policy(SHIPPED, "torch")
    onnx_policy = load_policy(shipped_export, "onnxruntime", threads=1)
    random = compare(torch_policy, onnx_policy, random_observations(torch_policy.cfg, 500))
    recorded = compare(torch_policy, onnx_policy, recorded_observations(torch_policy))
    assert random["observations"] == 500 and recorded["observations"] == 100
    assert random["bins_differ"] == 0 and recorded["bins_differ"] == 0
    assert random["max_q_difference"] < 1e-5 and recorded["max_q_difference"] < 1e-5


def test_an_ensemble_or_a_wrong_backend_is_a_clear_error(shipped_export, tmp_path):
    from qt_policy.core.checkpoint import save_ensemble

    save_ensemble(tmp_path / "ens", [SHIPPED, SHIPPED])
    with pytest.raises(ValueError, match="ensemble"):
        export_policy(tmp_path / "ens", tmp_path / "out")
    with pytest.raises(ValueError, match="onnxruntime"):
        load_policy(shipped_export, "torch")
    with pytest.raises(FileNotFoundError, match="qt-export"):
        load_policy(SHIPPED, "onnxruntime")


TORCH_FREE = r'''
import importlib.abc, sys
BLOCKED = ("torch", "sentence_transformers", "transformers", "safetensors")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
from qt_policy.runtime.policy_config import PolicyNodeConfig
from qt_policy.runtime.decision import Action
from qt_policy.runtime.policy_runner import PolicyRunner
runner = PolicyRunner.from_config(PolicyNodeConfig(checkpoint=sys.argv[1], backend="onnxruntime"))
runner.set_instruction("open the drawer", 0.0)
runner.set_state([0.0, 0.6, 0.2, 1.0], 0.06)
runner.add_image(np.full((64, 64, 3), 90, np.uint8), 0.1)
action = runner.act(0.1)
assert isinstance(action, Action), action
try:
    runner.set_instruction("dance a jig", 0.2)
except ValueError as exc:
    assert "not one the policy was exported with" in str(exc), exc
else:
    raise AssertionError("an unknown instruction without a sentence encoder must be refused")
loaded = sorted(m.split(".")[0] for m in sys.modules)
print("ok", action.bins.tolist(), "torch" in loaded, sorted(m for m in sys.modules if m.startswith("qt_policy.")))
'''


def test_the_runner_acts_with_an_export_without_torch_or_the_training_code(shipped_export):
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE, str(shipped_export)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ok, rest = proc.stdout.strip().split(" ", 1)
    assert ok == "ok" and "False [" in rest  # no torch module was loaded
    for absent in ("qt_policy.training", "qt_policy.core.model", "qt_policy.core.learner", "qt_policy.core.checkpoint"):
        assert f"'{absent}'" not in rest
    # the same observation through the torch checkpoint: the same bins
    from qt_policy.runtime.policy_config import PolicyNodeConfig
    from qt_policy.runtime.policy_runner import PolicyRunner

    runner = PolicyRunner.from_config(PolicyNodeConfig(checkpoint=str(SHIPPED)), encoder=lambda t: np.load(
        shipped_export / "text_embeddings.npz")["embeddings"][list(np.load(shipped_export / "text_embeddings.npz")[
            "instructions"]).index(t)])
    runner.set_instruction("open the drawer", 0.0)
    runner.set_state([0.0, 0.6, 0.2, 1.0], 0.06)
    runner.add_image(np.full((64, 64, 3), 90, np.uint8), 0.1)
    assert str(runner.act(0.1).bins.tolist()) in rest

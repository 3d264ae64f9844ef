"""Training CLI end to end on tiny synthetic episode bags: checkpoints, resume, metrics, torchrun DDP."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
from qt_policy.core.checkpoint import load_model, read_config  # noqa: E402
from qt_policy.data.bag_io import write_episode_bag  # noqa: E402
from qt_policy.data.episode import EpisodeData  # noqa: E402

TINY = ["--conv-channels", "4", "8", "--tokens-per-frame", "2", "--d-model", "16", "--num-layers", "1",
        "--num-heads", "2", "--num-bins", "16", "--batch-size", "8", "--log-every", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    out = tmp_path_factory.mktemp("bags")
    rng = np.random.default_rng(0)
    for k in range(6):
        t = 5 + k
        write_episode_bag(out, EpisodeData(
            instruction="open the drawer" if k % 2 else "close the drawer",
            images=rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8),
            actions=rng.uniform(-1, 1, (t, 4)).astype(np.float32), success=k < 2,
            action_names=["dx", "dy", "dz", "gripper"], states=rng.normal(size=(t, 4)).astype(np.float32),
            state_names=["x", "y", "z", "g"], episode_id=f"ep{k}", task="drawer"), name=f"ep{k}")
    return out


def run_train(*args):
    from qt_policy.tools.train import main
    return main([str(a) for a in args] + TINY)


def test_train_writes_checkpoints_and_resumes(bags, tmp_path):
    out = tmp_path / "run"
    assert run_train("--data", bags, "--out", out, "--steps", 4, "--checkpoint-every", 2) == 0
    cfg = read_config(out / "checkpoint")
    assert cfg["step"] == 4 and cfg["model"]["image_size"] == 16 and cfg["model"]["state_dim"] == 4
    assert cfg["data"]["episodes"] == 6 and cfg["data"]["successes"] == 2
    assert sorted(cfg["instructions"]) == ["close the drawer", "open the drawer"]
    assert (out / "step_0000002" / "model.safetensors").is_file()
    before = load_model(out / "checkpoint").state_dict()
    assert run_train("--data", bags, "--out", out, "--steps", 6, "--resume", "--checkpoint-every", 100) == 0
    assert read_config(out / "checkpoint")["step"] == 6
    after = load_model(out / "checkpoint").state_dict()
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert list((out / "tb").iterdir())


@pytest.mark.parametrize("algo", ["qt", "bc"])
def test_averaged_checkpoint_is_the_polyak_average_of_the_online_weights(bags, tmp_path, algo):
    import torch
    # tau 1: the average is the last online weights, exactly; it loads and acts like any checkpoint
    out = tmp_path / f"{algo}_tau1"
    assert run_train("--data", bags, "--out", out, "--steps", 3, "--algo", algo, "--target-tau", 1.0) == 0
    online, averaged = load_model(out / "checkpoint").state_dict(), load_model(out / "checkpoint_averaged").state_dict()
    assert all(torch.equal(online[k], averaged[k]) for k in online)
    assert read_config(out / "checkpoint_averaged")["step"] == 3
    # tau 0: the average never moves from the initial weights, which training does move
    out0 = tmp_path / f"{algo}_tau0"
    assert run_train("--data", bags, "--out", out0, "--steps", 3, "--algo", algo, "--target-tau", 0.0) == 0
    init, online0 = load_model(out0 / "checkpoint_averaged").state_dict(), load_model(out0 / "checkpoint").state_dict()
    assert any(not torch.equal(init[k], online0[k]) for k in init)
    torch.manual_seed(0)  # tools.train seeds with --seed (0) before building the model: the same init
    from qt_policy.core.config import ModelConfig, from_dict
    from qt_policy.core.model import QTransformer
    fresh = QTransformer(from_dict(ModelConfig, read_config(out0 / "checkpoint")["model"])).state_dict()
    assert all(torch.equal(init[k], fresh[k]) for k in init)


def test_diagnose_reports_both_outcomes(bags, tmp_path):
    from qt_policy.tools.diagnose import main as diagnose

    out = tmp_path / "run"
    assert run_train("--data", bags, "--out", out, "--steps", 1) == 0
    report_file = tmp_path / "agreement.json"
    assert diagnose(["--data", str(bags), str(out / "checkpoint"), "--samples", "64", "--threads", "1",
                     "--json", str(report_file)]) == 0
    (report,) = json.loads(report_file.read_text()).values()
    assert report["successful"]["samples"] + report["failed"]["samples"] == 64
    assert report["successful"]["samples"] > 0 and report["failed"]["samples"] > 0
    for outcome in (report["successful"], report["failed"]):
        assert len(outcome["median_bin_distance"]) == 4
        assert all(g >= d for g, d in zip(outcome["q_greedy_bin"], outcome["q_dataset_bin"]))
    starts = report["start_values"]
    tasks = {e["task"] for e in json.loads((bags / "_cache" / "index.json").read_text())["episodes"]}
    assert set(starts) == {"all"} | tasks
    assert all(0.0 <= v <= 1.0 for sv in starts.values() for v in sv.values() if v == v)  # Q is a probability


def test_diagnose_uses_the_resized_cache_of_a_model_trained_with_image_size(bags, tmp_path):
    from qt_policy.tools.diagnose import main as diagnose

    out = tmp_path / "run8"
    assert run_train("--data", bags, "--out", out, "--steps", 1, "--image-size", 8) == 0
    report_file = tmp_path / "agreement8.json"
    assert diagnose(["--data", str(bags), str(out / "checkpoint"), "--samples", "32", "--threads", "1",
                     "--json", str(report_file)]) == 0
    (report,) = json.loads(report_file.read_text()).values()
    assert report["successful"]["samples"] + report["failed"]["samples"] == 32
    native = tmp_path / "run16"
    assert run_train("--data", bags, "--out", native, "--steps", 1) == 0
    assert diagnose(["--data", str(bags), str(out / "checkpoint"), str(native / "checkpoint"),
                     "--samples", "8", "--threads", "1"]) == 2  # two image sizes cannot share one batch


def test_success_only_filters_episodes(bags, tmp_path):
    out = tmp_path / "bc"
    assert run_train("--data", bags, "--out", out, "--steps", 1, "--algo", "bc", "--success-only") == 0
    data = read_config(out / "checkpoint")["data"]
    assert data["episodes"] == 2 and data["successes"] == 2 and data["success_only"]


def test_torchrun_two_cpu_processes_keep_ranks_in_sync(bags, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(29500 + os.getpid() % 1000), "-m", "qt_policy.tools.train",
           "--data", str(bags), "--out", str(out), "--steps", "3", *TINY]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "ranks in sync" in proc.stdout
    assert read_config(out / "checkpoint")["world_size"] == 2


def test_success_batch_fraction_draws_that_share_from_successful_episodes(bags):
    from qt_policy.core.config import LossConfig, TrainConfig
    from qt_policy.data.cache import load_index
    from qt_policy.data.dataset import TransitionSampler
    from qt_policy.tools.train import model_config_for, resolve_cache

    cache = resolve_cache(bags, None, progress=False)
    cfg = model_config_for(load_index(cache), {"num_bins": 16})
    sampler = TransitionSampler(cache, cfg, LossConfig(), lambda text: np.zeros(384, np.float32))
    rng = np.random.default_rng(0)
    # Only successful episodes have a positive return-to-go (reward 1 at their end).
    uniform = np.concatenate([sampler.sample(16, rng).mc_return.numpy() > 0 for _ in range(50)])
    assert 0.1 < uniform.mean() < 0.4  # 11 of the 45 steps are in successful episodes
    balanced = [sampler.sample(16, rng, success_fraction=0.5).mc_return.numpy() > 0 for _ in range(50)]
    assert all(b[:8].all() for b in balanced)
    assert np.concatenate(balanced).mean() > 0.55  # the other half still brings some successes
    with pytest.raises(ValueError, match="success_fraction"):
        sampler.sample(16, rng, success_fraction=1.5)
    failures_only = TransitionSampler(cache, cfg, LossConfig(), lambda text: np.zeros(384, np.float32),
                                      episode_filter=lambda e: not e["success"])
    with pytest.raises(ValueError, match="successful episode"):
        failures_only.sample(16, rng, success_fraction=0.5)
    with pytest.raises(ValueError, match="success_batch_fraction"):
        TrainConfig(success_batch_fraction=-0.1)


def test_cosine_schedule_decays_the_rate_and_survives_resume(bags, tmp_path):
    out = tmp_path / "cosine"
    assert run_train("--data", bags, "--out", out, "--steps", 4, "--lr-schedule", "cosine") == 0
    # the logged rate is the one each update used: 3e-4 * (1 + cos(pi * k / steps)) / 2 for k = 0, 1, ...
    assert run_train("--data", bags, "--out", out, "--steps", 6, "--resume") == 0
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    horizon = [4, 4, 4, 4, 6, 6]  # resuming with more steps stretches the rest of the cosine
    expected = [3e-4 * 0.5 * (1 + np.cos(np.pi * k / n)) for k, n in enumerate(horizon)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6, atol=1e-12)
    constant = tmp_path / "constant"
    assert run_train("--data", bags, "--out", constant, "--steps", 2) == 0
    assert [json.loads(line)["lr"] for line in (constant / "metrics.jsonl").read_text().splitlines()] == [3e-4, 3e-4]


def test_results_table_says_which_rows_the_baselines_command_does_not_make(tmp_path):
    import argparse

    from qt_policy.tools.baselines import write_table

    row = {"step": 10, "train_wall_time_s": 60.0, "episodes_per_task": 2, "mean_success": 0.5, "machine": "m",
           "overall": {"ci95": [0.1, 0.9]}, "tasks": {"drawer-open": {"success_rate": 0.5}}}
    args = argparse.Namespace(data="d", out="o", steps=10, episodes=2)
    write_table({"qt": row, "bc_all": row}, tmp_path / "only_variants.md", args)
    assert "not variants" not in (tmp_path / "only_variants.md").read_text()
    write_table({"qt": row, "qt_by_hand": row}, tmp_path / "with_extra.md", args)
    assert "Rows qt_by_hand are not variants of this command" in (tmp_path / "with_extra.md").read_text()
    # flags passed to every training run belong to the reproducing command
    write_table({"qt": row}, tmp_path / "with_flags.md", args, ["--value-loss", "mse"])
    assert "--episodes 2 -- --value-loss mse`" in (tmp_path / "with_flags.md").read_text()


def test_results_rows_of_two_processes_are_merged_not_overwritten(tmp_path):
    from qt_policy.tools.baselines import merge_row

    results_file = tmp_path / "results.json"
    merge_row(results_file, "qt", {"mean_success": 0.5})
    # a second process, started before the first row existed, writes its own row
    merged = merge_row(results_file, "bc_all", {"mean_success": 0.3})
    assert merged == {"qt": {"mean_success": 0.5}, "bc_all": {"mean_success": 0.3}}
    assert json.loads(results_file.read_text()) == merged
    assert merge_row(results_file, "qt", {"mean_success": 0.6})["qt"] == {"mean_success": 0.6}  # a rerun replaces its row

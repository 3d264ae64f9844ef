"""Training CLI end to end on tiny synthetic episode bags: checkpoints, resume, metrics, the sampler's success share."""
import json

import numpy as np
import pytest

from qt_policy.core.checkpoint import load_model, read_config
from qt_policy.data.bag_writer import write_episode_bag
from qt_policy.data.episode import EpisodeData
from qt_test_helpers.episodes import write_drawer_bags

TINY = ["--conv-channels", "4", "8", "--tokens-per-frame", "2", "--d-model", "16", "--num-layers", "1",
        "--num-heads", "2", "--num-bins", "16", "--batch-size", "8", "--log-every", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    return write_drawer_bags(tmp_path_factory.mktemp("bags"))


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


def test_a_resume_refuses_other_data_and_grown_data(bags, tmp_path, capsys):
    """A resume reads the run's own shards: another --data folder, or bags added to the run's folder since,
    would silently not be (or newly be) what the run trains on, so both are refused with the reason."""
    import shutil

    mine, other, out = tmp_path / "mine", tmp_path / "other", tmp_path / "run"
    shutil.copytree(bags, mine, ignore=shutil.ignore_patterns("_shards*"))
    shutil.copytree(bags, other, ignore=shutil.ignore_patterns("_shards*"))
    assert run_train("--data", mine, "--out", out, "--steps", 2) == 0
    assert run_train("--data", other, "--out", out, "--steps", 3, "--resume") == 2
    assert "not the data this run trained on" in capsys.readouterr().err
    assert read_config(out / "checkpoint")["step"] == 2
    rng = np.random.default_rng(1)
    write_episode_bag(mine, EpisodeData(
        instruction="open the drawer", images=rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (5, 4)).astype(np.float32), success=True, action_names=["dx", "dy", "dz", "gripper"],
        states=rng.normal(size=(5, 4)).astype(np.float32), state_names=["x", "y", "z", "g"], episode_id="ep6",
        task="drawer"), name="ep6")
    from qt_policy.data.convert import convert_bags
    convert_bags(mine, mine / "_shards")  # as a later training on the grown folder converts it
    assert run_train("--data", mine, "--out", out, "--steps", 3, "--resume") == 2
    assert "trained on 6 episodes" in capsys.readouterr().err
    assert run_train("--data", mine / "_shards", "--out", tmp_path / "run2", "--steps", 1) == 0


@pytest.mark.parametrize("algo", ["qt", "bc"])
def test_averaged_checkpoint_is_the_polyak_average_of_the_online_weights(bags, tmp_path, algo):
    import torch
    # tau 1: the average is the last online weights, exactly; it loads and acts like any checkpoint
    out = tmp_path / f"{algo}_tau1"
    assert run_train("--data", bags, "--out", out, "--steps", 3, "--algo", algo, "--target-tau", 1.0) == 0
    # checkpoint/ (the weights to act with) holds the average by default; checkpoint_online/ the online weights
    online, averaged = load_model(out / "checkpoint_online").state_dict(), load_model(out / "checkpoint").state_dict()
    assert all(torch.equal(online[k], averaged[k]) for k in online)
    assert read_config(out / "checkpoint")["step"] == 3
    # tau 0: the average never moves from the initial weights, which training does move
    out0 = tmp_path / f"{algo}_tau0"
    assert run_train("--data", bags, "--out", out0, "--steps", 3, "--algo", algo, "--target-tau", 0.0) == 0
    init, online0 = load_model(out0 / "checkpoint").state_dict(), load_model(out0 / "checkpoint_online").state_dict()
    assert any(not torch.equal(init[k], online0[k]) for k in init)
    torch.manual_seed(0)  # tools.train seeds with --seed (0) before building the model: the same init
    from qt_policy.core.config import ModelConfig, from_dict
    from qt_policy.core.model import QTransformer
    fresh = QTransformer(from_dict(ModelConfig, read_config(out0 / "checkpoint")["model"])).state_dict()
    assert all(torch.equal(init[k], fresh[k]) for k in init)


def test_diagnose_reports_both_outcomes(bags, tmp_path):
    from qt_policy.research.diagnose import main as diagnose

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
    tasks = {g["task"] for s in json.loads((bags / "_shards" / "manifest.json").read_text())["shards"] for g in s["groups"]}
    assert set(starts) == {"all"} | tasks
    assert all(0.0 <= v <= 1.0 for sv in starts.values() for v in sv.values() if v == v)  # Q is a probability


def test_diagnose_uses_the_resized_cache_of_a_model_trained_with_image_size(bags, tmp_path):
    from qt_policy.research.diagnose import main as diagnose

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


def test_success_batch_fraction_draws_that_share_from_successful_episodes(bags):
    from qt_policy.core.config import LossConfig, TrainConfig
    from qt_policy.data.dataset import TransitionSampler
    from qt_policy.data.shard_format import load_manifest
    from qt_policy.training import model_config_for, resolve_shards

    cache = resolve_shards(bags, None, progress=False)
    cfg = model_config_for(load_manifest(cache), {"num_bins": 16})
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
    # data of successes only: the fraction changes nothing, not even the batches (BC on successes keeps its runs)
    successes_only = TransitionSampler(cache, cfg, LossConfig(), lambda text: np.zeros(384, np.float32),
                                       episode_filter=lambda e: e["success"])
    a = successes_only.sample(16, np.random.default_rng(3), success_fraction=0.9)
    b = successes_only.sample(16, np.random.default_rng(3), success_fraction=0.0)
    assert np.array_equal(a.action_bins.numpy(), b.action_bins.numpy())
    assert np.array_equal(a.obs.images.numpy(), b.obs.images.numpy())


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

    from qt_policy.research.baselines import write_table

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
    from qt_policy.research.baselines import merge_row

    results_file = tmp_path / "results.json"
    merge_row(results_file, "qt", {"mean_success": 0.5})
    # a second process, started before the first row existed, writes its own row
    merged = merge_row(results_file, "bc_all", {"mean_success": 0.3})
    assert merged == {"qt": {"mean_success": 0.5}, "bc_all": {"mean_success": 0.3}}
    assert json.loads(results_file.read_text()) == merged
    assert merge_row(results_file, "qt", {"mean_success": 0.6})["qt"] == {"mean_success": 0.6}  # a rerun replaces its row


def test_the_defaults_are_the_shipped_models_recipe_but_for_the_conservatism():
    """`qt-train` with no flags trains what models/qt_metaworld was trained with (its seed aside), except
    the bins the conservative pull acts on (2026-12-07: "support"; the shipped model: "zero", alpha 5
    averaged over 31 bins = 0.161 per bin)."""
    from qt_policy.core.config import LossConfig, TrainConfig, to_dict, upgrade_loss_dict, upgrade_train_dict
    from qt_policy.paths import resolve_data_path

    shipped = read_config(resolve_data_path("models/qt_metaworld"))
    assert shipped["weights"].startswith("Polyak average")  # it acts with the averaged weights
    assert TrainConfig().act_with == "averaged"
    shipped_loss = upgrade_loss_dict(shipped["loss"], shipped["model"]["num_bins"])
    assert shipped_loss.pop("conservatism") == "zero" and LossConfig().conservatism == "support"
    assert shipped_loss.pop("conservative_weight") == pytest.approx(LossConfig().conservative_weight, abs=5e-4)
    defaults = {k: v for k, v in to_dict(LossConfig()).items() if k not in ("conservatism", "conservative_weight")}
    assert {k: v for k, v in defaults.items() if k in shipped_loss} == shipped_loss
    # the data path's settings came later and change nothing on that data (it fits the buffer: the batches are
    # the same, research/fit_fingerprint.py); how often a run saves changes no weight
    later = ("seed", "act_with", "buffer_mb", "loader_workers", "amp", "failure_steps", "save_every")
    defaults = {k: v for k, v in to_dict(TrainConfig()).items() if k not in later}
    shipped_train = upgrade_train_dict(shipped["train"])  # without the retired num_workers
    assert defaults == {k: v for k, v in shipped_train.items() if k not in later}


def test_paper_preset_acts_with_the_online_weights_and_flags_win_over_it(bags, tmp_path):
    import torch

    out = tmp_path / "paper"
    assert run_train("--data", bags, "--out", out, "--steps", 2, "--preset", "paper") == 0
    cfg = read_config(out / "checkpoint")
    assert cfg["preset"] == "paper" and cfg["loss"]["value_loss"] == "mse"
    assert cfg["train"]["success_batch_fraction"] == 0.0 and cfg["train"]["act_with"] == "online"
    acting, online = load_model(out / "checkpoint").state_dict(), load_model(out / "checkpoint_online").state_dict()
    assert all(torch.equal(acting[k], online[k]) for k in acting)
    mixed = tmp_path / "paper_bce"
    assert run_train("--data", bags, "--out", mixed, "--steps", 1, "--preset", "paper", "--value-loss", "bce") == 0
    cfg = read_config(mixed / "checkpoint")
    assert cfg["loss"]["value_loss"] == "bce" and cfg["train"]["act_with"] == "online"


def test_a_run_folder_of_the_old_layout_resumes_with_its_meaning_kept(bags, tmp_path):
    """Before checkpoint_online/ existed, checkpoint/ held the online weights and the training state."""
    import shutil

    out = tmp_path / "legacy"
    assert run_train("--data", bags, "--out", out, "--steps", 2) == 0
    shutil.rmtree(out / "checkpoint")
    (out / "checkpoint_online").rename(out / "checkpoint")
    config = read_config(out / "checkpoint")
    del config["train"]["act_with"], config["preset"]
    (out / "checkpoint" / "config.json").write_text(json.dumps(config))
    assert run_train("--data", bags, "--out", out, "--steps", 3, "--resume") == 0
    resumed = read_config(out / "checkpoint")
    assert resumed["step"] == 3 and resumed["train"]["act_with"] == "online"
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_help_explains_each_field_with_its_comment_in_the_config():
    from qt_policy.tools.train import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "share of each batch drawn from successful episodes only" in text
    assert "the weights OUT/checkpoint/ holds, the ones to act with" in text
    assert "(default: 0.9)" in text and "(default: bce)" in text


def test_fit_is_the_training_as_a_library_call_and_equals_the_cli(bags, tmp_path):
    """What the CLI trains, fit() trains: the same flags as settings give bit-identical weights."""
    import torch

    from qt_policy.training import fit

    tiny = dict(conv_channels=[4, 8], tokens_per_frame=2, d_model=16, num_layers=1, num_heads=2, num_bins=16,
                batch_size=8, log_every=1)
    result = fit(bags, tmp_path / "lib", steps=3, threads=1, progress=False, log=lambda s: None, **tiny)
    assert result.steps == 3 and result.episodes == 6 and result.checkpoint == tmp_path / "lib" / "checkpoint"
    assert run_train("--data", bags, "--out", tmp_path / "cli", "--steps", 3) == 0
    lib, cli = load_model(result.checkpoint).state_dict(), load_model(tmp_path / "cli" / "checkpoint").state_dict()
    assert all(torch.equal(lib[k], cli[k]) for k in lib)
    with pytest.raises(ValueError, match="unknown training setting 'num_bin'"):
        fit(bags, tmp_path / "typo", num_bin=8)


def test_data_without_a_success_trains_uniformly_and_says_so(bags, tmp_path):
    """The default draws 0.9 of each batch from successes; a robot's first recordings may have none."""
    from qt_policy.training import fit

    lines = []
    failures = tmp_path / "failures"
    failures.mkdir()
    for bag in sorted(bags.iterdir()):
        if bag.name.startswith("ep") and int(bag.name[2:]) >= 2:  # ep0, ep1 are the successes
            (failures / bag.name).symlink_to(bag)
    result = fit(failures, tmp_path / "run", steps=2, threads=1, progress=False, log=lines.append,
                 conv_channels=[4, 8], tokens_per_frame=2, d_model=16, num_layers=1, num_heads=2, num_bins=16,
                 batch_size=8)
    assert any("no successful episode in the data" in line for line in lines)
    cfg = read_config(result.checkpoint)
    assert cfg["data"]["successes"] == 0 and cfg["train"]["success_batch_fraction"] == 0.0 and cfg["step"] == 2


def test_baseline_variants_train_on_the_paper_preset(bags, tmp_path):
    """qt-baselines' rows were trained with the paper's configuration: they stay reproducible under new defaults."""
    from qt_policy.research.baselines import train_variant

    train_variant("bc_success", bags, tmp_path / "bc_success", "paper", 1, 1, TINY)
    cfg = read_config(tmp_path / "bc_success" / "checkpoint")
    assert cfg["train"]["algo"] == "bc" and cfg["data"]["success_only"] and cfg["preset"] == "paper"
    assert cfg["loss"]["value_loss"] == "mse" and cfg["train"]["success_batch_fraction"] == 0.0
    assert cfg["train"]["act_with"] == "online"
    train_variant("qt_n1", bags, tmp_path / "qt_n1", "paper", 1, 1, [*TINY, "--value-loss", "bce"])
    cfg = read_config(tmp_path / "qt_n1" / "checkpoint")
    assert cfg["loss"]["n_step"] == 1 and cfg["loss"]["value_loss"] == "bce"  # the flags after -- win


@pytest.mark.parametrize("algo,expect", [("cql", {}), ("iql", {"extra_heads": ["q", "value"]}),
                                         ("rt1_bc", {"independent_dims": True}), ("dt", {"return_token": True}),
                                         ("qt", {"extra_heads": ["behaviour"]})])
def test_every_algorithm_trains_from_the_cli_and_its_checkpoint_acts(bags, tmp_path, algo, expect):
    """`qt-train --algo A` shapes the network for A, saves it, and the saved policy decodes an action."""
    import torch

    from qt_policy.core.decoding import greedy_decode

    out = tmp_path / algo
    assert run_train("--data", bags, "--out", out, "--steps", 2, "--algo", algo) == 0
    model = load_model(out / "checkpoint")
    assert read_config(out / "checkpoint")["train"]["algo"] == algo
    for field, value in expect.items():
        assert getattr(model.cfg, field) == value
    images = torch.zeros(1, *model.cfg.image_shape(), dtype=torch.uint8)
    state = torch.zeros(1, model.cfg.state_dim) if model.cfg.state_dim else None
    action = greedy_decode(model, images=images, text=torch.zeros(1, model.cfg.text_dim), state=state)
    assert action.bins.shape == (1, model.cfg.action_dim)


def test_a_run_saved_with_retired_fields_resumes():
    """The shipped model's config carries num_workers (which never did anything); resuming reads it."""
    import json

    from qt_policy.core.config import TrainConfig, from_dict, upgrade_train_dict
    from qt_policy.paths import repo_root

    saved = json.loads((repo_root() / "models" / "qt_metaworld" / "config.json").read_text())["train"]
    assert "num_workers" in saved
    cfg = from_dict(TrainConfig, upgrade_train_dict(saved))
    assert cfg.act_with == saved.get("act_with", "online") and cfg.steps == saved["steps"]
    assert from_dict(TrainConfig, upgrade_train_dict({"steps": 5})).act_with == "online"  # before act_with existed


def test_a_run_killed_between_saves_resumes_from_its_last_save(bags, tmp_path, monkeypatch):
    """save_every saves what a resume needs more often than the snapshots; the curves drop what the killed
    run logged after its last save, so every step appears once."""
    from qt_policy.core.learner import Learner
    out, calls, update = tmp_path / "run", [], Learner.update

    def dies_at_step_4(self, batch):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill between two saves
        return update(self, batch)

    monkeypatch.setattr(Learner, "update", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run_train("--data", bags, "--out", out, "--steps", 6, "--save-every", 2, "--checkpoint-every", 100)
    assert read_config(out / "checkpoint_online")["step"] == 2 and not list(out.glob("step_*"))
    monkeypatch.setattr(Learner, "update", update)
    assert run_train("--data", bags, "--out", out, "--steps", 6, "--resume") == 0
    assert read_config(out / "checkpoint")["step"] == 6
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
